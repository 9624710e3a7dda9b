"""Attributes on DuckDB and on Spark, on small inline tables compared whole: kept in silver as text, each
product's latest non-empty value on dim_products, the value on a visit's first event on dim_sessions, and a
funnel broken down by the user's first visit's value."""
from __future__ import annotations

import datetime as dt

import pytest
from helpers import (BRONZE_WITH_EXTRA, FCT, analytics_context, bronze_values, event, inline_table, run_model,
                     ts)

from clickstream.config import Config
from clickstream.schema import SILVER, with_attributes
from clickstream.sql import render

ENGINES = ["duckdb", pytest.param("spark", marks=pytest.mark.spark)]
INGESTED = dt.datetime(2026, 1, 2, 3, 4, 5)
DAY = "2024-01-01"
CONTEXT = dict(timeout_us=30 * 60 * 1_000_000, no_product_key="", product_event_types=["product_view",
               "add_to_cart", "purchase"], purchase_event_types=["purchase"],
               product_view_event_types=["product_view"], cart_add_event_types=["add_to_cart"])
# `group` is a keyword of SQL: every attribute name is quoted where it reaches SQL
ATTRIBUTES = ["brand", "channel", "group"]
SILVER_ATTRIBUTES = with_attributes(SILVER, ATTRIBUTES)


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.getfixturevalue("duckdb_engine" if request.param == "duckdb" else "spark")


def test_attributes_are_kept_in_silver_as_trimmed_text_from_each_sources_own_columns(engine):
    config = Config.model_validate({"sources": [
        {"name": "shop", "attributes": {"brand": "brand_name", "group": "a.b"}},
        {"name": "app", "attributes": {"channel": "context.campaign.source"}}]})
    rows = [bronze_values(BRONZE_WITH_EXTRA, UserID=user, Timestamp=f"{DAY} 10:00:00", EventType="page_view",
                          extra=extra, source_name=source, source_file="a.csv", batch_id="b1",
                          ingestion_timestamp=INGESTED, ingestion_date=INGESTED.date())
            for user, source, extra in [
                ("1", "shop", '{"brand_name": " Acme ", "a.b": "x", "context.campaign.source": "no"}'),
                ("2", "shop", '{"brand_name": "", "a": "y"}'),  # empty: NULL; "a" is not the key "a.b"
                ("3", "app", '{"context.campaign.source": "ads", "brand_name": "no"}'),
                ("4", "app", None)]]
    inline_table(engine, "bronze_batch", BRONZE_WITH_EXTRA, rows)
    engine.materialize("silver_typed", render("silver/silver_typed", engine, sources=config.sources,
                                              rules=config.silver, attribute_names=config.attribute_names))
    quoted = ", ".join(engine.quote_identifier(name) for name in config.attribute_names)
    assert sorted(engine.fetch(f"select user_id, {quoted} from silver_typed")[1]) == [
        ("1", "Acme", None, "x"), ("2", None, None, None), ("3", None, "ads", None), ("4", None, None, None)]


def silver_row(event_id, user, when, event_type="page_view", product=None, brand=None, channel=None, group=None,
               session="s"):
    return (event_id, user, session, ts(when), event_type, product, None, None, "shop", "a.csv", "b1", INGESTED,
            INGESTED.date(), brand, channel, group)


def test_a_product_gets_its_latest_non_empty_value_and_at_one_time_the_greatest(engine):
    rows = [
        silver_row("a3", "u1", f"{DAY} 10:05:00", "product_view", "p1", brand=None),  # latest, but empty
        silver_row("a1", "u1", f"{DAY} 10:00:00", "product_view", "p1", brand="Acme"),
        silver_row("a2", "u2", f"{DAY} 10:02:00", "add_to_cart", "p1", brand="Acme Corp", group="g1"),
        silver_row("b1", "u1", f"{DAY} 11:00:00", "product_view", "p2", brand="Zeta"),  # a tie at 11:00 ...
        silver_row("b2", "u2", f"{DAY} 11:00:00", "product_view", "p2", brand="Beta"),  # ... the greatest wins
        silver_row("c1", "u1", f"{DAY} 12:00:00", "product_view", "p3"),  # never a value
        silver_row("d1", "u1", f"{DAY} 13:00:00", "page_view", None, brand="Nobody"),  # no product
    ]
    inline_table(engine, "silver_events", SILVER_ATTRIBUTES, rows)
    context = {**CONTEXT, "product_attributes": ["brand", "group"], "visit_attributes": []}
    for model in ["int_events_sessionized", "fct_events"]:
        engine.materialize(model, render(f"gold/{model}", engine, **context))
    group = engine.quote_identifier("group")
    assert run_model(engine, "gold/dim_products", ["product_key", "views", "brand", group], **context) == [
        ("", 0, None, None), ("p1", 2, "Acme Corp", "g1"), ("p2", 2, "Zeta", None), ("p3", 1, None, None)]


