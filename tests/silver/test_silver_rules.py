"""The silver quality gate on small inline bronze tables: every rule, every reason, duplicates, event ids."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from helpers import bronze_values, inline_table

from clickstream.config import SilverRules, Source
from clickstream.schema import BRONZE, SILVER
from clickstream.sql import render

INGESTED = dt.datetime(2026, 1, 2, 3, 4, 5)
META = ("clickstream", "a.csv", "b1", INGESTED, INGESTED.date())


def bronze_row(user="1", session="1", timestamp="2024-01-01 10:00:00.000000", event="page_view", product=None,
               amount=None, outcome=None, source_file="a.csv"):
    return bronze_values(UserID=user, SessionID=session, Timestamp=timestamp, EventType=event, ProductID=product,
                         Amount=amount, Outcome=outcome, source_name="clickstream", source_file=source_file,
                         batch_id="b1", ingestion_timestamp=INGESTED, ingestion_date=INGESTED.date())


def classify(engine, rows, existing=(), rules=SilverRules(), sources=(Source(),)):
    """Every bronze row with its reasons and fate: quarantined (silver_typed), kept (silver_events) or duplicate
    (silver_repeats)."""
    inline_table(engine, "bronze_batch", BRONZE, rows)
    inline_table(engine, "silver_existing", SILVER, list(existing))
    engine.materialize("silver_typed", render("silver/silver_typed", engine, sources=list(sources), rules=rules))
    identity = {"columns": [c for c, _ in SILVER], "identified": False, "with_content": False, "attribute_names": []}
    engine.create_view("silver_clean", render("silver/silver_clean", engine, **identity))
    engine.materialize("silver_repeats", render("silver/silver_repeats", engine, **identity))
    engine.create_view("silver_new", render("silver/silver_events", engine, **identity))
    _, result = engine.fetch(
        "select user_id, event_type, event_ts, product_id, amount, rejection_reasons, 'quarantine' as disposition "
        "from silver_typed where rejection_reasons <> '' union all "
        "select user_id, event_type, event_ts, product_id, amount, '' as rejection_reasons, 'silver' "
        "from silver_new union all "
        "select user_id, event_type, event_ts, product_id, amount, '' as rejection_reasons, disposition "
        "from silver_repeats where disposition <> 'silver'")
    return sorted(result, key=lambda row: tuple((v is None, str(v)) for v in row))


@pytest.mark.parametrize(
    ("row", "reasons"),
    [
        (bronze_row(user=None), "missing_user_id"),
        (bronze_row(user="   "), "missing_user_id"),
        (bronze_row(event=None), "missing_event_type"),
        (bronze_row(timestamp=None), "missing_timestamp"),
        (bronze_row(timestamp="2024-13-45 25:61:00"), "invalid_timestamp"),
        (bronze_row(timestamp="yesterday"), "invalid_timestamp"),
        (bronze_row(event="product_view"), "missing_product_id"),
        (bronze_row(event="purchase", product="p1", outcome="purchase"), "missing_amount"),
        (bronze_row(event="purchase", product="p1", amount="12,50"), "invalid_amount"),
        (bronze_row(event="purchase", product="p1", amount="-3.00"), "negative_amount"),
        (bronze_row(user=None, event="add_to_cart", timestamp="bad"),
         "missing_user_id;invalid_timestamp;missing_product_id"),
    ],
)
def test_each_broken_rule_sends_the_row_to_quarantine_with_its_reasons(duck, row, reasons):
    result = classify(duck, [row])
    assert [(r[-2], r[-1]) for r in result] == [(reasons, "quarantine")]


def test_clean_rows_are_typed_and_kept(duck):
    rows = [
        bronze_row(user=" 7 ", timestamp="2024-03-01 08:00:00.5", event="purchase", product="p9", amount="19.999",
                   outcome="purchase"),
        bronze_row(user="u-uuid-1", timestamp="2024-03-01 08:00:00", event="login"),
        bronze_row(user="8", timestamp="2024-03-01 09:00:00", event="purchase", product="free", amount="0.00"),
    ]
    assert classify(duck, rows) == [
        ("7", "purchase", dt.datetime(2024, 3, 1, 8, 0, 0, 500000), "p9", Decimal("20.00"), "", "silver"),
        ("8", "purchase", dt.datetime(2024, 3, 1, 9, 0, 0), "free", Decimal("0.00"), "", "silver"),  # 0 is no refund
        ("u-uuid-1", "login", dt.datetime(2024, 3, 1, 8, 0, 0), None, None, "", "silver"),
    ]


def test_exact_duplicates_keep_one_copy_and_already_loaded_events_are_redelivered(duck):
    first = bronze_row(user="1", event="click", source_file="a.csv")
    same_in_other_file = bronze_row(user="1", event="click", source_file="b.csv")
    other = bronze_row(user="2", event="click")
    inline_table(duck, "bronze_batch", BRONZE, [other])
    inline_table(duck, "silver_existing", SILVER, [])
    _, (existing_id,) = duck.fetch("select event_id from (" + _classified_sql(duck) + ") c")
    result = classify(duck, [first, same_in_other_file, other],
                      existing=[(existing_id[0], "2", "1", dt.datetime(2024, 1, 1, 10), "click", None, None, None,
                                 *META)])
    assert [(r[0], r[-1]) for r in result] == [("1", "duplicate"), ("1", "silver"), ("2", "redelivered")]


def test_of_repeated_copies_the_first_by_file_is_kept_and_the_rest_counted_where_they_came_from(duck):
    rows = [bronze_row(user="1", source_file="b.csv"), bronze_row(user="1", source_file="a.csv"),
            bronze_row(user="1", source_file="a.csv"), bronze_row(user="2", source_file="c.csv"),
            bronze_row(user="3", source_file="c.csv"), bronze_row(user="3", source_file="d.csv")]
    inline_table(duck, "bronze_batch", BRONZE, [rows[4]])
    inline_table(duck, "silver_existing", SILVER, [])
    _, (user_3_id,) = duck.fetch("select event_id from (" + _classified_sql(duck) + ") c")
    classify(duck, rows, existing=[(user_3_id[0], "3", "1", dt.datetime(2024, 1, 1, 10), "page_view", None, None,
                                    None, *META)])
    _, kept = duck.fetch("select user_id, source_file from silver_new order by user_id")
    _, duplicates = duck.fetch("select user_id, source_file, disposition from silver_repeats "
                               "where disposition <> 'silver' order by user_id, source_file")
    assert kept == [("1", "a.csv"), ("2", "c.csv")]
    assert duplicates == [("1", "a.csv", "duplicate"), ("1", "b.csv", "duplicate"), ("3", "c.csv", "redelivered"),
                          ("3", "d.csv", "redelivered")]


def _classified_sql(engine):
    return render("silver/silver_typed", engine, sources=[Source()], rules=SilverRules())


def test_event_types_are_mapped_and_unknown_types_kept(duck):
    source = Source(event_types={"view": "page_view", "buy": "purchase"})
    rows = [bronze_row(event="view"),
            bronze_row(event="buy", product="p1", amount="5", timestamp="2024-01-01 10:00:01"),
            bronze_row(event="wishlist", timestamp="2024-01-01 10:00:02")]
    assert [(r[1], r[-1]) for r in classify(duck, rows, sources=[source])] == [
        ("page_view", "silver"), ("purchase", "silver"), ("wishlist", "silver")]


def test_timestamps_in_another_zone_are_stored_as_utc(duck):
    source = Source(timezone="Europe/Paris", timestamp_formats=["%d/%m/%Y %H:%M"])
    result = classify(duck, [bronze_row(timestamp="01/07/2024 12:30")], sources=[source])
    assert [r[2] for r in result] == [dt.datetime(2024, 7, 1, 10, 30)]


def test_rules_come_from_config(duck):
    rules = SilverRules(required_columns=["user_id", "event_type", "session_id"], allow_negative_amount=True,
                        product_event_types=["product_view"])
    rows = [bronze_row(session=None, timestamp="2024-01-01 10:00:01"),
            bronze_row(event="purchase", product="p1", amount="-2", timestamp="2024-01-01 10:00:02"),
            bronze_row(event="add_to_cart", timestamp="2024-01-01 10:00:03")]
    assert [(r[1], r[-2], r[-1]) for r in classify(duck, rows, rules=rules)] == [
        ("add_to_cart", "", "silver"), ("page_view", "missing_session_id", "quarantine"), ("purchase", "", "silver")]


def test_event_id_is_the_event_content(duck):
    rows = [bronze_row(user="1"), bronze_row(user="1", source_file="z.csv"), bronze_row(user="2")]
    inline_table(duck, "bronze_batch", BRONZE, rows)
    inline_table(duck, "silver_existing", SILVER, [])
    _, ids = duck.fetch("select event_id from (" + _classified_sql(duck) + ") c order by source_file, user_id")
    assert ids[0] == ids[2] != ids[1]
    assert {len(i[0]) for i in ids} == {32}


def from_source(row: tuple, name: str) -> tuple:
    position = [c for c, _ in BRONZE].index("source_name")
    return row[:position] + (name,) + row[position + 1:]


NO_PRICES = Source(name="feed", columns={**Source().columns, "Amount": None})


@pytest.mark.parametrize(("required", "expected"), [
    # default: the purchase types need an amount, except from a source without a price column
    (None, [("1", "purchase", None, "missing_amount", "quarantine"), ("2", "purchase", None, "", "silver"),
            ("3", "add_to_cart", None, "", "silver")]),
    (["purchase", "add_to_cart"], [("1", "purchase", None, "missing_amount", "quarantine"),
                                   ("2", "purchase", None, "", "silver"),
                                   ("3", "add_to_cart", None, "missing_amount", "quarantine")]),
    ([], [("1", "purchase", None, "", "silver"), ("2", "purchase", None, "", "silver"),
          ("3", "add_to_cart", None, "", "silver")]),
])
def test_amount_required_for_decides_which_types_need_an_amount_and_a_feed_without_prices_is_exempt(
        duck, required, expected):
    rows = [bronze_row(user="1", event="purchase", product="p1"),
            from_source(bronze_row(user="2", event="purchase", product="p1"), "feed"),
            bronze_row(user="3", event="add_to_cart", product="p1")]
    result = classify(duck, rows, rules=SilverRules(amount_required_for=required), sources=(Source(), NO_PRICES))
    assert [(r[0], r[1], r[4], r[5], r[6]) for r in result] == expected
