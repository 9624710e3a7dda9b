"""The benchmark's hand-written baselines do the same work as the project: whole outputs compared, real runs.

Timings are never asserted here: the benchmark prints numbers (benchmarks/run.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import variants  # noqa: E402
from benchmarks.compare import ANALYTICS_TABLES, GOLD_TABLES, LAYER_TABLES, compare_dirs  # noqa: E402
from clickstream.generate import generate  # noqa: E402

ALL_TABLES = LAYER_TABLES + GOLD_TABLES + ANALYTICS_TABLES


def run_variant(variant: str, data_dir: Path, raw_files: list[Path]) -> None:
    """Run one benchmark variant on raw_files (hard-linked into data_dir/raw), as the benchmark does."""
    (data_dir / "raw").mkdir(parents=True)
    for source in raw_files:
        (data_dir / "raw" / source.name).hardlink_to(source)
    settings = variants.engine_settings(variants.DEFAULT_CONFIG)
    settings["duckdb"]["threads"] = 2
    cmd = variants.command(variant, data_dir, variants.DEFAULT_CONFIG, settings)
    done = subprocess.run(cmd, cwd=data_dir, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{variant} failed:\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def raw_files(tmp_path_factory) -> list[Path]:
    # Two files, so late rows arrive in another file than their time slice; every defect kind is present.
    return generate(tmp_path_factory.mktemp("generated"), rows=3000, seed=11, files=2).files


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory, raw_files) -> Path:
    data_dir = tmp_path_factory.mktemp("project")
    run_variant("project-duckdb", data_dir, raw_files)
    return data_dir


def assert_same_outputs(expected: Path, actual: Path) -> None:
    comparison = compare_dirs(expected, actual, full_content_max_rows=10**9)
    assert comparison.problems() == [], comparison.render()
    assert [t.table for t in comparison.tables] == ALL_TABLES
    assert [t.table for t in comparison.tables if not t.content_compared] == []
    assert all(t.expected_rows > 0 for t in comparison.tables), comparison.render()


def test_plain_duckdb_writes_what_the_project_writes(tmp_path, raw_files, project_dir):
    run_variant("plain-duckdb", tmp_path, raw_files)
    assert_same_outputs(project_dir, tmp_path)


def test_minimal_duckdb_keeps_quarantines_and_drops_the_rows_the_project_does(tmp_path, raw_files, project_dir):
    from benchmarks.check_baselines import ledger_problems

    run_variant("minimal-duckdb", tmp_path, raw_files)
    assert ledger_problems(project_dir, tmp_path) == []
    reasons = duckdb.sql(f"select rejection_reasons, count(*) from '{tmp_path}/minimal/quarantine.parquet' "
                         f"group by all").fetchall()
    expected = duckdb.sql(f"select rejection_reasons, count(*) from read_parquet('{project_dir}/quarantine/*/*.parquet')"
                          f" group by all").fetchall()
    assert sorted(reasons) == sorted(expected)


@pytest.mark.spark
@pytest.mark.slow
def test_plain_pyspark_writes_what_the_project_writes(request, tmp_path, raw_files, project_dir):
    # A Spark job of ~150 stages: over a minute on 2 cores, so it runs only when asked for.
    asked = any(m in (request.config.getoption("markexpr") or "") for m in ("spark", "slow"))
    if not asked and not os.environ.get("CLICKSTREAM_BENCH_SPARK_CHECK"):
        pytest.skip("plain PySpark baseline check takes over a minute: run it with `pytest -m slow` or `-m spark`, "
                    "or benchmarks/check_baselines.py")
    run_variant("plain-pyspark", tmp_path, raw_files)
    assert_same_outputs(project_dir, tmp_path)


# ---- the comparison itself must see a difference, or the two tests above prove nothing
def write_table(root: Path, rows: list[tuple[int, str, float]]) -> None:
    (root / "analytics" / "top_products").mkdir(parents=True)
    values = ", ".join(f"({rank}, '{product}', {rate!r}::double)" for rank, product, rate in rows) if rows else None
    query = (f"select * from (values {values}) t(view_rank, product_id, view_to_cart_rate)" if values else
             "select 1 as view_rank, 'x' as product_id, 0.5 as view_to_cart_rate where false")
    duckdb.execute(f"copy ({query}) to '{root}/analytics/top_products/data.parquet' (format parquet)")


EXPECTED = [(1, "prod_0001", 0.25), (2, "prod_0002", 0.5), (3, "prod_0003", 1 / 3)]


@pytest.mark.parametrize("actual, problems", [
    (EXPECTED, []),
    ([(1, "prod_0001", 0.25), (2, "prod_0002", 0.5), (3, "prod_0003", 0.3333333333333334)], []),  # rounding only
    ([(1, "prod_0001", 0.25), (2, "prod_0002", 0.5), (3, "prod_0003", 0.3334)],
     ["top_products: sorted row 2: (expected, actual) {'view_to_cart_rate': (0.3333333333333333, 0.3334)}"]),
    ([(1, "prod_0001", 0.25), (2, "prod_0009", 0.5), (3, "prod_0003", 1 / 3)],
     ["top_products: sorted row 1: (expected, actual) {'product_id': ('prod_0002', 'prod_0009')}"]),
    (EXPECTED[:2], ["top_products: row count 2 != expected 3"]),
    (None, ["top_products: no Parquet files under ACTUAL/analytics/top_products"]),
], ids=["same", "last-bit-rounding", "changed-rate", "changed-product", "missing-row", "missing-table"])
def test_comparison_reports_every_difference(tmp_path, actual, problems):
    write_table(tmp_path / "expected", EXPECTED)
    if actual is not None:
        write_table(tmp_path / "actual", actual)
    comparison = compare_dirs(tmp_path / "expected", tmp_path / "actual", tables=["top_products"])
    assert comparison.problems() == [p.replace("ACTUAL", str(tmp_path / "actual")) for p in problems]
    assert comparison.ok is (problems == [])
