"""The DuckDB engine's settings: memory limit and where it spills."""
from __future__ import annotations

from pathlib import Path

from clickstream.config import Config, DuckDBSettings
from clickstream.engines import SPILL_DIR, create_engine
from clickstream.engines.duckdb_engine import DuckDBEngine


def _setting(engine: DuckDBEngine, name: str) -> str:
    return engine.fetch(f"select current_setting('{name}')")[1][0][0]


def test_it_spills_under_the_data_directory_by_default(tmp_path: Path):
    config = Config().with_overrides(data_dir=tmp_path / "data")
    engine = create_engine(config)
    try:
        assert Path(_setting(engine, "temp_directory")) == tmp_path / "data" / SPILL_DIR
    finally:
        engine.close()


def test_configured_memory_limit_and_spill_directory_are_used(tmp_path: Path):
    engine = DuckDBEngine(DuckDBSettings(memory_limit="100MB", temp_directory=str(tmp_path / "new" / "spill")),
                          default_spill_dir=tmp_path / "unused")
    try:
        assert Path(_setting(engine, "temp_directory")) == tmp_path / "new" / "spill"
        assert _setting(engine, "memory_limit") in ("95.3 MiB", "100.0 MB")
        # a sort bigger than the limit completes by spilling to that directory
        engine.materialize("big", "select md5(cast(i as varchar)) as k from range(3000000) t(i) order by k")
        assert engine.fetch("select count(*) from big")[1][0][0] == 3_000_000
        _, spilled = engine.fetch("select path from duckdb_temporary_files()")
        assert spilled and all(Path(path).parent == tmp_path / "new" / "spill" for (path,) in spilled)
    finally:
        engine.close()
    assert not (tmp_path / "new" / "spill").exists()  # removed with what it held
    assert not (tmp_path / "unused").exists()
