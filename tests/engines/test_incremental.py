"""Incremental builds on both engines: a run that adds a batch must publish what a run from scratch publishes.

The second batch is made of the awkward cases: a late event that joins two visits into one (a session key
disappears, later journey rows are renumbered), a new user, a returning user on a new day whose last events
share a timestamp, and a copy of an event already ingested.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from clickstream import analytics, gold, incremental, predictive
from clickstream.config import Config
from clickstream.pipeline import run_layers
from clickstream.report.tables import NO_EVENTS
from clickstream.silver import CHANGES_SCHEMA
from clickstream.sql import render
from helpers import inline_table, ts

from engine_support import NO_PREDICTIVE, read_table, table_differences

HEADER = "UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"
FIRST_BATCH = [
    "u1,s1,2024-01-01 10:00:00,page_view,,,",
    "u1,s1,2024-01-01 10:40:00,product_view,p1,,",
    "u1,s1,2024-01-17 09:00:00,purchase,p1,10.00,purchase",
    "u1,s2,2024-01-01 10:15:00,page_view,,,",  # another supplied session, over the time of u1's late event
    "u1,s2,2024-01-01 10:25:00,page_view,,,",
    "u2,s1,2024-01-01 12:00:00,page_view,,,",
    "u2,s1,2024-01-09 12:00:00,add_to_cart,p2,,",
    "u4,s2,2024-01-02 08:00:00,page_view,,,",  # an earlier visit, which stands when u4's new event comes
    "u4,s2,2024-01-09 08:00:00,page_view,,,",
    "u4,s2,2024-01-09 08:00:00,product_view,p3,,",  # the same time: a tie, broken by the event id
]
SECOND_BATCH = [
    "u1,s1,2024-01-01 10:20:00,add_to_cart,p1,,",  # late: 10:00 and 10:40 become one visit
    "u1,s1,2024-01-01 10:50:00,add_to_cart,p1,,",  # late: u1's funnel attempt of the 1st reaches step 2
    "u1,s0,2023-12-31 23:59:00,page_view,,,",  # late, before midnight: u1's cohort moves a week earlier
    "u3,s1,2024-01-24 10:00:00,page_view,,,",  # a new user
    "u4,s2,2024-01-24 08:10:00,purchase,p3,5.50,purchase",  # a returning user, on a new day
    "u2,s1,2024-01-10 12:00:00,page_view,,,",  # after u2's last event: only added to its week
    "u2,s1,2024-01-01 12:00:00,page_view,,,",  # already ingested: a duplicate
]
THIRD_BATCH = ["u2,s1,2024-01-11 12:00:00,page_view,,,"]  # after every published event of the 8th's week
TABLES = ([f"gold/{m['name']}" for m in gold.models() if m.get("publish", True)]
          + [f"analytics/{q['name']}" for q in analytics.queries()])

ENGINES = ["duckdb", pytest.param("spark", marks=pytest.mark.spark)]


def write_batch(data_dir: Path, name: str, rows: list[str]) -> None:
    (data_dir / "raw").mkdir(parents=True, exist_ok=True)
    (data_dir / "raw" / name).write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")


def config_for(data_dir: Path, engine: str, session_timeout_minutes: float = 30) -> Config:
    """The defaults, but a batch of four rows may hold a duplicate, and the session timeout can be set."""
    data = Config().with_overrides(data_dir=data_dir, engine=engine, logs_dir=data_dir.parent / "logs").model_dump()
    data["quality"]["duplicate_rate"] = {"warn": 0.5, "fail": 0.5}
    data["gold"]["session_timeout_minutes"] = session_timeout_minutes
    data["analytics"].update(NO_PREDICTIVE)  # not per-user results: built whole (tests/engines/test_predictive.py)
    return Config.model_validate(data)


def run(data_dir: Path, engine: str, session_timeout_minutes: float = 30, **kwargs) -> dict:
    run_layers(config_for(data_dir, engine, session_timeout_minutes), **kwargs)
    return json.loads((data_dir / "reports" / "quality_report.json").read_text())["last_run"]


def built_from_scratch(data_dir: Path) -> None:
    """The three batches in one run on DuckDB: what runs that add them one by one must publish."""
    for name, rows in [("a.csv", FIRST_BATCH), ("b.csv", SECOND_BATCH), ("c.csv", THIRD_BATCH)]:
        write_batch(data_dir, name, rows)
    run(data_dir, "duckdb")


def first_two_batches(data_dir: Path, **second_run) -> dict:
    """The first batch, then the second, each in a run of its own on DuckDB; the second run's report."""
    write_batch(data_dir, "a.csv", FIRST_BATCH)
    run(data_dir, "duckdb")
    write_batch(data_dir, "b.csv", SECOND_BATCH)
    return run(data_dir, "duckdb", **second_run)


