"""Hostile, messy and changed input on both engines: the same rows in, the same tables out, every line accounted for.

One raw folder holds every kind of hostile input at once (tests/hostile.py); each engine runs the pipeline on
it, and every table must be equal. Then a file grows, another is corrected, an overlapping export arrives and
a correction takes away the copy silver kept: again equal on both engines, and the whole ledger balanced.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from clickstream import bronze
from clickstream.config import Config
from clickstream.pipeline import run_layers, verify

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import hostile  # noqa: E402
from engine_support import read_table, table_differences  # noqa: E402

pytestmark = pytest.mark.spark

ENGINES = ("duckdb", "spark")
TABLES = ["bronze", "silver", "quarantine", "duplicates", "gold/fct_events", "gold/dim_sessions", "gold/dim_users",
          "gold/dim_products", "gold/dim_date", "analytics/top_products", "analytics/conversion_funnel",
          "analytics/user_journey", "analytics/daily_activity"]
# bronze's run columns differ between runs, and its rows of a file split by csv_lines have their line numbers
IGNORED = ("batch_id", "ingestion_timestamp", "ingestion_date")


def config_for(root: Path, engine: str) -> Config:
    return Config.model_validate({"engine": engine, "sources": [{"name": "clickstream"}, hostile.PARIS_SOURCE],
                                  "paths": {"data_dir": str(root / engine), "logs_dir": str(root / f"logs-{engine}")}})


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory, spark_session_owner) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    lines = {}
    for engine in ENGINES:
        lines = hostile.write(root / engine / "raw")
        run_layers(config_for(root, engine))
    return {"root": root, "lines": lines, **{engine: root / engine for engine in ENGINES}}


@pytest.mark.parametrize("table", TABLES)
def test_every_table_of_the_hostile_folder_is_equal_on_both_engines(hostile_runs, table):
    expected, actual = read_table(hostile_runs["duckdb"] / table), read_table(hostile_runs["spark"] / table)
    assert expected is not None, f"{table} is empty: nothing compared"
    assert table_differences(expected, actual, exclude=IGNORED) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_every_line_of_the_hostile_folder_is_accounted_for_once(hostile_runs, engine):
    files = verify(config_for(hostile_runs["root"], engine))
    assert {f["source_file"]: f["bronze_rows"] for f in files} == hostile_runs["lines"]
    assert [f["source_file"] for f in files if not f["balanced"]] == []
    assert list(hostile_runs["root"].rglob("PWNED*")) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_each_hostile_input_took_its_own_way(hostile_runs, engine):
    data = hostile_runs[engine]
    quarantine = read_table(data / "quarantine").to_pylist()
    reasons = {(row["source_file"], row["rejection_reasons"], row["source_line"]) for row in quarantine}
    expected = {(name, reason, 4) for name, (_, reason) in hostile.MALFORMED.items()}
    expected |= {("truncated_export.csv", "malformed_short_row", 7), ("implausible.csv", "timestamp_out_of_range", None)}
    assert reasons == expected
    (bad_utf8,) = [row["raw_line"] for row in quarantine if row["source_file"] == "bad_utf8.csv"]
    assert bad_utf8 == "7,1,2024-03-01 10:00:00,page_\\xffview,,,\n"
    silver = read_table(data / "silver").to_pylist()
    per_file = {}
    for row in silver:
        per_file[row["source_file"]] = per_file.get(row["source_file"], 0) + 1
    assert {name: per_file.get(name) for name in hostile.NAMES} == {
        name: index + 1 for index, name in enumerate(hostile.NAMES)}
    assert sorted(row["product_id"] for row in silver if row["user_id"] == "hostile") == sorted(
        hostile.HOSTILE_PRODUCTS)
    assert sorted((row["user_id"], row["session_id"]) for row in silver if row["source_file"] == "separator.csv") == [
        ("a", "b\x1fc"), ("a\x1fb", "c")]
    assert [row["user_id"] for row in silver if row["source_file"] == "attack.csv"] == ["attacker"]
    assert [(row["source_file"], row["duplicate_kind"]) for row in read_table(data / "duplicates").to_pylist()] == [
        ("repeats.csv", "duplicate")]
    report = json.loads((data / "reports" / "quality_report.json").read_text())["last_run"]
    assert {r["path"]: r["reason"] for r in report["bronze"]["refused"]} == hostile.REFUSED
    assert report["bronze"]["unmatched"] == hostile.UNMATCHED
    assert report["bronze"]["copies"] == {"copy_of_a.csv": "a.csv"}
    assert report["silver"]["local_time_adjustments"] == [
        {"source_file": "paris_1.csv", "nonexistent_local_times": 1, "ambiguous_local_times": 1}]


def test_files_that_grow_change_and_overlap_stay_equal_on_both_engines(hostile_runs, tmp_path):
    roots = {}
    for engine in ENGINES:
        data = tmp_path / engine
        shutil.copytree(hostile_runs[engine], data, symlinks=True)
        config = config_for(tmp_path, engine)
        raw = data / "raw"
        with (raw / "a.csv").open("a") as handle:  # grows
            handle.write(hostile.rows("name1", 3, "2024-03-05"))
        names = raw / "with space.csv"  # corrected in place
        names.write_text(names.read_text().replace("page_view", "click", 1))
        # an overlapping export holds one of [a].csv's events (re-delivered), then [a].csv loses it
        (raw / "overlap.csv").write_text(hostile.HEADER + hostile.rows("name0", 1) + hostile.rows("more", 2))
        run_layers(config, ("bronze", "silver", "gold"))  # analytics merges as gold does: tested on DuckDB
        (raw / "[a].csv").write_text(hostile.HEADER)
        run_layers(config, ("bronze", "silver", "gold"))
        files = verify(config)
        assert [f["source_file"] for f in files if not f["balanced"]] == [], engine
        report = json.loads((data / "reports" / "quality_report.json").read_text())["last_run"]
        assert report["silver"]["retraction"]["promoted_rows"] == 1, engine
        roots[engine] = data
    for table in [t for t in TABLES[1:] if t.startswith(("silver", "quarantine", "duplicates", "gold"))]:
        expected, actual = read_table(roots["duckdb"] / table), read_table(roots["spark"] / table)
        assert table_differences(expected, actual) == [], table


@pytest.mark.parametrize("engine", ENGINES)
def test_lines_appended_while_bronze_reads_a_file_wait_for_the_next_run_and_are_ingested_once(tmp_path, engine,
                                                                                               request, monkeypatch):
    if engine == "spark":
        request.getfixturevalue("spark_session_owner")
    config = config_for(tmp_path, engine)
    raw = tmp_path / engine / "raw"
    raw.mkdir(parents=True)
    (raw / "a.csv").write_text(hostile.HEADER + hostile.rows("first", 4))
    (raw / "b.csv").write_text(hostile.HEADER + hostile.rows("other", 2))
    scan_all = bronze._scan_all

    def hashed_then_appended(*args):  # a writer appends to a.csv after bronze hashed it, before anything reads it
        scans = scan_all(*args)
        with (raw / "a.csv").open("a") as handle:
            handle.write(hostile.rows("later", 3, day="2024-03-02"))
        return scans

    monkeypatch.setattr(bronze, "_scan_all", hashed_then_appended)
    run_layers(config, ("bronze", "silver"))
    monkeypatch.undo()
    first = [("a.csv", "first", f"2024-03-01 10:0{i}:00") for i in range(4)] + [
        ("b.csv", "other", f"2024-03-01 10:0{i}:00") for i in range(2)]
    assert silver_lines(tmp_path / engine) == sorted(first)
    assert [(f["source_file"], f["file_rows"], f["bronze_rows"], f["balanced"]) for f in verify(config)] == [
        ("a.csv", 4, 4, True), ("b.csv", 2, 2, True)]
    run_layers(config, ("bronze", "silver"))
    later = [("a.csv", "later", f"2024-03-02 10:0{i}:00") for i in range(3)]
    assert silver_lines(tmp_path / engine) == sorted(first + later)
    assert read_table(tmp_path / engine / "quarantine") is None
    assert read_table(tmp_path / engine / "duplicates") is None
    assert [(f["source_file"], f["file_rows"], f["bronze_rows"], f["balanced"]) for f in verify(config)] == [
        ("a.csv", 7, 7, True), ("b.csv", 2, 2, True)]


def silver_lines(data: Path) -> list[tuple]:
    """Each silver event as (file, user, time)."""
    return sorted((row["source_file"], row["user_id"], str(row["event_ts"])) for row in read_table(data / "silver")
                  .to_pylist())
