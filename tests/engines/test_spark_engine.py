"""The Spark engine on tiny inline data: dialect macros (each against DuckDB), reading, writing, sessions, errors."""
from __future__ import annotations

import csv
import gzip
import importlib.util
import os
import re
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from clickstream.config import ConfigError, CsvOptions, SparkSettings
from clickstream.engines.base import Engine, InputError
from clickstream.quality import compile_tests, run_tests
from clickstream.schema import BRONZE, PARTITION_COLUMN, SILVER
from clickstream.sql import render
from helpers import inline_table


pytestmark = pytest.mark.spark

HEADER = ["UserID", "SessionID", "Timestamp", "EventType", "ProductID", "Amount", "Outcome"]
FORMATS = ["%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"]
REPO = Path(__file__).resolve().parents[2]


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    """A CSV file, gzip-compressed when its name ends in .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def scalar(engine: Engine, expression: str) -> object:
    _, rows = engine.fetch(f"select {expression} as value")
    return rows[0][0]


def text(value: str | None) -> str:
    return "cast(null as string)" if value is None else Engine.quote_literal(value)


# ---- dialect macros: every case is run on both engines and must give the expected value on each

TIMESTAMP_CASES = [
    ("2024-03-05 22:01:00.072000", datetime(2024, 3, 5, 22, 1, 0, 72000)),  # canonical: Spark's strict path
    ("2024-03-05 22:01:00", datetime(2024, 3, 5, 22, 1)),
    ("0001-01-01 00:00:00.000000", datetime(1, 1, 1)),
    ("9999-12-31 23:59:59.999999", datetime(9999, 12, 31, 23, 59, 59, 999999)),
    ("2023-02-29 10:00:00", None),  # canonical shape, no such day
    ("2024-02-29 10:00:00", datetime(2024, 2, 29, 10)),
    ("2024-01-01 10:00:00.5", datetime(2024, 1, 1, 10, 0, 0, 500000)),
    ("2024-1-5 9:05:03", datetime(2024, 1, 5, 9, 5, 3)),  # one-digit fields: DuckDB's strptime reads them
    ("2024-01-05\t10:00:00", datetime(2024, 1, 5, 10)),  # any whitespace run for the format's space
    ("2024-01-05   10:00:00", datetime(2024, 1, 5, 10)),
    ("\t2024-01-05 10:00:00\n", datetime(2024, 1, 5, 10)),
    ("24-01-05 10:00:00", datetime(24, 1, 5, 10)),  # a year of two digits is year 24, on both
    ("2024-01-01 10:00:00.1234567", None),  # seven fraction digits
    ("2024-13-45 25:61:00", None),
    ("2024-02-30 10:00:00.000000", None),
    ("2024-01-05 24:00:00", None),
    ("2024-01-05 10:00:60", None),
    ("2024-001-05 10:00:00", None),  # Java would read a three-digit month
    ("20240-01-05 10:00:00", None),
    ("2024-01-0510:00:00", None),
    ("2024-01-05 10:00:00Z", None),
    ("2024-01-05\xa010:00:00", None),  # a no-break space is not whitespace to DuckDB
    ("31/01/2024 10:00:00", None),
    ("12:30:00 2024-01-05", None),
    ("not-a-time", None),
    ("yesterday", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("raw", "expected"), TIMESTAMP_CASES)
def test_parse_timestamp_accepts_exactly_what_duckdb_accepts(spark, duckdb_engine, raw, expected):
    for engine in (duckdb_engine, spark):
        assert scalar(engine, engine.parse_timestamp(text(raw), FORMATS)) == expected, engine.name


@pytest.mark.parametrize(("wall_clock", "zone", "expected"), [
    ("2024-07-01 12:00:00", "Europe/Paris", datetime(2024, 7, 1, 10)),
    ("2024-01-15 12:00:00", "Europe/Paris", datetime(2024, 1, 15, 11)),
    ("2024-03-31 02:30:00", "Europe/Paris", datetime(2024, 3, 31, 1, 30)),  # skipped by the clocks
    ("2024-10-27 01:59:59", "Europe/Paris", datetime(2024, 10, 26, 23, 59, 59)),
    ("2024-10-27 02:00:00", "Europe/Paris", datetime(2024, 10, 27, 1)),  # passed twice: the later instant
    ("2024-10-27 02:30:00", "Europe/Paris", datetime(2024, 10, 27, 1, 30)),
    ("2024-10-27 03:00:00", "Europe/Paris", datetime(2024, 10, 27, 2)),
    ("2024-11-03 01:30:00", "America/New_York", datetime(2024, 11, 3, 6, 30)),
    ("2024-03-10 02:30:00", "America/New_York", datetime(2024, 3, 10, 7, 30)),
    ("2024-05-01 08:00:00", "UTC", datetime(2024, 5, 1, 8)),
])
def test_to_utc_agrees_with_duckdb_around_clock_changes(spark, duckdb_engine, wall_clock, zone, expected):
    for engine in (duckdb_engine, spark):
        assert scalar(engine, engine.to_utc(f"timestamp '{wall_clock}'", zone)) == expected, engine.name


@pytest.mark.parametrize(("timestamp", "expected"), [
    ("1970-01-01 00:00:00", 0),
    ("1969-12-31 23:59:59.999999", -1),
    ("2024-03-05 22:01:00.072", 1709676060072000),
])
def test_epoch_us(spark, duckdb_engine, timestamp, expected):
    for engine in (duckdb_engine, spark):
        assert scalar(engine, engine.epoch_us(f"timestamp '{timestamp}'")) == expected, engine.name


def test_iso_day_of_week_is_1_for_monday_to_7_for_sunday(spark, duckdb_engine):
    for engine in (duckdb_engine, spark):
        days = [scalar(engine, engine.iso_day_of_week(f"date '2024-01-0{day}'")) for day in range(1, 8)]
        assert days == [1, 2, 3, 4, 5, 6, 7], engine.name


@pytest.mark.parametrize(("first", "last", "expected"), [
    ("date '2024-02-27'", "date '2024-03-01'",
     [date(2024, 2, 27), date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1)]),
    ("date '2024-05-01'", "date '2024-05-01'", [date(2024, 5, 1)]),
    ("cast(null as date)", "cast(null as date)", []),  # no events: no days
])
def test_date_series_from_scalar_subqueries(spark, duckdb_engine, first, last, expected):
    for engine in (duckdb_engine, spark):
        engine.create_view("bounds", f"select {first} as first_day, {last} as last_day")
        series = engine.date_series("(select first_day from bounds)", "(select last_day from bounds)")
        _, rows = engine.fetch(f"select series.date_day from {series} as series order by 1")
        assert [row[0] for row in rows] == expected, engine.name


def test_fetch_returns_the_python_types_duckdb_returns(spark, duckdb_engine):
    query = ("select cast(1.5 as double) as d, cast(1 as integer) as i, cast(2 as bigint) as b, "
             "cast(3.25 as decimal(18,2)) as money, date '2024-01-01' as day, "
             "timestamp '2024-01-01 10:00:00.5' as ts, 'x' as s, true as flag, cast(null as string) as missing")
    expected = (["d", "i", "b", "money", "day", "ts", "s", "flag", "missing"],
                [(1.5, 1, 2, Decimal("3.25"), date(2024, 1, 1), datetime(2024, 1, 1, 10, 0, 0, 500000), "x", True,
                  None)])
    for engine in (duckdb_engine, spark):
        columns, rows = engine.fetch(query)
        assert (columns, rows) == expected, engine.name
        assert [type(v) for v in rows[0]] == [type(v) for v in expected[1][0]], engine.name


# ---- reading

def test_read_csv_names_columns_by_position_and_each_row_its_file(spark, duckdb_engine, tmp_path):
    raw = tmp_path / "raw dir"
    first = write_csv(raw / "000001.csv", [["1", "1", "2024-01-01 10:00:00", "page_view", "", "", ""],
                                           ["2", "1", "2024-01-01 10:00:01", "click", "", "", ""]])
    second = write_csv(raw / "000002.csv.gz", [["3", "", "2024-01-02 10:00:00", "purchase", "p", "5", "x"]])
    expected = [("000001.csv", "1", "1"), ("000001.csv", "2", "1"), ("000002.csv.gz", "3", None)]
    for engine in (duckdb_engine, spark):
        engine.read_csv("raw_rows", [first, second], len(HEADER), CsvOptions())
        columns, rows = engine.fetch("select * from raw_rows order by c0")
        assert columns == [f"c{i}" for i in range(len(HEADER))] + ["input_file"], engine.name
        assert [(r[-1], r[0], r[1]) for r in rows] == expected, engine.name


def test_read_csv_keeps_every_value_as_text(spark, duckdb_engine, tmp_path):
    path = write_csv(tmp_path / "raw" / "f.csv", [[" 7 ", "", "x", '"q"', "a,b", "1e3", "  "]])
    for engine in (duckdb_engine, spark):
        engine.read_csv("raw_rows", [path], len(HEADER), CsvOptions())
        assert engine.fetch("select * from raw_rows")[1] == [(" 7 ", None, "x", '"q"', "a,b", "1e3", "  ", "f.csv")]


def test_a_quoted_line_break_is_read_as_duckdb_reads_it(spark, duckdb_engine, tmp_path):
    path = write_csv(tmp_path / "raw" / "f.csv", [["1", "s1", "2024-01-01 10:00:00", "page_view", "", "", "two\nlines"],
                                                  ["2", "s2", "2024-01-01 10:00:01", "page_view", "", "", "ok"]])
    got = {}
    for engine in (spark, duckdb_engine):
        engine.read_csv("raw_rows", [path], len(HEADER), CsvOptions())
        got[engine.name] = engine.fetch("select c0, c6 from raw_rows order by c0")[1]
    assert got["spark"] == got["duckdb"] == [("1", "two\nlines"), ("2", "ok")]
    # Without multiline, Spark reads line by line: the broken row is an error, never two rows
    spark.read_csv("raw_lines", [path], len(HEADER), CsvOptions(multiline=False))
    with pytest.raises(InputError, match=re.escape(f"CSV error in {path} on line 3: malformed row 'lines\"'")):
        spark.write_parquet("raw_lines", tmp_path / "out")


# Lines after a good first row: which of them each engine refuses must be exactly which csv_lines refuses, so
# that a file read directly and a file split by csv_lines give the same rows on both engines.
LINES = [
    ("1,1,2024-01-01 10:00:00,page_view,,,", None),
    ("1,1", "malformed_short_row"),
    ("1,1,2024-01-01 10:00:00,page_view,,,,x", "malformed_long_row"),
    ("1,1,2024-01-01 10:00:00,page_view,,,, ", "malformed_long_row"),
    ('1,1,2024-01-01 10:00:00,page_view,"x"y,,', "malformed_quoting"),
    ('1,1,2024-01-01 10:00:00,page_view,x"y,,', None),
    ('1,1,2024-01-01 10:00:00,page_view,"a ""b"" c",,', None),
    ("   ", "malformed_short_row"),
    ("", None),
    ('1,1,2024-01-01 10:00:00,page_view,"open,,', "malformed_unterminated_quote"),
]
# Well-formed for DuckDB and csv_lines (empty fields after the last column are dropped), refused by Spark:
# a file holding one is split by csv_lines on Spark, which gives the rows DuckDB reads directly.
TRAILING_EMPTY_FIELDS = ["1,1,2024-01-01 10:00:00,page_view,,,,,", '1,1,2024-01-01 10:00:00,page_view,,,,""']


@pytest.mark.parametrize(("line", "reason"), LINES)
def test_the_engines_refuse_exactly_the_lines_csv_lines_refuses(spark, duckdb_engine, tmp_path, line, reason):
    import io

    from clickstream.csv_lines import split_file

    path = tmp_path / "raw" / "f.csv"
    path.parent.mkdir()
    head = ",".join(HEADER) + "\n"
    path.write_text(head + "1,1,2024-01-01 10:00:00,page_view,,,\n" + line + "\n", encoding="utf-8")
    split = split_file(path, CsvOptions(), len(HEADER), io.StringIO(), skip_bytes=len(head))
    assert [m.reason for m in split.malformed] == ([reason] if reason else [])
    for engine in (duckdb_engine, spark):
        engine.read_csv("raw_rows", [path], len(HEADER), CsvOptions())
        if reason is None:
            assert len(engine.fetch("select * from raw_rows")[1]) == split.records, engine.name
        else:
            with pytest.raises(InputError):
                engine.write_parquet("raw_rows", tmp_path / f"out-{engine.name}")
    assert spark.fetch("select 1 as still_usable") == (["still_usable"], [(1,)])  # the session survived


@pytest.mark.parametrize("line", TRAILING_EMPTY_FIELDS)
def test_empty_fields_after_the_last_column_are_dropped_as_duckdb_drops_them(spark, duckdb_engine, tmp_path, line):
    import io

    from clickstream.csv_lines import split_file

    path = tmp_path / "raw" / "f.csv"
    path.parent.mkdir()
    head = ",".join(HEADER) + "\n"
    path.write_text(head + line + "\n", encoding="utf-8")
    canonical = io.StringIO()
    split = split_file(path, CsvOptions(), len(HEADER), canonical, skip_bytes=len(head))
    assert (split.records, split.malformed, canonical.getvalue()) == (1, [], "1,1,2024-01-01 10:00:00,page_view,,,\n")
    duckdb_engine.read_csv("raw_rows", [path], len(HEADER), CsvOptions())
    assert duckdb_engine.fetch("select * from raw_rows")[1] == [
        ("1", "1", "2024-01-01 10:00:00", "page_view", None, None, None, "f.csv")]
    spark.read_csv("raw_rows", [path], len(HEADER), CsvOptions())
    with pytest.raises(InputError):  # so bronze splits it, and reads what DuckDB reads
        spark.write_parquet("raw_rows", tmp_path / "out")


def test_read_parquet_of_no_files_is_an_empty_table_of_the_schema(spark):
    spark.read_parquet("nothing", [], SILVER, partitioned=True)
    columns, rows = spark.fetch("select * from nothing")
    assert (columns, rows) == ([name for name, _ in SILVER], [])
    with pytest.raises(InputError, match="no Parquet files to read for table 'unknown'"):
        spark.read_parquet("unknown", [], None)


def test_partitioned_parquet_round_trip_types_the_partition_as_a_date(spark, tmp_path):
    spark.create_view("batch", "select 'a' as UserID, cast(null as string) as SessionID, "
                               "'2024-01-01 10:00:00' as Timestamp, 'click' as EventType, "
                               "cast(null as string) as ProductID, cast(null as string) as Amount, "
                               "cast(null as string) as Outcome, cast(null as string) as EventID, "
                               "cast(null as bigint) as source_line, "
                               "cast(null as string) as raw_line, cast(null as string) as parse_error, "
                               "'clickstream' as source_name, 'f.csv' as source_file, "
                               "'b1' as batch_id, timestamp '2024-05-06 07:08:09.123456' as ingestion_timestamp, "
                               "date '2024-05-06' as ingestion_date")
    table = tmp_path / "data [1] {x}" / "bronze"  # glob characters in the path are plain characters
    spark.write_parquet("batch", table, partition_by=[PARTITION_COLUMN])
    files = sorted(table.rglob("*"))
    assert [f.relative_to(table).parts[0] for f in files if f.is_file()] == ["ingestion_date=2024-05-06"]
    assert all(f.suffix == ".parquet" for f in files if f.is_file())  # no _SUCCESS, no .crc
    spark.read_parquet("bronze_back", [f for f in files if f.is_file()], BRONZE, partitioned=True)
    assert spark.fetch("select * from bronze_back") == (
        [name for name, _ in BRONZE],
        [("a", None, "2024-01-01 10:00:00", "click", None, None, None, None, None, None, None, None, "clickstream",
          "f.csv",
          "b1",
          datetime(2024, 5, 6, 7, 8, 9, 123456), date(2024, 5, 6))])


def test_config_text_with_backslashes_and_quotes_reaches_both_engines_unchanged(spark, duckdb_engine):
    odd = ["back\\slash", "it's", "tab\\t", "\\"]
    context = {"known_event_types": odd, "product_event_types": [odd[0]], "purchase_event_types": [odd[1]],
               "funnel": odd}
    got = {}
    for engine in (spark, duckdb_engine):
        engine.create_view("fct_events", f"select {engine.quote_literal(odd[1])} as event_type_key")
        engine.create_view("types", render("gold/dim_event_types", engine, **context))
        got[engine.name] = sorted(engine.fetch("select * from types")[1])
    assert got["spark"] == got["duckdb"]
    assert got["duckdb"] == [("\\", "\\", False, False, 4, 0), ("back\\slash", "back\\slash", True, False, 1, 0),
                             ("it's", "it's", False, True, 2, 1), ("tab\\t", "tab\\t", False, False, 3, 0)]


def _last_job_id(spark) -> int:
    # ids only grow; the tracker keeps the latest 1,000 jobs, so their number alone can stand still
    return max(spark.spark.sparkContext.statusTracker().getJobIdsForGroup(None), default=-1)


def test_row_counts_of_parquet_tables_come_from_footers_without_a_job(spark, duckdb_engine, tmp_path):
    for engine in (spark, duckdb_engine):
        engine.create_view("numbers", "select id from range(1234) as t(id)")
        engine.write_parquet("numbers", tmp_path / engine.name / "numbers")
        engine.read_parquet("numbers_back", sorted((tmp_path / engine.name / "numbers").rglob("*.parquet")), None)
    before = _last_job_id(spark)
    assert spark.row_counts(["numbers_back"]) == {"numbers_back": 1234}
    assert _last_job_id(spark) == before
    # a name registered again as a view is counted as the view, not from the files it once named
    for engine in (spark, duckdb_engine):
        engine.create_view("numbers_back", "select id from range(7) as t(id)")
    assert spark.row_counts(["numbers", "numbers_back"]) == duckdb_engine.row_counts(["numbers", "numbers_back"])
    assert spark.row_counts(["numbers", "numbers_back"]) == {"numbers": 1234, "numbers_back": 7}


def test_a_parquet_file_broken_after_it_was_read_is_named_when_counted(spark, tmp_path):
    spark.create_view("numbers", "select id from range(10) as t(id)")
    spark.write_parquet("numbers", tmp_path / "numbers")
    files = sorted((tmp_path / "numbers").rglob("*.parquet"))
    spark.read_parquet("numbers_back", files, None)
    files[0].write_bytes(b"not parquet")
    with pytest.raises(InputError, match=re.escape(f"cannot read the Parquet footer of {files[0]}")):
        spark.row_counts(["numbers_back"])


# ---- writing, caching

def test_write_csv_is_one_file_at_the_path(spark, duckdb_engine, tmp_path):
    query = ("select * from (values (1, 'a,b', timestamp '2024-01-01 10:00:00.5', cast(2.50 as decimal(18,2))), "
             "(2, cast(null as string), timestamp '2024-01-01 10:00:00', cast(0 as decimal(18,2)))) "
             "as t(n, label, ts, money)")
    for engine in (duckdb_engine, spark):
        engine.create_view("result", query)
        target = tmp_path / engine.name / "result.csv"
        engine.write_csv("result", target)
        assert sorted(p.name for p in target.parent.iterdir()) == ["result.csv"], engine.name
        assert target.read_text(encoding="utf-8").splitlines() == [
            "n,label,ts,money", '1,"a,b",2024-01-01 10:00:00.5,2.50', "2,,2024-01-01 10:00:00,0.00"], engine.name
        engine.create_view("empty", "select * from result where n < 0")
        engine.write_csv("empty", tmp_path / engine.name / "empty.csv")
        assert (tmp_path / engine.name / "empty.csv").read_text(encoding="utf-8").splitlines() == ["n,label,ts,money"]


def test_ansi_mode_stays_on_and_a_failed_job_is_one_line(spark):
    from clickstream.engines.spark_errors import SparkJobError

    with pytest.raises(SparkJobError, match=r"^spark: \[CAST_INVALID_INPUT\] The value 'x' of the type"):
        spark.fetch("select cast(c as int) as n from values ('x') as t(c)")
    assert spark.fetch("select try_cast(c as int) as n from values ('x') as t(c)") == (["n"], [(None,)])


def _kept_rdds(spark) -> int:
    return len(spark.spark.sparkContext._jsc.sc().getRDDStorageInfo())


def test_data_tests_count_the_same_failures_on_spark(spark, duckdb_engine):
    tests = [{"unique": "event_id"}, {"not_null": ["event_id", "user_key"]},
             {"relationships": {"column": "user_key", "to": "dim", "field": "user_key"}},
             {"accepted_values": {"column": "day", "values": [1, 7]}}, {"equal_row_count": "dim"}]
    fact = [("e1", "u1", 1), ("e1", "u9", 8), ("e1", "u1", 7), (None, None, 3), ("e3", "u1", 0)]
    got = {}
    for engine in (spark, duckdb_engine):
        inline_table(engine, "fact", [("event_id", "string"), ("user_key", "string"), ("day", "integer")], fact)
        inline_table(engine, "dim", [("user_key", "string")], [("u1",), ("u1",)])
        got[engine.name] = run_tests(engine, compile_tests("fact", tests, engine), "fail")
    assert {r["test"]: r["failures"] for r in got["spark"]} == {
        "fact.unique(event_id)": 2, "fact.not_null(event_id)": 1, "fact.not_null(user_key)": 1,
        "fact.relationships(user_key -> dim.user_key)": 1, "fact.accepted_values(day)": 3,
        "fact.equal_row_count(dim)": 3}
    assert got["spark"] == got["duckdb"]


@pytest.mark.parametrize(("changed", "new_dim"), [
    pytest.param([("e2", "u1", 4), ("e5", "u1", 5), ("e5", "u2", 5)], [("u1",), ("u2",), ("u3",)],
                 id="repeats-of-kept-and-changed-rows"),
    pytest.param([("e4", None, 9)], [("u1",), ("u3",)], id="kept-row-whose-parent-is-gone"),
])
def test_data_tests_on_changed_rows_count_on_spark_what_they_count_on_duckdb_and_the_whole(spark, duckdb_engine,
                                                                                          changed, new_dim):
    from test_quality import KEPT, OLD_DIM, delta_and_whole

    source = [(i,) for i in range(2)]  # an equal row count off by the rows of both parts
    got = {engine.name: delta_and_whole(engine, KEPT, changed, OLD_DIM, new_dim, source)
           for engine in (spark, duckdb_engine)}
    on_changed, on_whole = got["spark"]
    assert on_changed == on_whole == got["duckdb"][0]
    assert on_whole["fact.equal_row_count(source)"] == len(KEPT) + len(changed) - len(source)


def test_materialize_computes_once_even_through_other_views_and_drop_frees_it(spark):
    before = _kept_rdds(spark)
    # rand() with no seed differs each time it is computed: equal sums mean the rows were kept, not recomputed
    spark.materialize("kept", "select id, rand() as r from range(1000)")
    spark.create_view("over_kept", "with f as (select * from kept where id >= 0) select * from f")
    first = spark.fetch("select sum(r) from kept")[1]
    assert spark.fetch("select sum(r) from over_kept")[1] == first == spark.fetch("select sum(r) from kept")[1]
    plan = spark.spark.table("over_kept")._jdf.queryExecution().optimizedPlan().toString()
    assert "LogicalRDD" in plan and "Range" not in plan
    assert _kept_rdds(spark) == before + 1
    spark.drop("kept")
    assert not spark.spark.catalog.tableExists("kept")
    assert _kept_rdds(spark) == before


def test_close_keeps_a_shared_session_and_puts_its_settings_back(spark_session_owner):
    from clickstream.engines.spark_engine import SparkEngine

    session = spark_session_owner.spark
    session.conf.set("spark.sql.timestampType", "TIMESTAMP_LTZ")
    engine = SparkEngine(SparkSettings())
    assert session.conf.get("spark.sql.timestampType") == "TIMESTAMP_LTZ"  # nothing set before the first use
    engine.create_view("temporary", "select 1 as one")
    assert not engine.owns_session
    assert session.conf.get("spark.sql.timestampType") == "TIMESTAMP_NTZ"
    engine.close()
    assert session.conf.get("spark.sql.timestampType") == "TIMESTAMP_LTZ"
    assert not session.catalog.tableExists("temporary")
    assert session.range(3).count() == 3  # not stopped
    session.conf.set("spark.sql.timestampType", "TIMESTAMP_NTZ")


# ---- settings and missing dependencies

def test_session_settings_for_a_small_machine():
    pytest.importorskip("pyspark", reason="PySpark is not installed (pip install 'clickstream[spark]')")
    from clickstream.engines.spark_session import LOG4J2_CONFIG, session_conf

    conf = session_conf(SparkSettings(conf={"spark.sql.adaptive.enabled": "false"}), under_spark_submit=False)
    assert {key: conf[key] for key in ("spark.master", "spark.sql.shuffle.partitions", "spark.ui.enabled",
                                       "spark.sql.adaptive.enabled", "spark.sql.session.timeZone",
                                       "spark.sql.ansi.enabled", "spark.sql.parquet.outputTimestampType",
                                       "spark.driver.memory", "spark.driver.extraJavaOptions")} == {
        "spark.master": "local[*]", "spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false",
        "spark.sql.adaptive.enabled": "false", "spark.sql.session.timeZone": "UTC", "spark.sql.ansi.enabled": "true",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS", "spark.driver.memory": "2g",
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={LOG4J2_CONFIG.as_uri()}"}
    assert LOG4J2_CONFIG.is_file()
    under_submit = session_conf(SparkSettings(), under_spark_submit=True)
    assert not {"spark.master", "spark.driver.memory", "spark.driver.extraJavaOptions"} & set(under_submit)


def test_a_setting_results_depend_on_cannot_be_overridden():
    pytest.importorskip("pyspark", reason="PySpark is not installed (pip install 'clickstream[spark]')")
    from clickstream.engines.spark_session import session_conf

    with pytest.raises(ConfigError, match="spark.sql.ansi.enabled='false'.*needs 'true'"):
        session_conf(SparkSettings(conf={"spark.sql.ansi.enabled": "false"}), under_spark_submit=False)


def _run_cli(tmp_path: Path, env: dict[str, str], prelude: str = "",
             command: str = "run") -> subprocess.CompletedProcess[str]:
    (tmp_path / "data" / "raw").mkdir(parents=True, exist_ok=True)
    code = f"{prelude}import sys; from clickstream.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, command, "--engine", "spark", "--data-dir",
                           str(tmp_path / "data")], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)


def test_a_cold_start_prints_only_the_pipelines_own_lines(spark_session_owner, tmp_path):
    # A new process: the engine starts Java itself, with its log4j2 file, and stops Spark at the end.
    write_csv(tmp_path / "data" / "raw" / "events.csv", [["1", "1", "2024-01-01 10:00:00", "page_view", "", "", ""]])
    done = _run_cli(tmp_path, dict(os.environ), command="bronze")
    assert done.returncode == 0, done.stderr
    version = re.escape(spark_session_owner.spark.version)
    expected = [
        r"job bronze started \(log file \S+/data/logs/bronze_\w+\.log\)",  # logs under the data directory
        rf"spark: session started \(master local\[\*\], Spark {version}\)",  # at the engine's first use
        r"bronze: events\.csv rows=1 malformed=0 completeness=0\.5714",
        r"bronze: batch \w+, 1 file\(s\), 1 rows in [0-9.]+ s",
        r"job bronze finished in [0-9.]+ s",
    ]
    lines = done.stderr.splitlines()
    assert len(lines) == len(expected), lines
    for line, pattern in zip(lines, expected):
        assert re.fullmatch(r"\d\d:\d\d:\d\d INFO {4}" + pattern, line), line


def test_without_pyspark_the_cli_says_what_to_install(tmp_path):
    # PySpark is installed here; a None entry in sys.modules makes `import pyspark` fail as if it were not.
    done = _run_cli(tmp_path, dict(os.environ), prelude="import sys; sys.modules['pyspark'] = None; ")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "clickstream: error: the Spark engine needs PySpark, which is not installed: "
        "pip install 'clickstream[spark]'")


@pytest.mark.skipif(importlib.util.find_spec("pyspark") is None,
                    reason="needs PySpark to get as far as looking for Java")
def test_without_java_the_cli_says_java_17_is_needed(tmp_path):
    # a raw file to read: the engine starts Java at its first use
    write_csv(tmp_path / "data" / "raw" / "events.csv", [["1", "1", "2024-01-01 10:00:00", "page_view", "", "", ""]])
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(Path(sys.executable).parent)  # the venv's scripts: no java there
    done = _run_cli(tmp_path, env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "clickstream: error: the Spark engine needs Java 17 or later, and none was found: no `java` on PATH and "
        "JAVA_HOME is not set (install Java 17+, e.g. openjdk-17-jre-headless)")


def test_the_engines_read_a_record_as_long_as_canonical_csv_can_make_one_csv_lines_keeps(spark, duckdb_engine, tmp_path):
    # a record of MAX_RECORD_BYTES may grow to nearly three times as long as canonical CSV (quotes doubled, fields
    # quoted); DuckDB's default max_line_size (2,000,000 bytes) would refuse it
    from clickstream.csv_lines import ENGINE_MAX_RECORD_BYTES

    length = ENGINE_MAX_RECORD_BYTES - len("1,1,t,page_view,,,")
    path = write_csv(tmp_path / "raw" / "f.csv", [["1", "1", "t", "page_view", "p" * length, "", ""]])
    for engine in (duckdb_engine, spark):
        engine.read_csv("raw_rows", [path], len(HEADER), CsvOptions())
        assert engine.fetch("select c0, length(c4) from raw_rows")[1] == [("1", length)], engine.name