def week_files(table: Path) -> dict[str, set[int]]:
    """The inodes of each week folder's files: the same inode means the file was linked, not written again."""
    return {folder.name: {os.stat(f).st_ino for f in folder.glob("*.parquet")}
            for folder in sorted(table.iterdir()) if folder.is_dir()}


@pytest.fixture
def engine_name(request) -> str:
    if request.param == "spark":
        request.getfixturevalue("spark_session_owner")  # skips, with the reason, where Spark cannot run
    return request.param


@pytest.fixture(scope="module")
def after_first_batch(tmp_path_factory):
    """A copy, at the path given, of a data directory after the first batch's run on an engine, and that run's
    report. The run is made once per engine for the tests of this module that start from it (on Spark, a
    whole run on a few rows takes most of a minute)."""
    built: dict[str, tuple[Path, dict]] = {}

    def copy(engine_name: str, step: Path) -> dict:
        if engine_name not in built:
            data_dir = tmp_path_factory.mktemp(f"first-{engine_name}") / "data"
            write_batch(data_dir, "a.csv", FIRST_BATCH)
            built[engine_name] = data_dir, run(data_dir, engine_name)
        data_dir, report = built[engine_name]
        shutil.copytree(data_dir, step, symlinks=True)
        return report

    return copy


@pytest.mark.parametrize("engine_name", ENGINES, indirect=True)
def test_a_new_batch_gives_the_tables_a_run_from_scratch_gives(tmp_path, engine_name, after_first_batch):
    step = tmp_path / "step"
    first = after_first_batch(engine_name, step)
    assert (first["gold"]["mode"], first["analytics"]["modes"]["user_journey"]) == ("full", "full")
    fact_before = week_files(step / "gold" / "fct_events")
    sessions_before = week_files(step / "gold" / "dim_sessions")

    write_batch(step, "b.csv", SECOND_BATCH)
    second = run(step, engine_name)
    # From scratch on DuckDB: the engines' full runs give the same tables (test_differential), and one
    # Spark run less keeps this test to about a minute.
    scratch = tmp_path / "scratch"
    write_batch(scratch, "a.csv", FIRST_BATCH)
    write_batch(scratch, "b.csv", SECOND_BATCH)
    run(scratch, "duckdb")

    assert (second["gold"]["mode"], second["analytics"]["modes"]["user_journey"]) == ("incremental", "incremental")
    assert ({second["analytics"]["modes"][name] for name in ("funnel_users", "user_days", "retention_users",
                                                             "carts", "visit_paths", "purchase_events")}
            == {"incremental"})
    for table in TABLES:
        assert table_differences(read_table(scratch / table), read_table(step / table)) == [], table
    # The days are in five weeks (from Monday 25 December and 1, 8, 15 and 22 January). u1's late events change
    # its rows of the 1st and the 17th: those weeks are written again; its event of the 31st starts a week. u2's
    # event of the 10th comes after every published one of the 8th's week, and u3 and u4 add the 24th: those
    # weeks keep their files and gain one.
    assert second["gold"]["merged"]["fct_events"] == {"weeks_rewritten": ["2024-01-01", "2024-01-15"],
                                                      "weeks_appended": ["2023-12-25", "2024-01-08", "2024-01-22"]}
    fact_after = week_files(step / "gold" / "fct_events")
    assert fact_after["week=2024-01-01"].isdisjoint(fact_before["week=2024-01-01"])
    assert fact_after["week=2024-01-08"] > fact_before["week=2024-01-08"]  # linked, plus one new file
    # The visits, by their start: u1's of the 1st join and its visit of the 17th follows them; u4's visit of
    # the 9th ended too long before its new event to be continued, so it stands, linked.
    assert second["gold"]["merged"]["dim_sessions"] == {"weeks_rewritten": ["2024-01-01", "2024-01-15"],
                                                        "weeks_appended": ["2023-12-25", "2024-01-08",
                                                                           "2024-01-22"]}
    assert week_files(step / "gold" / "dim_sessions")["week=2024-01-08"] > sessions_before["week=2024-01-08"]
    # Tables stored by week are tested on their rewritten weeks and their links to the rest, with the same tests.
    assert second["gold"]["tested_on_changed_rows"] == ["dim_sessions", "fct_events"]
    assert [r["test"] for r in second["gold"]["tests"]] == [r["test"] for r in first["gold"]["tests"]]
    assert {r["status"] for r in second["gold"]["tests"]} == {"pass"}


