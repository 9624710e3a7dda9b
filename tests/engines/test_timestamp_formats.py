"""timestamp_formats' keywords (epoch_s/ms/us/ns, iso8601) on DuckDB and on Spark: the macro on single values,
then silver_typed on a small bronze batch, each compared with the value written by hand."""
from __future__ import annotations

from datetime import datetime

import pytest
from helpers import bronze_values, inline_table

from clickstream.config import SilverRules, Source
from clickstream.engines.base import Engine
from clickstream.schema import BRONZE
from clickstream.sql import render

ENGINES = ["duckdb", pytest.param("spark", marks=pytest.mark.spark)]
INGESTED = datetime(2026, 1, 2, 3, 4, 5)


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.getfixturevalue("duckdb_engine" if request.param == "duckdb" else "spark")


def parsed(engine: Engine, formats: list[str], raw: str | None) -> tuple[object, object]:
    """(wall-clock time, UTC instant) the formats read from the text."""
    text = "cast(null as string)" if raw is None else engine.quote_literal(raw)
    instant = engine.parse_instant(text, formats) or "cast(null as timestamp)"
    _, rows = engine.fetch(f"select {engine.parse_timestamp(text, formats)} as wall, {instant} as instant")
    return rows[0]


def instant(*args: int) -> tuple[None, datetime]:
    return None, datetime(*args)


def wall(*args: int) -> tuple[datetime, None]:
    return datetime(*args), None


NOTHING = (None, None)

