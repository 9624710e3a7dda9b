"""The comparison that holds the benchmark's hand-written baselines to the project's outputs sees every difference.

Whether the baselines do the same work as the project is checked by the benchmark itself (`make bench`, or
benchmarks/check_baselines.py), before it times them; timings are never asserted here.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.check_baselines import ledger_problems  # noqa: E402
from benchmarks.compare import compare_dirs  # noqa: E402


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


def test_a_column_named_as_excepted_is_not_compared_and_the_others_still_are(tmp_path):
    """The JSON-lines variant reads the same events from files named *.jsonl: its source_file differs by design."""
    write_table(tmp_path / "expected", EXPECTED)
    write_table(tmp_path / "actual", [(rank, f"other_{product}", rate) for rank, product, rate in EXPECTED])
    assert compare_dirs(tmp_path / "expected", tmp_path / "actual", tables=["top_products"],
                        excepted=("product_id",)).ok
    write_table(tmp_path / "changed", [(rank, f"other_{product}", 0.9) for rank, product, _ in EXPECTED])
    assert compare_dirs(tmp_path / "expected", tmp_path / "changed", tables=["top_products"],
                        excepted=("product_id",)).problems()[0].startswith("top_products: sorted row 0")


def write_ledgers(root: Path, project_reasons: list[list[str]], minimal_reasons: list[list[str]]) -> tuple[Path, Path]:
    """A project's and a minimal baseline's data directories holding just what the ledger check reads."""
    project, minimal = root / "project", root / "minimal-run"
    totals = {"bronze_rows": 10, "silver_rows": 7, "quarantine_rows": len(project_reasons), "duplicate_rows": 1,
              "redelivered_rows": 0}
    (project / "reports").mkdir(parents=True)
    (project / "reports" / "quality_report.json").write_text(json.dumps({"silver": {"totals": totals}}))
    (project / "quarantine" / "ingestion_date=2024-01-01").mkdir(parents=True)
    (minimal / "reports").mkdir(parents=True)
    (minimal / "minimal").mkdir()
    counts = {**{k: totals[k] for k in ("bronze_rows", "silver_rows", "duplicate_rows")},
              "quarantine_rows": len(minimal_reasons)}
    (minimal / "reports" / "timings.json").write_text(json.dumps({"row_counts": counts}))
    for reasons, path in ((project_reasons, project / "quarantine" / "ingestion_date=2024-01-01" / "q.parquet"),
                          (minimal_reasons, minimal / "minimal" / "quarantine.parquet")):
        duckdb.execute("create or replace temp table q (rejection_reasons varchar[])")
        duckdb.executemany("insert into q values (?)", [[r] for r in reasons])
        duckdb.execute(f"copy q to '{path}' (format parquet)")
    return project, minimal


@pytest.mark.parametrize("minimal_reasons, problems", [
    ([["missing_user_id"], ["invalid_timestamp", "missing_user_id"]], []),
    ([["missing_user_id"], ["invalid_timestamp"]],
     ["quarantine rows for [invalid_timestamp, missing_user_id]: project 1, minimal 0",
      "quarantine rows for [invalid_timestamp]: project 0, minimal 1"]),
    ([["missing_user_id"]], ["quarantine_rows: project 2, minimal 1",
                             "quarantine rows for [invalid_timestamp, missing_user_id]: project 1, minimal 0"]),
], ids=["same", "other-reasons", "a-row-short"])
def test_the_minimal_baseline_is_held_to_the_ledger_and_the_reasons(tmp_path, minimal_reasons, problems):
    project, minimal = write_ledgers(tmp_path, [["missing_user_id"], ["invalid_timestamp", "missing_user_id"]],
                                     minimal_reasons)
    assert ledger_problems(project, minimal) == problems


@pytest.mark.slow
def test_the_duckdb_baselines_still_do_the_projects_work(tmp_path):
    """The plain DuckDB script gives every table the project gives, row for row, and the minimal one its ledger,
    on the check's small dataset: a change to the project's outputs that the baselines miss fails here, not only
    at the next benchmark (whose timings would compare unequal work)."""
    from benchmarks.check_baselines import run_check

    result = run_check(tmp_path / "cache", ["plain-duckdb", "minimal-duckdb"], rows=5_000)
    assert {name: variant.get("problems") or variant.get("error") for name, variant in result["variants"].items()
            if not variant["ok"]} == {}
    assert sorted(result["variants"]) == ["minimal-duckdb", "plain-duckdb"] and result["ok"]