def test_a_new_event_that_continues_a_published_visit_rewrites_that_visit_in_every_result(tmp_path):
    """u5's first new event (10:10) joins its visit of 10:00: the per-visit results must take that visit again,
    though it starts before the event (the week of the 15th holds only u5's rows, so a merge that kept the
    published visit would publish its old path)."""
    first = ["u5,s1,2024-01-18 10:00:00,page_view,,,", "u5,s1,2024-01-18 10:05:00,product_view,p1,,",
             "u6,s1,2024-01-18 11:00:00,page_view,,,"]
    second = ["u5,s1,2024-01-18 10:10:00,add_to_cart,p1,,", "u5,s1,2024-01-18 10:12:00,purchase,p1,3.00,purchase"]
    step, scratch = tmp_path / "step", tmp_path / "scratch"
    write_batch(step, "a.csv", first)
    run(step, "duckdb")
    write_batch(step, "b.csv", second)
    report = run(step, "duckdb")
    write_batch(scratch, "a.csv", first)
    write_batch(scratch, "b.csv", second)
    run(scratch, "duckdb")
    assert {report["analytics"]["modes"][name] for name in ("visit_paths", "purchase_events")} == {"incremental"}
    for table in TABLES:
        assert table_differences(read_table(scratch / table), read_table(step / table)) == [], table
    paths = read_table(step / "analytics" / "visit_paths").to_pylist()
    assert sorted((row["user_key"], row["step"], row["to_event"]) for row in paths) == [
        ("u5", 1, "product_view"), ("u5", 2, "add_to_cart"), ("u5", 3, "purchase"), ("u5", 4, "exit"),
        ("u6", 1, "exit")]


def test_a_week_that_holds_enough_files_is_written_again_instead_of_gaining_one(tmp_path, monkeypatch):
    monkeypatch.setattr(incremental, "COMPACT_AT_FILES", 2)
    step, scratch = tmp_path / "step", tmp_path / "scratch"
    built_from_scratch(scratch)
    first_two_batches(step)
    before = {table: week_files(step / "gold" / table)["week=2024-01-08"] for table in ["fct_events", "dim_sessions"]}
    assert {table: len(files) for table, files in before.items()} == {"fct_events": 2, "dim_sessions": 2}

    write_batch(step, "c.csv", THIRD_BATCH)
    report = run(step, "duckdb")
    for table, files in before.items():
        # rows only added, but the week already held two files: it is written again, as one
        assert report["gold"]["merged"][table] == {"weeks_rewritten": ["2024-01-08"], "weeks_appended": []}, table
        after = week_files(step / "gold" / table)["week=2024-01-08"]
        assert len(after) == 1 and after.isdisjoint(files), table
    for table in TABLES:
        assert table_differences(read_table(scratch / table), read_table(step / table)) == [], table
    assert {r["status"] for r in report["gold"]["tests"]} == {"pass"}


def test_a_data_directory_where_gold_named_its_affected_users_scope_users_builds_on(tmp_path):
    # Releases before the rename published gold's affected users as `gold/_scope_users/` (column scope_key).
    step, scratch = tmp_path / "step", tmp_path / "scratch"
    built_from_scratch(scratch)
    assert first_two_batches(step, layers=("bronze", "silver", "gold"))["gold"]["mode"] == "incremental"
    gold = step / "gold"
    old = gold / "_scope_users"
    old.mkdir()
    duckdb.sql(f"copy (select user_key as scope_key, first_new_ts from "
               f"read_parquet('{gold / incremental.AFFECTED_USERS_DIR}/*.parquet')) to '{old}/part-00000.parquet'")
    shutil.rmtree(gold / incremental.AFFECTED_USERS_DIR)

    # analytics after that gold build: no affected users of the new name, so the journey is built from scratch
    assert run(step, "duckdb", layers=("analytics",))["analytics"]["modes"]["user_journey"] == "full"
    write_batch(step, "c.csv", THIRD_BATCH)
    report = run(step, "duckdb")
    assert (report["gold"]["mode"], report["analytics"]["modes"]["user_journey"]) == ("incremental", "incremental")
    assert sorted(p.name for p in gold.iterdir() if p.name.startswith("_")) == ["_affected_users", "_build.json"]
    for table in TABLES:
        assert table_differences(read_table(scratch / table), read_table(step / table)) == [], table


