"""Shared fixtures: a real DuckDB engine, generated data, and the shared real dataset."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from clickstream.config import DuckDBSettings
from clickstream.engines.duckdb_engine import DuckDBEngine

sys.path.insert(0, str(Path(__file__).parent))  # the tests' own helpers module

from helpers import SHARED_DATASET  # noqa: E402


@pytest.fixture
def duck():
    engine = DuckDBEngine(DuckDBSettings(threads=2))
    yield engine
    engine.close()


@pytest.fixture
def shared_dataset() -> Path:
    if not SHARED_DATASET.is_file():
        pytest.skip(f"the shared dataset is not at {SHARED_DATASET} (it is always present in CI)")
    return SHARED_DATASET