CASES = [
    # epoch text: integer or decimal, digits finer than a microsecond dropped
    (["epoch_s"], "1433221332", instant(2015, 6, 2, 5, 2, 12)),  # Mixpanel's properties.time
    (["epoch_s"], "1433221332.117", instant(2015, 6, 2, 5, 2, 12, 117000)),
    (["epoch_s"], "1433221332.1234567", instant(2015, 6, 2, 5, 2, 12, 123456)),
    (["epoch_s"], "+0", instant(1970, 1, 1)),
    (["epoch_s"], "-1", instant(1969, 12, 31, 23, 59, 59)),
    (["epoch_s"], "253402300799", instant(9999, 12, 31, 23, 59, 59)),
    (["epoch_s"], "-62135596800", instant(1, 1, 1)),
    (["epoch_s"], "9999999999999", NOTHING),  # 13 digits: more than the years 1-9999 need
    (["epoch_ns"], "1" + "0" * 21, NOTHING),
    (["epoch_ms"], "1433221332117", instant(2015, 6, 2, 5, 2, 12, 117000)),  # RetailRocket's timestamp
    (["epoch_ms"], "1433221332117.5", instant(2015, 6, 2, 5, 2, 12, 117500)),
    (["epoch_ms"], "-1.5", instant(1969, 12, 31, 23, 59, 59, 998500)),
    (["epoch_ms"], "1433221332117.", instant(2015, 6, 2, 5, 2, 12, 117000)),
    (["epoch_us"], "1718000000123456", instant(2024, 6, 10, 6, 13, 20, 123456)),  # GA4's event_timestamp
    (["epoch_us"], "1718000000123456.9", instant(2024, 6, 10, 6, 13, 20, 123456)),
    (["epoch_ns"], "1718000000123456789", instant(2024, 6, 10, 6, 13, 20, 123456)),
    (["epoch_ns"], "999", instant(1970, 1, 1)),
    (["epoch_ms"], "99999999999999999999", NOTHING),  # more microseconds than a bigint holds
    (["epoch_s"], "9" * 40, NOTHING),
    (["epoch_ms"], "1433221332117abc", NOTHING),
    (["epoch_ms"], "1.4e12", NOTHING),
    (["epoch_ms"], "1,5", NOTHING),
    (["epoch_ms"], ".5", NOTHING),
    (["epoch_ms"], "--1", NOTHING),
    (["epoch_ms"], "\u0661\u0662\u0663", NOTHING),  # Arabic-Indic digits
    (["epoch_ms"], "1433221332117\n", NOTHING),  # Java's `$` would take it
    (["epoch_ns"], "-123", instant(1970, 1, 1)),
    (["epoch_ms"], "", NOTHING),
    (["epoch_ms"], None, NOTHING),
    # ISO 8601: an offset makes an instant; without one, a wall-clock time in the source's zone
    (["iso8601"], "2024-02-29T10:00:00Z", instant(2024, 2, 29, 10)),
    (["iso8601"], "2024-02-29 10:00:00", wall(2024, 2, 29, 10)),
    (["iso8601"], "2024-01-01T10:00:00.5", wall(2024, 1, 1, 10, 0, 0, 500000)),
    (["iso8601"], "2024-01-01T10:00:00.123456789Z", instant(2024, 1, 1, 10, 0, 0, 123456)),  # truncated
    (["iso8601"], "2024-01-01T10:00:00+05:30", instant(2024, 1, 1, 4, 30)),
    (["iso8601"], "2024-01-01 10:00:00-0800", instant(2024, 1, 1, 18)),
    (["iso8601"], "2024-01-01T10:00:00+01", instant(2024, 1, 1, 9)),
    (["iso8601"], "2024-01-01T00:30:00+01:00", instant(2023, 12, 31, 23, 30)),
    (["iso8601"], "2023-12-31T23:30:00-01:00", instant(2024, 1, 1, 0, 30)),
    (["iso8601"], "2024-01-01T10:00:00+00:00", instant(2024, 1, 1, 10)),
    (["iso8601"], "2024-01-01T10:00:00+25:00", NOTHING),
    (["iso8601"], "2024-01-01T10:00:00+05:60", NOTHING),
    (["iso8601"], "2024-01-01T10:00:00+05:", NOTHING),
    (["iso8601"], "2024-02-30T10:00:00Z", NOTHING),
    (["iso8601"], "2023-02-29T10:00:00", NOTHING),
    (["iso8601"], "2024-01-01T24:00:00Z", NOTHING),
    (["iso8601"], "2024-01-01T10:00:00.1234567890Z", NOTHING),  # ten fraction digits
    (["iso8601"], "2024-01-01T10:00:00.Z", NOTHING),
    (["iso8601"], "2024-01-01T10:00Z", NOTHING),  # seconds are required
    (["iso8601"], "2024-1-1T10:00:00Z", NOTHING),
    (["iso8601"], "2024-01-01T10:00:00 Z", NOTHING),
    (["iso8601"], "1433221332117", NOTHING),
    (["iso8601"], "2024-01-01T10:00:00Z\n", NOTHING),
    (["iso8601"], "2024-01-01T10:00:00.5+0530", instant(2024, 1, 1, 4, 30, 0, 500000)),
    (["iso8601"], "2024-01-01T10:00:00.123-01", instant(2024, 1, 1, 11, 0, 0, 123000)),
    # several formats: the first that parses wins
    (["epoch_ms", "%Y%m%d%H%M%S"], "20240101100000", instant(2611, 5, 21, 10, 18, 20)),
    (["%Y%m%d%H%M%S", "epoch_ms"], "20240101100000", wall(2024, 1, 1, 10)),
    (["%Y%m%d%H%M%S", "epoch_ms"], "1433221332117", instant(2015, 6, 2, 5, 2, 12, 117000)),
    (["iso8601", "%d/%m/%Y %H:%M", "epoch_s"], "01/02/2024 10:00", wall(2024, 2, 1, 10)),
    (["iso8601", "%d/%m/%Y %H:%M", "epoch_s"], "1433221332", instant(2015, 6, 2, 5, 2, 12)),
    (["iso8601", "%d/%m/%Y %H:%M", "epoch_s"], "2024-01-01T10:00:00-01:00", instant(2024, 1, 1, 11)),
]


@pytest.mark.parametrize(("formats", "raw", "expected"), CASES)
def test_keyword_formats_read_epochs_and_iso_8601(engine, formats, raw, expected):
    assert parsed(engine, formats, raw) == expected