def test_affected_users_published_without_the_start_of_their_visits_get_the_per_user_results_built_whole(tmp_path):
    # Releases before visits_from published gold's affected users with first_new_ts alone: a visit a new event
    # continued could not be told from them, so the per-user results after that build are built from scratch.
    step, scratch = tmp_path / "step", tmp_path / "scratch"
    built_from_scratch(scratch)
    assert first_two_batches(step, layers=("bronze", "silver", "gold"))["gold"]["mode"] == "incremental"
    affected, older = step / "gold" / incremental.AFFECTED_USERS_DIR, tmp_path / "older"
    older.mkdir()
    duckdb.sql(f"copy (select user_key, first_new_ts from read_parquet('{affected}/*.parquet')) "
               f"to '{older}/part-00000.parquet'")
    shutil.rmtree(affected)
    older.rename(affected)

    report = run(step, "duckdb", layers=("analytics",))
    assert {report["analytics"]["modes"][name] for name in ("user_journey", "funnel_users", "user_days",
                                                            "retention_users", "carts", "visit_paths",
                                                            "purchase_events")} == {"full"}
    write_batch(step, "c.csv", THIRD_BATCH)
    report = run(step, "duckdb")
    assert report["analytics"]["modes"]["visit_paths"] == "incremental"
    for table in TABLES:
        assert table_differences(read_table(scratch / table), read_table(step / table)) == [], table


def test_after_a_build_whose_tests_did_not_all_pass_the_whole_star_is_tested(tmp_path):
    data_dir = tmp_path / "data"
    write_batch(data_dir, "a.csv", FIRST_BATCH)
    run(data_dir, "duckdb")
    manifest = data_dir / "gold" / incremental.MANIFEST
    built = json.loads(manifest.read_text())
    assert built["tests_passed"] is True
    manifest.write_text(json.dumps({**built, "tests_passed": False}))  # as a build with tests at warn leaves it
    write_batch(data_dir, "b.csv", SECOND_BATCH)
    report = run(data_dir, "duckdb")
    assert (report["gold"]["mode"], report["gold"]["tested_on_changed_rows"]) == ("incremental", [])


@pytest.mark.parametrize("engine_name", ENGINES, indirect=True)
def test_a_run_with_nothing_new_keeps_the_published_star_and_starts_no_spark_session(tmp_path, engine_name,
                                                                                     after_first_batch, monkeypatch):
    data_dir = tmp_path / "data"
    after_first_batch(engine_name, data_dir)
    before = week_files(data_dir / "gold" / "fct_events")
    analytics_before = week_files(data_dir / "analytics" / "user_journey")
    if engine_name == "spark":  # Java's start is most of a Spark run on a few rows: a run with nothing new skips it
        from clickstream.engines.spark_engine import SparkEngine

        def refuse(engine):
            raise AssertionError("a run with nothing new started a Spark session")
        monkeypatch.setattr(SparkEngine, "_open_session", refuse)
    report = run(data_dir, engine_name)
    assert report["gold"]["mode"] == "current"
    assert report["gold"]["row_counts"]["fct_events"] == len(FIRST_BATCH)
    assert week_files(data_dir / "gold" / "fct_events") == before
    assert report["analytics"]["mode"] == "current"  # every result answered from this very star: none again
    assert week_files(data_dir / "analytics" / "user_journey") == analytics_before


def test_a_changed_session_timeout_rebuilds_everything(tmp_path):
    data_dir = tmp_path / "data"
    write_batch(data_dir, "a.csv", FIRST_BATCH)
    run(data_dir, "duckdb")
    write_batch(data_dir, "b.csv", SECOND_BATCH)
    report = run(data_dir, "duckdb", session_timeout_minutes=10)
    assert report["gold"]["mode"] == "full"
    assert "changed" in report["gold"]["reason"]
    assert report["analytics"]["modes"]["user_journey"] == "full"
    # With 10 minutes, u1's events at 10:00, 10:20 and 10:40 (10:50 joins it) are three visits (one with 30), and
    # its event of the 31st one more: thirteen in all.
    assert read_table(data_dir / "gold" / "dim_sessions").num_rows == 13


