"""Shared fixtures: a real DuckDB engine, generated data, and the shared real dataset."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests: a few examples from a fixed seed on every run (CI included); many more with
# HYPOTHESIS_PROFILE=deep (`make test-deep`). Failing examples are kept under .hypothesis/ to be replayed.
settings.register_profile("default", max_examples=6, derandomize=True)
settings.register_profile("deep", max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

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
