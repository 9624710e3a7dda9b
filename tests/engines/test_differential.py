"""The whole pipeline on DuckDB and on Spark from the same raw files: every output table must be equal.

Datasets: generated data with every injected defect, the shared real dataset, and a few rows of odd values
ingested in two batches. Each runs once per engine (module-scoped), then each table is compared whole.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from clickstream import analytics, gold, predictive
from clickstream.config import Config
from clickstream.generate import generate
from clickstream.pipeline import run_layers

from engine_support import NO_PREDICTIVE, read_table, table_differences

pytestmark = pytest.mark.spark

SHARED_DATASET = (Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
                  / "ecommerce_clickstream_transactions" / "ecommerce_clickstream_transactions.csv")
ENGINES = ("duckdb", "spark")
TABLES = (["silver", "quarantine"]
          + [f"gold/{m['name']}" for m in gold.models() if m.get("publish", True)]
          + [f"analytics/{q['name']}" for q in analytics.queries(config=Config())])
CSV_OUTPUTS = [f"analytics/{q['name']}.csv" for q in analytics.queries(config=Config()) if q.get("csv", True)]


def run_both(root: Path, raw_files: list[Path], with_models: bool = True) -> dict[str, Path]:
    """Each engine's data directory after a full run on the same raw files (linked, never copied). The HTML page
    is left out: it is drawn from the tables compared here, by the same code on either engine."""
    data_dirs = {}
    for engine in ENGINES:
        data_dir = root / engine
        (data_dir / "raw").mkdir(parents=True)
        for file in raw_files:
            (data_dir / "raw" / file.name).symlink_to(file.resolve())
        analytics_settings = {"html_report": False, **({} if with_models else NO_PREDICTIVE)}
        config = Config().with_overrides(data_dir=data_dir, engine=engine, logs_dir=root / f"logs-{engine}")
        config = Config.model_validate({**config.model_dump(), "analytics": {**config.analytics.model_dump(),
                                                                             **analytics_settings}})
        run_layers(config)
        data_dirs[engine] = data_dir
    return data_dirs


@pytest.fixture(scope="module")
def generated(tmp_path_factory, spark_session_owner) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("generated")
    result = generate(root / "source", rows=10_000, seed=7, files=3)
    assert all(result.defects[kind] > 0 for kind in result.defects), result.defects  # every defect present
    # with adaptive query execution on, as the engine starts a session (the test session has it off)
    conf = spark_session_owner.spark.conf
    before = conf.get("spark.sql.adaptive.enabled")
    conf.set("spark.sql.adaptive.enabled", "true")
    try:
        return run_both(root, result.files)
    finally:
        conf.set("spark.sql.adaptive.enabled", before)


@pytest.fixture(scope="module")
def shared(tmp_path_factory, spark_session_owner) -> dict[str, Path]:
    if not SHARED_DATASET.is_file():
        pytest.skip(f"the shared dataset is not at {SHARED_DATASET.resolve()}")
    # its events carry no churn signal (churn_model is insufficient_history): the models are compared on the
    # generated data, where they fit
    return run_both(tmp_path_factory.mktemp("shared"), [SHARED_DATASET], with_models=False)


DATASETS = ["generated", pytest.param("shared", marks=pytest.mark.slow)]


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("dataset", DATASETS)
def test_every_table_is_equal(request, dataset, table):
    runs = request.getfixturevalue(dataset)
    expected, actual = read_table(runs["duckdb"] / table), read_table(runs["spark"] / table)
    assert expected is not None or table == "quarantine", f"{table} is empty: nothing compared"
    assert table_differences(expected, actual) == []


@pytest.mark.parametrize("output", CSV_OUTPUTS)
def test_every_analytics_csv_holds_the_same_values(generated, output):
    # Same columns and values; only the spelling of doubles differs (Spark writes 1.0E-4 for 0.0001).
    tables = [pacsv.read_csv(generated[engine] / output) for engine in ENGINES]
    assert table_differences(tables[0], tables[1], exclude=()) == []


@pytest.mark.parametrize("dataset", DATASETS)
def test_the_report_shows_the_same_rows_on_both_engines(request, dataset):
    # each table's first rows in its natural order (queries.yml), formatted for people: only the run id differs
    runs = request.getfixturevalue(dataset)
    reports = [(runs[engine] / "analytics" / "REPORT.md").read_text(encoding="utf-8").splitlines()
               for engine in ENGINES]
    assert [[line for line in report if not line.startswith("Run ")] for report in reports] == [
        [line for line in reports[0] if not line.startswith("Run ")]] * 2
    models = len(predictive.enabled(Config().analytics)) if dataset == "generated" else 0  # see `shared`
    assert sum(line.startswith("## ") for line in reports[0]) == len(analytics.queries(config=Config())) + models


@pytest.mark.parametrize("dataset", DATASETS)
def test_ledgers_reasons_and_manifests_are_equal(request, dataset):
    runs = request.getfixturevalue(dataset)

    def summary(data_dir: Path) -> dict:
        silver_state = json.loads((data_dir / "_state" / "silver_state.json").read_text())
        quality = json.loads((data_dir / "reports" / "quality_report.json").read_text())["last_run"]
        manifest = json.loads((data_dir / "_state" / "bronze_manifest.json").read_text())
        (run,) = silver_state["runs"].values()
        return {
            "ledger": run["ledger"], "totals": run["totals"],
            "rejection_reasons": quality["silver"]["rejection_reasons"],
            "bronze_null_counts": {f["path"]: f["null_counts"] for f in quality["bronze"]["files"]},
            "bronze_files": {path: (f["rows"], f["sha256"]) for path, f in manifest["files"].items()},
            "gold_row_counts": quality["gold"]["row_counts"],
            "gold_tests": quality["gold"]["tests"],
            "analytics_row_counts": quality["analytics"]["row_counts"],
        }

    duckdb_summary, spark_summary = summary(runs["duckdb"]), summary(runs["spark"])
    assert spark_summary == duckdb_summary
    assert sum(duckdb_summary["rejection_reasons"]["overall"].values()) > 0 or dataset == "shared"


def test_rerun_ingests_nothing(generated, tmp_path):
    data_dir = tmp_path / "spark"
    shutil.copytree(generated["spark"], data_dir, symlinks=True)  # the other tests keep the original
    manifest = (data_dir / "_state" / "bronze_manifest.json").read_text()
    results = run_layers(Config().with_overrides(data_dir=data_dir, engine="spark", logs_dir=tmp_path / "logs"),
                         ("bronze", "silver"))
    assert (results["bronze"], results["silver"]) == (None, None)
    assert (data_dir / "_state" / "bronze_manifest.json").read_text() == manifest


# ---- odd values, in two batches: what each engine lets into silver, and why it quarantines the rest

HEADER = ["UserID", "SessionID", "Timestamp", "EventType", "ProductID", "Amount", "Outcome"]
FIRST_BATCH = [
    # (row, rejection reasons)
    (["1", "1", "2024-01-05 10:00:00.5", "purchase", "p1", "12.345", "purchase"], ""),  # rounds half up
    (["1", "1", "2024-1-5 10:00:07", "purchase", "p1", "-0.005", "purchase"], "negative_amount"),
    (["1", "1", "2024-01-05 10:01:00", "purchase", "p1", "1_000", "purchase"], "invalid_amount"),
    (["1", "1", "2024-01-05 10:02:00", "purchase", "p1", "١٢", "purchase"], "invalid_amount"),  # Arabic digits
    (["1", "1", "2024-01-05 10:03:00", "purchase", "p1", "1e2", "purchase"], ""),
    (["1", "1", "2024-01-05 10:04:00", "purchase", "p1", ".5", "purchase"], ""),
    (["1", "1", "2024-01-05 10:05:00", "purchase", "p1", "12,50", "purchase"], "invalid_amount"),
    (["1", "1", "2024-01-05 10:06:00", "purchase", "p1", "99999999999999999.99", "purchase"], "invalid_amount"),
    (["2", "", "2024-01-05 9:5:3", "page_view", "", "", ""], ""),
    (["2", "", "2024-01-05 25:00:00", "page_view", "", "", ""], "invalid_timestamp"),
    (["", " ", "yesterday", "", "", "abc", ""], "missing_user_id;missing_event_type;invalid_timestamp;invalid_amount"),
    (["3", "1", "", "product_view", "", "", ""], "missing_timestamp;missing_product_id"),
    ([" 4 ", "1", " 2024-01-06 10:00:00 ", " click ", "", "", ""], ""),
    (["4", "1", "2024-01-06 10:00:00", "click", "", "", ""], ""),  # the same event as the row above
]
LENIENT_QUALITY = {"quarantine_rate": {"warn": 1.0, "fail": 1.0}, "duplicate_rate": {"warn": 1.0, "fail": 1.0}}
SECOND_BATCH = [
    (["4", "1", "2024-01-06 10:00:00", "click", "", "", ""], ""),  # already in silver: re-delivered
    (["5", "2", "2024-01-07 10:00:00.000001", "add_to_cart", "p2", "", ""], ""),
]


@pytest.fixture(scope="module")
def odd_values(tmp_path_factory, spark_session_owner) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("odd")
    data_dirs = {}
    for engine in ENGINES:
        data_dir = root / engine
        config = Config().with_overrides(data_dir=data_dir, engine=engine, logs_dir=root / f"logs-{engine}",
                                         quality=LENIENT_QUALITY)  # these rows are mostly defects, on purpose
        for name, rows in (("odd_1.csv", FIRST_BATCH), ("odd_2.csv", SECOND_BATCH)):
            (data_dir / "raw").mkdir(parents=True, exist_ok=True)
            with (data_dir / "raw" / name).open("w", newline="", encoding="utf-8") as handle:
                csv.writer(handle, lineterminator="\n").writerows([HEADER] + [row for row, _ in rows])
            run_layers(config, ("bronze", "silver"))
        data_dirs[engine] = data_dir
    return data_dirs


@pytest.mark.parametrize("table", ["silver", "quarantine"])
def test_odd_values_take_the_same_way_on_both_engines(odd_values, table):
    expected, actual = read_table(odd_values["duckdb"] / table), read_table(odd_values["spark"] / table)
    assert table_differences(expected, actual) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_odd_values_are_quarantined_for_their_reasons(odd_values, engine):
    quarantine = read_table(odd_values[engine] / "quarantine")
    reasons = sorted(zip(quarantine.column("Timestamp").to_pylist(), quarantine.column("Amount").to_pylist(),
                         quarantine.column("rejection_reasons").to_pylist()), key=str)
    expected = sorted(((row[2] or None, row[5] or None, why) for row, why in FIRST_BATCH + SECOND_BATCH if why),
                      key=str)
    assert reasons == expected
    silver = read_table(odd_values[engine] / "silver").sort_by([("event_ts", "ascending")])
    assert [str(v) for v in silver.column("amount").to_pylist()] == [
        "None", "12.35", "100.00", "0.50", "None", "None"]
    assert silver.column("source_file").to_pylist() == [
        "odd_1.csv", "odd_1.csv", "odd_1.csv", "odd_1.csv", "odd_1.csv", "odd_2.csv"]
    state = json.loads((odd_values[engine] / "_state" / "silver_state.json").read_text())
    # the two runs' totals, the bigger first
    assert sorted((r["totals"] for r in state["runs"].values()), key=lambda t: -t["bronze_rows"]) == [
        {"bronze_rows": 14, "silver_rows": 5, "quarantine_rows": 8, "duplicate_rows": 1, "redelivered_rows": 0},
        {"bronze_rows": 2, "silver_rows": 1, "quarantine_rows": 0, "duplicate_rows": 0, "redelivered_rows": 1},
    ]


def test_the_comparison_sees_a_difference():
    base = pa.table({"n": [1, 2], "x": [0.1, 0.2], "s": ["a", None]})
    assert table_differences(base, base.take([1, 0])) == []  # order does not matter
    assert table_differences(base, pa.table({"n": [1, 2], "x": [0.1, 0.2 * (1 + 1e-8)], "s": ["a", None]}))
    assert table_differences(base, pa.table({"n": [1, 3], "x": [0.1, 0.2], "s": ["a", None]}))
    assert table_differences(base, pa.table({"n": [1, 2], "x": [0.1, 0.2], "s": ["a", ""]}))
    assert table_differences(base, base.cast(pa.schema([("n", pa.int32()), ("x", pa.float64()), ("s", pa.string())])))