def test_full_refresh_rebuilds_even_when_nothing_is_new(tmp_path):
    data_dir = tmp_path / "data"
    write_batch(data_dir, "a.csv", FIRST_BATCH)
    run(data_dir, "duckdb")
    report = run(data_dir, "duckdb", full_refresh=True)
    assert (report["gold"]["mode"], report["gold"]["reason"]) == ("full", "full refresh requested")
    assert report["analytics"]["modes"]["user_journey"] == "full"


@pytest.mark.parametrize(("changes", "removals", "expected"), [
    ("silver", False, [("u1", ts("2024-01-01 09:00")), ("u2", ts("2024-01-03 00:00"))]),
    # an event that left silver changes its user's rows from its time on, like a new one
    ("silver", True, [("u1", ts("2024-01-01 09:00")), ("u2", ts("2024-01-01 08:00")), ("u3", ts("2024-01-05 00:00"))]),
    # for the analytics, from the start of the first visit gold sessionized again
    ("gold", False, [("u7", ts("2024-01-03 23:40"))]),
    ("none", False, []),
])
def test_the_affected_users_are_each_users_earliest_change(duckdb_engine, changes, removals, expected):
    engine = duckdb_engine
    inline_table(engine, "silver_batch", [("user_id", "string"), ("event_ts", "timestamp")], [
        ("u1", ts("2024-01-02 10:00")), ("u1", ts("2024-01-01 09:00")),  # not in time order
        ("u2", ts("2024-01-03 00:00")), (None, ts("2024-01-01 00:00"))])
    inline_table(engine, "silver_run_changes", CHANGES_SCHEMA, [
        ("u2", ts("2024-01-01 08:00"), "e1", "removed"), ("u3", ts("2024-01-05 00:00"), "e2", "removed")])
    inline_table(engine, incremental.PUBLISHED_AFFECTED_USERS,
                 [("user_key", "string"), ("first_new_ts", "timestamp"), ("visits_from", "timestamp")],
                 [("u7", ts("2024-01-04 00:00"), ts("2024-01-03 23:40"))])
    incremental.register_affected_users(engine, changes, removals=removals)
    assert sorted(engine.fetch(f"select * from {incremental.AFFECTED_USERS}")[1]) == expected
    inline_table(engine, "facts", [("user_key", "string"), ("n", "integer")], [("u1", 1), ("u2", 2), ("u7", 3)])
    incremental.register_affected_rows(engine, "facts_of_affected", "facts", "user_key")
    assert sorted(engine.fetch("select * from facts_of_affected")[1]) == [
        row for row in [("u1", 1), ("u2", 2), ("u7", 3)] if row[0] in {user for user, _ in expected}]


def test_a_per_visit_result_reads_the_visits_holding_an_event_from_its_users_first_new_one_whole(duckdb_engine):
    """Every row a merge replaces belongs to a visit with an event at or after its user's first_new_ts, and such a
    visit is read whole, its earlier events too; a visit entirely before that time is not read."""
    engine = duckdb_engine
    inline_table(engine, incremental.AFFECTED_USERS, [("user_key", "string"), ("first_new_ts", "timestamp")], [
        ("u1", ts("2024-01-02 10:00")), ("u2", ts("2024-01-03 00:00"))])
    rows = [
        ("u1", "v1", ts("2024-01-01 09:00")), ("u1", "v1", ts("2024-01-01 09:10")),  # before: stands
        ("u1", "v2", ts("2024-01-02 09:50")), ("u1", "v2", ts("2024-01-02 10:00")),  # crosses the time: whole
        ("u1", "v3", ts("2024-01-02 09:55")), ("u1", "v3", ts("2024-01-02 11:00")),  # another session, over it
        ("u2", "v4", ts("2024-01-03 00:00")),  # at the time itself
        ("u2", "v5", ts("2024-01-02 23:59")),  # one minute before it: stands
        ("u3", "v6", ts("2024-01-09 00:00"))]  # no affected user: never among the affected rows
    schema = [("user_key", "string"), ("session_key", "string"), ("event_ts", "timestamp")]
    inline_table(engine, "affected_rows", schema, [row for row in rows if row[0] != "u3"])
    _, read = engine.fetch(render("incremental/affected_visits", engine, source="affected_rows"))
    assert sorted(read) == sorted(row for row in rows if row[1] in {"v2", "v3", "v4"})


