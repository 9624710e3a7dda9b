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
from clickstream.csv_lines import MAX_RECORD_BYTES, SHOWN_BYTES
from clickstream.pipeline import run_layers, verify


from clickstream.pipeline import repair_manifest, run_layers, verify, verify_all

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import hostile  # noqa: E402
from engine_support import NO_PREDICTIVE, read_table, table_differences  # noqa: E402

pytestmark = pytest.mark.spark

ENGINES = ("duckdb", "spark")
TABLES = ["bronze", "silver", "quarantine", "duplicates", "gold/fct_events", "gold/dim_sessions", "gold/dim_users",
          "gold/dim_products", "gold/dim_date", "analytics/top_products", "analytics/conversion_funnel",
          "analytics/user_journey", "analytics/daily_activity"]
# bronze's run columns differ between runs, and its rows of a file split by csv_lines have their line numbers
IGNORED = ("batch_id", "ingestion_timestamp", "ingestion_date")


def config_for(root: Path, engine: str) -> Config:
    return Config.model_validate({"engine": engine, "sources": [{"name": "clickstream"}, hostile.PARIS_SOURCE],
                                  "analytics": NO_PREDICTIVE,  # compared on both engines in test_predictive.py
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


# ---- a file without a header (csv.header: false): columns by position

TAOBAO = {"name": "taobao", "glob": "UserBehavior*.csv", "csv": {"header": False},
          "columns": {"UserID": 0, "SessionID": None, "Timestamp": 4, "EventType": 3, "ProductID": 1, "Amount": None,
                      "Outcome": None},
          "event_types": {"pv": "product_view", "cart": "add_to_cart", "fav": "favorite", "buy": "purchase"}}
# A Taobao UserBehavior-like export: user_id,item_id,category_id,behavior_type,timestamp and no header line
USER_BEHAVIOR = ("1,2268318,2520377,pv,2017-11-25 09:00:00\n"
                 "1,2333346,2520771,cart,2017-11-25 09:05:00\n"
                 "1,2576651,149192,fav,2017-11-25 09:10:00\n"
                 "2,3830808,4181361,buy,2017-11-25 10:00:00\n"
                 "2,4365585,2520377,pv,2017-11-25 10:01:00,extra\n")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_headerless_file_is_read_by_position_on_both_engines(tmp_path, engine, request):
    if engine == "spark":
        request.getfixturevalue("spark_session_owner")
    config = Config.model_validate({"engine": engine, "sources": [TAOBAO],
                                    "silver": {"extra_event_types": ["favorite"]},
                                    "paths": {"data_dir": str(tmp_path / "data"), "logs_dir": str(tmp_path / "logs")}})
    data = tmp_path / "data"
    (data / "raw").mkdir(parents=True)
    (data / "raw" / "UserBehavior.csv").write_text(USER_BEHAVIOR)
    (data / "raw" / "UserBehavior_cut.csv").write_text("3,1,2\n")  # a position beyond the row: refused, like a column
    run_layers(config, ("bronze", "silver"))
    with (data / "raw" / "UserBehavior.csv").open("a") as handle:  # appended lines: no header line to skip
        handle.write("3,46259,2520377,pv,2017-11-26 08:00:00\n")
    run_layers(config, ("bronze", "silver"))
    silver = read_table(data / "silver").to_pylist()
    assert sorted((r["user_id"], r["product_id"], r["event_type"], str(r["event_ts"]), r["source_name"])
                  for r in silver) == [
        ("1", "2268318", "product_view", "2017-11-25 09:00:00", "taobao"),
        ("1", "2333346", "add_to_cart", "2017-11-25 09:05:00", "taobao"),
        ("1", "2576651", "favorite", "2017-11-25 09:10:00", "taobao"),
        ("2", "3830808", "purchase", "2017-11-25 10:00:00", "taobao"),  # no price column: a purchase all the same
        ("3", "46259", "product_view", "2017-11-26 08:00:00", "taobao")]
    quarantine = read_table(data / "quarantine").to_pylist()
    assert sorted(((r["UserID"], r["EventType"], r["rejection_reasons"], r["source_line"], r["raw_line"])
                   for r in quarantine), key=str) == [
        (None, None, "malformed_long_row", 5, "2,4365585,2520377,pv,2017-11-25 10:01:00,extra\n")]
    manifest = json.loads((data / "_state" / "bronze_manifest.json").read_text())
    assert (manifest["files"]["UserBehavior.csv"]["records"], manifest["files"]["UserBehavior.csv"]["rows"]) == (6, 6)
    assert manifest["refused"]["UserBehavior_cut.csv"]["reason"] == (
        "column position(s) 3 (EventType), 4 (Timestamp) mapped by source 'taobao' are beyond the 3 field(s) of the "
        "first line (csv.header: false; positions count from 0)")
    assert [(f["source_file"], f["bronze_rows"], f["balanced"]) for f in verify(config)] == [
        ("UserBehavior.csv", 6, True)]


def test_long_fields_and_records_beyond_the_limit_are_read_the_same_on_both_engines(tmp_path, spark_session_owner):
    # fields beyond Python csv's 131,072 characters, in a file read by the engine and in one split by csv_lines;
    # records beyond csv_lines.MAX_RECORD_BYTES, one quarantined record each (over.csv is split for it alone)
    long, two_lines = "p" * 200_000, '"' + "a" * 100_000 + "\n" + "b" * 100_000 + '"'

    def row(user: str, product: str) -> str:
        return f"{user},1,2024-03-01 11:00:00,page_view,{product},,\n"

    roots = {}
    for engine in ENGINES:
        raw = tmp_path / engine / "raw"
        raw.mkdir(parents=True)
        (raw / "direct.csv").write_text(hostile.HEADER + row("d1", "") + row("d2", long) + row("d3", two_lines))
        (raw / "split.csv").write_text(hostile.HEADER + row("s1", two_lines) + "7,1\n" + row("s2", long)
                                       + row("s3", "x" * MAX_RECORD_BYTES) + row("s4", ""))
        (raw / "over.csv").write_text(hostile.HEADER + row("o1", "y" * MAX_RECORD_BYTES) + row("o2", ""))
        config = Config.model_validate({"engine": engine, "paths": {"data_dir": str(tmp_path / engine),
                                                                    "logs_dir": str(tmp_path / f"logs-{engine}")}})
        run_layers(config, ("bronze", "silver"))
        assert {f["source_file"]: (f["bronze_rows"], f["balanced"]) for f in verify(config)} == {
            "direct.csv": (3, True), "split.csv": (5, True), "over.csv": (2, True)}, engine
        roots[engine] = tmp_path / engine
    silver = read_table(roots["duckdb"] / "silver").to_pylist()
    assert sorted((r["source_file"], r["user_id"], r["product_id"]) for r in silver) == [
        ("direct.csv", "d1", None), ("direct.csv", "d2", long), ("direct.csv", "d3", two_lines.strip('"')),
        ("over.csv", "o2", None), ("split.csv", "s1", two_lines.strip('"')), ("split.csv", "s2", long),
        ("split.csv", "s4", None)]
    quarantine = read_table(roots["duckdb"] / "quarantine").to_pylist()
    assert sorted((r["source_file"], r["source_line"], r["rejection_reasons"], r["raw_line"]) for r in quarantine) == [
        ("over.csv", 2, "malformed_too_long", row("o1", "y" * MAX_RECORD_BYTES)[:SHOWN_BYTES]),
        ("split.csv", 4, "malformed_short_row", "7,1\n"),
        ("split.csv", 6, "malformed_too_long", row("s3", "x" * MAX_RECORD_BYTES)[:SHOWN_BYTES])]
    for table in ("bronze", "silver", "quarantine"):
        expected, actual = read_table(roots["duckdb"] / table), read_table(roots["spark"] / table)
        assert table_differences(expected, actual, exclude=IGNORED) == [], table


def test_a_lost_manifest_rebuilt_from_bronze_counts_every_line_once_on_both_engines(hostile_runs, tmp_path):
    rebuilt = {}
    for engine in ENGINES:
        data = tmp_path / engine
        shutil.copytree(hostile_runs[engine], data, symlinks=True)
        config = config_for(tmp_path, engine)
        manifest = data / "_state" / "bronze_manifest.json"
        lost = json.loads(manifest.read_text())
        manifest.unlink()
        done = repair_manifest(config)
        entries = json.loads(manifest.read_text())["files"]
        held = {path: entry["rows"] for path, entry in lost["files"].items() if entry["rows"]}
        assert {path: entry["rows"] for path, entry in entries.items()} == held, engine
        assert {path: entries[path]["sha256"] for path in done.recovered} == {
            path: lost["files"][path]["sha256"] for path in done.recovered}, engine
        assert sorted([*done.recovered, *done.unrecovered]) == sorted(held), engine
        run_layers(config, ("bronze", "silver"))
        files, problems = verify_all(config)
        assert problems == [], engine
        assert [f["source_file"] for f in files if not f["balanced"]] == [], engine
        assert {f["source_file"]: f["bronze_rows"] for f in files} == hostile_runs["lines"], engine
        rebuilt[engine] = done.unrecovered  # (a gzip file's bytes differ between the two folders: its header's time)
    assert rebuilt["duckdb"] == rebuilt["spark"]


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