def test_a_visit_gets_the_value_on_its_first_event(engine):
    rows = [
        silver_row("a2", "u1", f"{DAY} 10:10:00", channel="email"),
        silver_row("a1", "u1", f"{DAY} 10:00:00", channel="ads"),
        silver_row("a3", "u1", f"{DAY} 12:00:00", channel=None),  # a new visit: its first event has none ...
        silver_row("a4", "u1", f"{DAY} 12:05:00", channel="seo"),  # ... which a later event does not fill
        silver_row("b2", "u2", f"{DAY} 10:00:00", channel="second"),  # one time: the first by event_id starts it
        silver_row("b1", "u2", f"{DAY} 10:00:00", channel="first"),
    ]
    inline_table(engine, "silver_events", SILVER_ATTRIBUTES, rows)
    context = {**CONTEXT, "product_attributes": [], "visit_attributes": ["channel"]}
    engine.materialize("int_events_sessionized", render("gold/int_events_sessionized", engine, **context))
    assert run_model(engine, "gold/dim_sessions", ["user_key", "session_start_ts", "total_events", "channel"],
                     **context) == [
        ("u1", ts(f"{DAY} 10:00:00"), 2, "ads"), ("u1", ts(f"{DAY} 12:00:00"), 2, None),
        ("u2", ts(f"{DAY} 10:00:00"), 2, "first")]


def test_a_funnel_broken_down_by_a_visit_attribute_counts_each_user_under_their_first_visits_value(engine):
    inline_table(engine, "fct_events", FCT, [
        event("a0", "a", "page_view", DAY + " 09:00", session="1"),  # a's first visit, from ads
        event("a1", "a", "product_view", DAY + " 10:00", session="2"),  # a later visit, from seo
        event("a2", "a", "add_to_cart", DAY + " 10:01", session="2"),
        event("b1", "b", "product_view", DAY + " 10:00", session="1"),
    ])
    inline_table(engine, "dim_sessions", [("session_key", "string"), ("user_key", "string"),
                                          ("session_start_ts", "timestamp"), ("channel", "string")], [
        ("a-2", "a", ts(DAY + " 10:00"), "seo"), ("a-1", "a", ts(DAY + " 09:00"), "ads"),
        ("b-1", "b", ts(DAY + " 10:00"), "seo")])
    assert run_model(engine, "analytics/conversion_funnel", ordered=True, **analytics_context(
            funnel_window_us=3600 * 1_000_000, funnel_breakdown="channel", visit_attributes=["channel"])) == [
        # a reached step 2 in a visit from seo, but a's first visit came from ads; both attempts are still in
        # their window when the data ends (in progress), so no conversion is known yet past them
        ("ads", 1, "product_view", 1, 0, 0, 1.0, 1.0, None, None),
        ("ads", 2, "add_to_cart", 1, 1, 0, 1.0, 1.0, 60.0, 60.0),
        ("ads", 3, "purchase", 0, 0, 0, None, None, None, None),
        ("seo", 1, "product_view", 1, 1, 0, 1.0, 1.0, None, None),
        ("seo", 2, "add_to_cart", 0, 0, 0, None, None, None, None),
        ("seo", 3, "purchase", 0, 0, 0, None, None, None, None),
    ]


PRODUCTS = [("product_key", "string"), ("product_id", "string"), ("views", "bigint"), ("purchases", "bigint"),
            ("revenue", "decimal(18,2)"), ("is_not_applicable", "boolean"), ("brand", "string")]


def test_revenue_by_the_first_product_attribute_sums_its_products_and_is_skipped_without_one(engine):
    from decimal import Decimal

    from clickstream.analytics import queries

    inline_table(engine, "dim_products", PRODUCTS, [
        ("p1", "p1", 3, 1, Decimal("10.00"), False, "Acme"), ("p2", "p2", 1, 2, Decimal("5.50"), False, "Acme"),
        ("p3", "p3", 2, 0, Decimal("0"), False, "Zeta"), ("p4", "p4", 1, 1, Decimal("20.00"), False, None),
        ("", None, 0, 0, Decimal("0"), True, None)])
    assert run_model(engine, "analytics/revenue_by_attribute",
                     **analytics_context(product_attributes=["brand", "other"])) == [
        ("brand", "Acme", 2, 4, 3, Decimal("15.50")), ("brand", "Zeta", 1, 2, 0, Decimal("0.00")),
        ("brand", None, 1, 1, 1, Decimal("20.00"))]
    names = [q["name"] for q in queries("all", Config())]
    with_attributes = [q["name"] for q in queries("all", Config.model_validate(
        {"sources": [{"attributes": {"brand": "b"}}], "gold": {"product_attributes": ["brand"]}}))]
    assert (("revenue_by_attribute" in names), sorted(set(with_attributes) - set(names))) == (
        False, ["revenue_by_attribute"])