def test_gold_publishes_each_affected_user_from_the_start_of_their_first_visit_sessionized_again(duckdb_engine):
    engine = duckdb_engine
    inline_table(engine, "affected", [("user_key", "string"), ("first_new_ts", "timestamp")], [
        ("u1", ts("2024-01-02 10:00")), ("u2", ts("2024-01-03 00:00")), ("u3", ts("2024-01-05 00:00"))])
    inline_table(engine, "replay", [("user_id", "string"), ("session_id", "string"), ("replay_from", "timestamp")], [
        ("u1", "s1", ts("2024-01-02 09:40")), ("u1", "s2", ts("2024-01-02 09:50")),  # two supplied sessions
        ("u2", "s3", ts("2024-01-03 00:00")),  # its first new event starts a visit
        ("u9", "s4", ts("2024-01-01 00:00"))])  # no affected user: never published
    _, rows = engine.fetch(render("incremental/published_affected_users", engine, affected_users="affected",
                                  replay_table="replay"))
    assert sorted(rows) == [
        ("u1", ts("2024-01-02 10:00"), ts("2024-01-02 09:40")),
        ("u2", ts("2024-01-03 00:00"), ts("2024-01-03 00:00")),
        ("u3", ts("2024-01-05 00:00"), ts("2024-01-05 00:00"))]  # no session sessionized again (events removed)


def test_affected_users_come_from_silver_gold_or_none():
    with pytest.raises(ValueError, match="affected users from 'bronze': expected one of silver, gold, none"):
        incremental.register_affected_users(None, "bronze")  # type: ignore[arg-type]


def test_a_model_stored_by_week_must_say_from_when_its_rows_can_change():
    with pytest.raises(ValueError, match="model fct: partition_by_week needs changes_from"):
        incremental.per_user_model({"name": "fct", "user_column": "user_key", "partition_by_week": "event_ts"})
    assert incremental.per_user_model({"name": "dim", "user_column": "user_key"}) == incremental.PerUserModel(
        "dim", "user_key", None, None)
    assert incremental.per_user_model({"name": "paths", "user_column": "user_key", "partition_by_week": "start_ts",
                                       "changes_from": "start_ts", "per_visit": True}) == incremental.PerUserModel(
        "paths", "user_key", "start_ts", "start_ts", None, per_visit=True)
    assert incremental.per_user_model({"name": "dim_date"}) is None


def test_the_command_line_full_refresh_flag_reaches_gold(tmp_path, monkeypatch):
    from clickstream.cli import main

    data_dir = tmp_path / "data"
    write_batch(data_dir, "a.csv", FIRST_BATCH)
    monkeypatch.chdir(tmp_path)  # logs/ under the test's folder
    assert main(["run", "--data-dir", str(data_dir)]) == 0
    assert main(["gold", "--data-dir", str(data_dir)]) == 0
    assert json.loads((data_dir / "reports" / "quality_report.json").read_text())["last_run"]["gold"]["mode"] == "current"
    assert main(["gold", "--full-refresh", "--data-dir", str(data_dir)]) == 0
    report = json.loads((data_dir / "reports" / "quality_report.json").read_text())["last_run"]
    assert (report["gold"]["mode"], report["gold"]["reason"]) == ("full", "full refresh requested")