def test_strftime_formats_alone_read_no_instant(duckdb_engine):
    assert duckdb_engine.parse_instant("'2024-01-01 10:00:00'", ["%Y-%m-%d %H:%M:%S"]) == ""


# ---- silver_typed: instants ignore the source's zone; wall-clock times are in it; the range applies to both

def bronze(source: str, timestamp: str, user: str) -> tuple:
    return bronze_values(UserID=user, SessionID="s", Timestamp=timestamp, EventType="page_view", source_name=source,
                         source_file="a.csv", batch_id="b1", ingestion_timestamp=INGESTED,
                         ingestion_date=INGESTED.date())


SOURCES = [Source(name="ga4", timestamp_formats=["epoch_us"]),
           Source(name="shop", timezone="America/New_York", timestamp_formats=["iso8601", "epoch_ms"])]
BATCH = [
    bronze("ga4", "1718000000123456", "g1"),
    bronze("ga4", "-1718000000123456", "g2"),  # 1915: before the range
    bronze("ga4", "1718000000123", "g3"),  # milliseconds read as microseconds: 1970
    bronze("ga4", "17180000001234567890123", "g4"),  # overflows
    bronze("ga4", "1718000000x", "g5"),
    bronze("ga4", "253402300800000000", "g6"),  # year 10000: read, and out of range
    bronze("shop", "2024-07-01T12:00:00-04:00", "s1"),  # the offset, not the zone
    bronze("shop", "2024-07-01 12:00:00", "s2"),  # the zone: EDT
    bronze("shop", "2024-03-10T02:30:00", "s3"),  # a wall time the clocks skip
    bronze("shop", "2024-11-03T01:30:00", "s4"),  # one they pass twice
    bronze("shop", "2024-11-03T01:30:00Z", "s5"),  # an instant: no DST question
    bronze("shop", "1718000000123", "s6"),  # epoch ms: UTC whatever the zone
    bronze("shop", "2024-02-29T23:59:59.999999999+14:00", "s7"),
    bronze("shop", "2024-02-30T10:00:00Z", "s8"),
]


def test_silver_reads_instants_in_utc_and_wall_times_in_the_sources_zone(engine):
    inline_table(engine, "bronze_batch", BRONZE, BATCH)
    engine.materialize("silver_typed", render("silver/silver_typed", engine, sources=SOURCES, rules=SilverRules()))
    # event_ts of year 10000 is past what Python's datetime holds: shown as NULL
    _, rows = engine.fetch("select user_id, case when year(event_ts) < 10000 then event_ts end, rejection_reasons, "
                           "is_nonexistent_local_time, is_ambiguous_local_time from silver_typed")
    assert sorted(rows) == [
        ("g1", datetime(2024, 6, 10, 6, 13, 20, 123456), "", False, False),
        ("g2", datetime(1915, 7, 24, 17, 46, 39, 876544), "timestamp_out_of_range", False, False),
        ("g3", datetime(1970, 1, 20, 21, 13, 20, 123), "timestamp_out_of_range", False, False),
        ("g4", None, "invalid_timestamp", False, False),
        ("g5", None, "invalid_timestamp", False, False),
        ("g6", None, "timestamp_out_of_range", False, False),
        ("s1", datetime(2024, 7, 1, 16), "", None, None),
        ("s2", datetime(2024, 7, 1, 16), "", False, False),
        ("s3", datetime(2024, 3, 10, 7, 30), "", True, False),
        ("s4", datetime(2024, 11, 3, 6, 30), "", False, True),
        ("s5", datetime(2024, 11, 3, 1, 30), "", None, None),
        ("s6", datetime(2024, 6, 10, 6, 13, 20, 123000), "", None, None),
        ("s7", datetime(2024, 2, 29, 9, 59, 59, 999999), "", None, None),
        ("s8", None, "invalid_timestamp", None, None),
    ]
