"""Engines: the only package that knows DuckDB or Spark."""
from __future__ import annotations

from clickstream.config import Config
from clickstream.engines.base import Engine, InputError, QueryInterrupted

__all__ = ["Engine", "EngineUnavailable", "InputError", "QueryInterrupted", "create_engine"]

# Where DuckDB spills what does not fit its memory limit, unless duckdb.temp_directory says otherwise.
SPILL_DIR = "_spill"


class EngineUnavailable(Exception):
    """The engine asked for cannot start here; the message says what to install."""


def create_engine(config: Config) -> Engine:
    if config.engine == "duckdb":
        from clickstream.engines.duckdb_engine import DuckDBEngine

        return DuckDBEngine(config.duckdb, default_spill_dir=config.paths.data_dir / SPILL_DIR)
    if config.engine == "spark":
        try:
            from clickstream.engines.spark_engine import SparkEngine
        except ImportError as exc:
            if (exc.name or "").split(".")[0] not in ("pyspark", "py4j"):
                raise
            raise EngineUnavailable(
                "the Spark engine needs PySpark, which is not installed: pip install 'clickstream[spark]'"
            ) from exc
        return SparkEngine(config.spark)
    raise EngineUnavailable(f"unknown engine {config.engine!r}")