@pytest.mark.parametrize("engine_name", ENGINES, indirect=True)
def test_a_file_replaced_by_its_header_alone_empties_the_star_and_the_answers(tmp_path, engine_name,
                                                                             after_first_batch):
    step, scratch = tmp_path / "step", tmp_path / "scratch"
    after_first_batch(engine_name, step)
    (step / "raw" / "a.csv").write_text(HEADER, encoding="utf-8")  # every event retracted (on_change: replace)
    (scratch / "raw").mkdir(parents=True)
    (scratch / "raw" / "a.csv").write_text(HEADER, encoding="utf-8")
    run(scratch, "duckdb")
    for refresh in (False, True):  # the run that would merge the new silver batch, then a full refresh
        report = run(step, engine_name, full_refresh=refresh)
        assert read_table(step / "gold" / "fct_events").to_pylist() == []
        assert (report["gold"]["mode"], report["gold"]["reason"]) == (
            "full", "full refresh requested" if refresh else "silver holds no events")
        assert read_table(step / "analytics" / "revenue_metrics").to_pylist() == [
            {"total_revenue": Decimal("0.00"), "total_orders": 0, "orders_without_amount": 0, "users": 0,
             "purchasers": 0, "repeat_purchasers": 0, "repeat_purchaser_rate": None, "average_order_value": None, "revenue_per_user": None,
             "revenue_per_purchaser": None}]
        for table in TABLES:
            assert table_differences(read_table(scratch / table), read_table(step / table)) == [], table
        page = (step / "analytics" / "report.html").read_text(encoding="utf-8")
        markdown = (step / "analytics" / "REPORT.md").read_text(encoding="utf-8")
        assert NO_EVENTS in page and f"**{NO_EVENTS}**" in markdown
        assert '<div class="card" data-figure="events" data-raw="0">' in page


def test_a_result_answered_again_makes_every_result_after_it_answered_again(tmp_path, after_first_batch):
    # Results that stand (this gold build, the same SQL, the same settings) are read as published, up to the first
    # that does not: a query may read the ones above it (conversion_funnel counts funnel_users).
    step, before = tmp_path / "step", tmp_path / "before"
    after_first_batch("duckdb", step)
    after_first_batch("duckdb", before)
    manifest = step / "analytics" / incremental.MANIFEST
    published = json.loads(manifest.read_text())
    published["queries"]["funnel_users"]["fingerprint"] = "an older SQL"
    manifest.write_text(json.dumps(published))
    modes = run(step, "duckdb", layers=("analytics",))["analytics"]["modes"]
    names = [query["name"] for query in analytics.queries(config=config_for(step, "duckdb"))]
    first_again = names.index("funnel_users")
    assert {modes[name] for name in names[:first_again]} == {"current"}
    assert "current" not in {modes[name] for name in names[first_again:]}
    for name in names:  # answered again from the same gold: the same tables
        table = f"analytics/{name}"
        assert table_differences(read_table(before / table), read_table(step / table)) == [], table


def test_a_watch_batch_that_starts_a_week_keeps_the_models_due_and_an_idle_run_fits_them(tmp_path, monkeypatch):
    # models_later (each batch of clickstream watch): a batch that starts a new week keeps the models fitted up
    # to the week before, when no event they see changed, and leaves them due; the run that fits them answers
    # nothing else, and then every table equals a full refresh. A late event they see is fitted at once.
    # scikit-learn is imported ahead (in a thread, during the queries) by the runs that fit, and only by them.
    step, scratch = tmp_path / "step", tmp_path / "scratch"
    outputs = ["churn_model", "churn_scores", "user_clusters", "cluster_profiles"]
    imported_ahead = []
    monkeypatch.setattr(predictive, "_FIT_MODULES", ("sklearn.linear_model",))
    real_import = predictive._import_fit_modules
    monkeypatch.setattr(predictive, "_import_fit_modules", lambda: imported_ahead.append(real_import()))

    def last_run(data_dir: Path, layers: tuple[str, ...] = ("bronze", "silver", "gold", "analytics"),
                 **kwargs) -> dict:
        config = config_for(data_dir, "duckdb").model_dump()
        config["analytics"].update(churn={"enabled": True}, clusters={"enabled": True, "k": 2})
        imported_ahead.clear()
        run_layers(Config.model_validate(config), layers, **kwargs)
        return json.loads((data_dir / "reports" / "quality_report.json").read_text())["last_run"]

    def inodes() -> dict:
        return {name: sorted(os.stat(f).st_ino for f in (step / "analytics" / name).glob("*.parquet"))
                for name in outputs}

    new_week = ["u1,s1,2024-01-22 10:00:00,page_view,,,"]  # the first batch ends Wednesday the 17th
    for number, rows in enumerate([FIRST_BATCH, new_week]):
        write_batch(step, f"{number}.csv", rows)
        write_batch(scratch, f"{number}.csv", rows)
    last_run(scratch, full_refresh=True)
    (step / "raw" / "1.csv").rename(tmp_path / "1.csv")
    last_run(step)
    before = inodes()
    (tmp_path / "1.csv").rename(step / "raw" / "1.csv")

    batch = last_run(step, models_later=True)
    assert {batch["analytics"]["modes"][name] for name in outputs} == {"current"} and imported_ahead == []
    assert batch["analytics"]["models_due"] == incremental.models_due(step / "analytics") == "2024-01-22T00:00:00"
    assert inodes() == before
    due_note = "The models are due to be fitted up to 2024-01-22 00:00 UTC"
    assert due_note in (step / "analytics" / "report.html").read_text(encoding="utf-8")
    entries = incremental.read_manifest(step / "analytics")["queries"]
    assert {entries[name]["as_of"] for name in outputs} == {"2024-01-15T00:00:00"}  # fitted up to the week before
    for table in TABLES:
        assert table_differences(read_table(scratch / table), read_table(step / table)) == [], table

    fitted = last_run(step, ("analytics",))
    assert {name: mode for name, mode in fitted["analytics"]["modes"].items() if mode != "current"} == {
        name: "full" for name in outputs}
    assert imported_ahead == [None]
    assert incremental.models_due(step / "analytics") is None and "models_due" not in fitted["analytics"]
    assert due_note not in (step / "analytics" / "report.html").read_text(encoding="utf-8")
    for table in TABLES + [f"analytics/{name}" for name in outputs]:
        assert table_differences(read_table(scratch / table), read_table(step / table)) == [], table
    assert last_run(step, ("analytics",))["analytics"]["mode"] == "current"  # nothing due: nothing to do

    late = last_run(step, models_later=True) if write_batch(step, "2.csv", ["u3,s1,2024-01-10 12:00:00,"
                                                                           "page_view,,,"]) is None else None
    assert {late["analytics"]["modes"][name] for name in outputs} == {"full"} and "models_due" not in late["analytics"]


