"""Fixtures of the engine tests: one SparkSession for the whole run (local[2], 2 shuffle partitions, UI off).

The session is started by a SparkEngine, so it gets the engine's quiet logging; every other SparkEngine of
the run (including those `run_layers` creates) finds it running, uses it and leaves it running.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

from clickstream.config import DuckDBSettings
from clickstream.engines.duckdb_engine import DuckDBEngine

sys.path.insert(0, str(Path(__file__).parent))  # engine_support, the helpers of these tests
from engine_support import TEST_SPARK, spark_unavailable  # noqa: E402


@pytest.fixture(scope="session")
def spark_session_owner() -> Iterator[object]:
    """The engine that starts the run's one SparkSession, and stops it when the run ends."""
    reason = spark_unavailable()
    if reason:
        pytest.skip(reason)
    from clickstream.engines.spark_engine import SparkEngine

    owner = SparkEngine(TEST_SPARK)
    yield owner
    owner.close()


@pytest.fixture
def spark(spark_session_owner) -> Iterator[object]:
    """A SparkEngine on the shared session; its views and cached tables are dropped after the test."""
    from clickstream.engines.spark_engine import SparkEngine

    engine = SparkEngine(TEST_SPARK)
    assert not engine.owns_session
    yield engine
    engine.close()


@pytest.fixture
def duckdb_engine() -> Iterator[DuckDBEngine]:
    engine = DuckDBEngine(DuckDBSettings(threads=2))
    yield engine
    engine.close()
