"""One trimming rule for every silver value, on DuckDB and on Spark: Unicode whitespace (tab, CR, LF, the no-break
and ideographic spaces too) goes from both ends; inside a value, and the unit separator, it stays."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from helpers import bronze_values

from clickstream.config import SilverRules, Source
from clickstream.schema import BRONZE
from clickstream.sql import render

ENGINES = ["duckdb", pytest.param("spark", marks=pytest.mark.spark)]
INGESTED = dt.datetime(2026, 1, 2, 3, 4, 5)


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.getfixturevalue("duckdb_engine" if request.param == "duckdb" else "spark")


def bronze_row(line, user, event, timestamp="2024-01-01 10:00:00", product=None, amount=None, session="s"):
    return bronze_values(UserID=user, SessionID=session, Timestamp=timestamp, EventType=event, ProductID=product,
                         Amount=amount, source_line=line, source_name="clickstream", source_file="a.csv",
                         batch_id="b1", ingestion_timestamp=INGESTED, ingestion_date=INGESTED.date())


ROWS = [
    bronze_row(1, "7", "page_view"),
    bronze_row(2, "\t7", "page_view\t"),  # the same event as line 1
    bronze_row(3, "7\r\n", "\u00a0page_view\u3000", timestamp="\t2024-01-01 10:00:00\r"),  # and again
    bronze_row(4, "\u2003 8 \u2028", "purchase", product="\tp1\n", amount="\u00a012.50\t", session="\x0bs\x0c"),
    bronze_row(5, "7\t8", "page\u00a0view"),  # whitespace inside a value is part of it
    bronze_row(6, "\x1f9\x1f", "page_view"),  # the unit separator is no whitespace
    bronze_row(7, "\t\u00a0\r\n", "page_view"),  # whitespace alone is empty: a missing user id
    bronze_row(8, "\u00a0\u0301u", "page_view\u200a"),  # a combining mark after the space: only the space goes
    bronze_row(9, "\u3000", "page_view"),  # one whitespace character alone
]


def test_every_value_is_trimmed_of_unicode_whitespace_at_both_ends(engine):
    engine.register_rows("bronze_batch", BRONZE, ROWS)
    engine.materialize("silver_typed", render("silver/silver_typed", engine, sources=[Source()], rules=SilverRules()))
    _, rows = engine.fetch(
        "select source_line, user_id, session_id, cast(event_ts as string), event_type, product_id, amount, "
        "rejection_reasons, event_id = (select event_id from silver_typed where source_line = 1) "
        "from silver_typed order by source_line")
    at_ten = "2024-01-01 10:00:00"
    assert rows == [
        (1, "7", "s", at_ten, "page_view", None, None, "", True),
        (2, "7", "s", at_ten, "page_view", None, None, "", True),
        (3, "7", "s", at_ten, "page_view", None, None, "", True),
        (4, "8", "s", at_ten, "purchase", "p1", Decimal("12.50"), "", False),
        (5, "7\t8", "s", at_ten, "page\u00a0view", None, None, "", False),
        (6, "\x1f9\x1f", "s", at_ten, "page_view", None, None, "", False),
        (7, None, "s", at_ten, "page_view", None, None, "missing_user_id", None),
        (8, "\u0301u", "s", at_ten, "page_view", None, None, "", False),
        (9, None, "s", at_ten, "page_view", None, None, "missing_user_id", None),
    ]