def test_the_models_stand_until_an_event_they_see_changes_or_the_week_turns(tmp_path):
    # The models see the events up to Monday 00:00 of the data's last week (analytics.models_as_of: week): a batch
    # later than that keeps them, a late event before it or a new week fits them again; either way they equal what
    # a full refresh fits.
    step, scratch = tmp_path / "step", tmp_path / "scratch"

    def models(data_dir: Path, full_refresh: bool = False) -> dict:
        config = config_for(data_dir, "duckdb").model_dump()
        config["analytics"].update(churn={"enabled": True}, clusters={"enabled": True, "k": 2})
        run_layers(Config.model_validate(config), full_refresh=full_refresh)
        report = json.loads((data_dir / "reports" / "quality_report.json").read_text())["last_run"]
        return report["analytics"]["modes"]

    outputs = ["churn_model", "churn_scores", "user_clusters", "cluster_profiles"]
    batches = [  # (rows, whether the models stand)
        (FIRST_BATCH, False),  # up to Wednesday the 17th: the models see the events up to Monday the 15th
        (["u2,s1,2024-01-17 11:00:00,page_view,,,", "u5,s1,2024-01-16 09:00:00,page_view,,,"], True),
        (["u3,s1,2024-01-10 12:00:00,page_view,,,"], False),  # a late event they see
        (["u4,s2,2024-01-15 00:00:00,page_view,,,"], False),  # at Monday 00:00 itself: seen
        (["u1,s1,2024-01-22 10:00:00,page_view,,,"], False),  # a new week: they see up to the 22nd
    ]
    for number, (rows, stand) in enumerate(batches):
        before = {name: sorted(os.stat(f).st_ino for f in (step / "analytics" / name).glob("*.parquet"))
                  for name in outputs} if number else {}
        write_batch(step, f"{number}.csv", rows)
        write_batch(scratch, f"{number}.csv", rows)
        modes = models(step)
        assert {modes[name] for name in outputs} == {"current" if stand else "full"}, (number, modes)
        if stand:  # the published files themselves, linked
            assert {name: sorted(os.stat(f).st_ino for f in (step / "analytics" / name).glob("*.parquet"))
                    for name in outputs} == before
        models(scratch, full_refresh=True)
        for name in outputs:
            assert table_differences(read_table(scratch / "analytics" / name),
                                     read_table(step / "analytics" / name)) == [], (number, name)
    scored_at = read_table(step / "analytics" / "churn_scores").column("scored_at").to_pylist()
    assert set(scored_at) <= {dt.datetime(2024, 1, 22)}
