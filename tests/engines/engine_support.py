"""Helpers of the engine tests: can Spark run here, and comparing two published tables whole, row by row."""
from __future__ import annotations

import importlib.util
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from clickstream.config import SparkSettings
from clickstream.incremental import PERIOD

# A test process's one SparkSession: one core and one shuffle partition (make test runs a process per core), UI
# off (the engine's default), adaptive query execution off; the catalog's warehouse folder (made when a test looks
# a view up) goes to the temp folder, not the repository. Adaptive execution plans each stage again as it runs:
# on the few rows of these tests that is planning and compiling and no gain, measured as a fifth to a third of a
# whole run's CPU. It decides how, not what: the engine keeps it on by default, and the comparison of the engines on
# generated data (test_differential.py) and the run on a standalone cluster (test_cluster.py) have it on.
TEST_SPARK = SparkSettings(master="local[1]", app_name="clickstream-tests", shuffle_partitions=1,
                           driver_memory="1g",
                           conf={"spark.sql.warehouse.dir": os.path.join(tempfile.gettempdir(),
                                                                         "clickstream-tests-warehouse"),
                                 "spark.sql.adaptive.enabled": "false"})

# The analytics settings of whole-pipeline comparisons that are not about the predictive models (those are compared
# on both engines in test_predictive.py and test_differential.py): their fit is most of a tiny run's analytics.
NO_PREDICTIVE = {"churn": {"enabled": False}, "clusters": {"enabled": False}}

# Columns that differ between any two runs, whatever the engine: the run id and the time of ingestion.
RUN_COLUMNS = ("batch_id", "ingestion_timestamp", "ingestion_date")
REL_TOL = 1e-9


def spark_unavailable() -> str | None:
    """Why Spark cannot run here, or None."""
    if importlib.util.find_spec("pyspark") is None:
        return "PySpark is not installed (pip install 'clickstream[spark]')"
    home = os.environ.get("JAVA_HOME")
    if not (home and os.path.isfile(os.path.join(home, "bin", "java"))) and not shutil.which("java"):
        return "no Java runtime (no java on PATH, no JAVA_HOME): Spark needs Java 17 or later"
    return None


def read_table(path: Path) -> pa.Table | None:
    """Every Parquet file under `path` (Hive partition folders included) as one Arrow table; None if none."""
    files = sorted(path.rglob("*.parquet")) if path.exists() else []
    if not files:
        return None  # an empty partitioned table has no file at all
    con = duckdb.connect()
    try:
        listing = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
        # `week=...` folders (a table stored by week) are layout only; other `key=value` folders are columns.
        hive = any("=" in part and not part.startswith(f"{PERIOD}=") for f in files for part in f.parts)
        return con.sql(f"select * from read_parquet({listing}, hive_partitioning = {str(hive).lower()})"
                       ).to_arrow_table()
    finally:
        con.close()


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((0,) if value is None else (1, value) for value in row)


def table_differences(expected: pa.Table | None, actual: pa.Table | None, exclude: tuple[str, ...] = RUN_COLUMNS,
                      limit: int = 5) -> list[str]:
    """What differs between two tables (empty when equal): schema, row count, then rows.

    Rows are sorted by every column, floating-point columns last, and compared exactly, except floating-point
    values, which may differ by a relative 1e-9 (summation order differs between engines).
    """
    if expected is None or actual is None:
        return [] if expected is actual else [f"one table has no files: {expected} != {actual}"]
    if expected.schema.names != actual.schema.names:
        return [f"columns differ: {expected.schema.names} != {actual.schema.names}"]
    types = [f"{f.name}: {f.type} != {g.type}" for f, g in zip(expected.schema, actual.schema) if f.type != g.type]
    if types:
        return ["types differ: " + "; ".join(types)]
    kept = [name for name in expected.schema.names if name not in exclude]
    floats = [name for name in kept if pa.types.is_floating(expected.schema.field(name).type)]
    order = [name for name in kept if name not in floats] + floats
    if expected.num_rows != actual.num_rows:
        return [f"row counts differ: {expected.num_rows} != {actual.num_rows}"]
    left = sorted(zip(*(expected.column(n).to_pylist() for n in order)), key=_sort_key)
    right = sorted(zip(*(actual.column(n).to_pylist() for n in order)), key=_sort_key)
    is_float = [name in floats for name in order]
    problems = []
    for index, (a, b) in enumerate(zip(left, right)):
        if not all(_equal(x, y, f) for x, y, f in zip(a, b, is_float)):
            problems.append(f"row {index}: {dict(zip(order, a))} != {dict(zip(order, b))}")
            if len(problems) >= limit:
                break
    return problems


def _equal(x: Any, y: Any, is_float: bool) -> bool:
    if x is None or y is None or not is_float:
        return x == y and type(x) is type(y)
    return math.isclose(x, y, rel_tol=REL_TOL, abs_tol=0.0) or (math.isnan(x) and math.isnan(y))
