"""Gold models on small inline silver tables: sessions split on inactivity, keys, dimensions."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from helpers import inline_table, run_model, ts

from clickstream.sql import render
from clickstream.schema import SILVER

INGESTED = dt.datetime(2026, 1, 2, 3, 4, 5)
CONTEXT = dict(timeout_us=30 * 60 * 1_000_000, no_product_key="", product_event_types=["product_view",
               "add_to_cart", "purchase"], purchase_event_types=["purchase"], funnel=["product_view", "add_to_cart",
               "purchase"], known_event_types=["add_to_cart", "product_view", "purchase"],
               product_view_event_types=["product_view"], cart_add_event_types=["add_to_cart"])


def silver_row(event_id, user, session, when, event="page_view", product=None, amount=None):
    outcome = "purchase" if event == "purchase" else None
    return (event_id, user, session, ts(when), event, product, None if amount is None else Decimal(amount), outcome,
            "clickstream", "a.csv", "b1", INGESTED, INGESTED.date())


def sessions(engine, rows):
    inline_table(engine, "silver_events", SILVER, rows)
    result = run_model(engine, "gold/int_events_sessionized", ["event_id", "session_key", "session_start_ts"],
                       **CONTEXT)
    return result


@pytest.mark.parametrize(
    ("gap_minutes", "visits"),
    [(5, 1), (29.99, 1), (30, 1), (30.01, 2), (60 * 24 * 40, 2)],
)
def test_a_supplied_session_splits_only_after_the_inactivity_timeout(duck, gap_minutes, visits):
    second = dt.datetime(2024, 1, 1, 10) + dt.timedelta(minutes=gap_minutes)
    result = sessions(duck, [silver_row("e1", "u1", "s1", "2024-01-01 10:00:00"),
                             silver_row("e2", "u1", "s1", second.isoformat(sep=" "))])
    assert len({key for _, key, _ in result}) == visits


def test_visits_are_derived_per_user_and_supplied_session(duck):
    rows = [
        silver_row("a1", "u1", "s1", "2024-01-01 10:00:00"),
        silver_row("a2", "u1", "s1", "2024-01-01 10:20:00"),
        silver_row("a3", "u1", "s1", "2024-01-01 11:00:00"),  # 40 min later: a new visit
        silver_row("b1", "u1", "s2", "2024-01-01 10:05:00"),  # another supplied session: its own visit
        silver_row("c1", "u2", None, "2024-01-01 10:00:00"),  # no supplied session: derived from gaps alone
        silver_row("c2", "u2", None, "2024-01-01 10:10:00"),
    ]
    result = sessions(duck, rows)
    starts = {event_id: start for event_id, _, start in result}
    keys = {event_id: key for event_id, key, _ in result}
    assert starts == {"a1": ts("2024-01-01 10:00:00"), "a2": ts("2024-01-01 10:00:00"),
                      "a3": ts("2024-01-01 11:00:00"), "b1": ts("2024-01-01 10:05:00"),
                      "c1": ts("2024-01-01 10:00:00"), "c2": ts("2024-01-01 10:00:00")}
    assert keys["a1"] == keys["a2"] and keys["c1"] == keys["c2"]
    assert len({keys["a1"], keys["a3"], keys["b1"], keys["c1"]}) == 4


def test_late_events_join_the_right_visit_regardless_of_arrival_order(duck):
    in_order = sessions(duck, [silver_row("e1", "u1", "s1", "2024-01-01 10:00:00"),
                               silver_row("e2", "u1", "s1", "2024-01-01 10:50:00"),
                               silver_row("late", "u1", "s1", "2024-01-01 10:25:00")])
    assert len({key for _, key, _ in in_order}) == 1


def star(engine, rows):
    """Silver rows -> the sessionized events and the fact table, which the dimensions read."""
    inline_table(engine, "silver_events", SILVER, rows)
    for model in ["int_events_sessionized", "fct_events"]:
        engine.materialize(model, render(f"gold/{model}", engine, **CONTEXT))


STAR_ROWS = [
    silver_row("e1", "u1", "s1", "2024-01-06 10:00:00", "product_view", "p1"),
    silver_row("e2", "u1", "s1", "2024-01-06 10:01:00", "add_to_cart", "p1"),
    silver_row("e3", "u1", "s1", "2024-01-06 10:02:00", "purchase", "p1", "10.50"),
    silver_row("e4", "u2", "s9", "2024-01-08 23:59:59", "page_view"),
    silver_row("e5", "u2", "s9", "2024-01-09 00:10:00", "purchase", "p2", "4.25"),
]


def test_fct_events_keys(duck):
    star(duck, STAR_ROWS)
    _, rows = duck.fetch("select event_id, user_key, product_key, event_type_key, date_key, time_key, amount, "
                         "is_purchase from fct_events order by event_id")
    assert rows == [
        ("e1", "u1", "p1", "product_view", 20240106, 1000, None, False),
        ("e2", "u1", "p1", "add_to_cart", 20240106, 1001, None, False),
        ("e3", "u1", "p1", "purchase", 20240106, 1002, Decimal("10.50"), True),
        ("e4", "u2", "", "page_view", 20240108, 2359, None, False),
        ("e5", "u2", "p2", "purchase", 20240109, 10, Decimal("4.25"), True),
    ]


def test_dim_users(duck):
    star(duck, STAR_ROWS)
    assert run_model(duck, "gold/dim_users", ["user_key", "first_seen_ts", "last_seen_ts", "total_events",
                                              "total_sessions", "total_purchases", "total_spent", "is_purchaser"],
                     **CONTEXT) == [
        ("u1", ts("2024-01-06 10:00:00"), ts("2024-01-06 10:02:00"), 3, 1, 1, Decimal("10.50"), True),
        ("u2", ts("2024-01-08 23:59:59"), ts("2024-01-09 00:10:00"), 2, 1, 1, Decimal("4.25"), True),
    ]


def test_spend_counts_purchases_only_even_where_another_event_carries_an_amount(duck):
    # an add_to_cart with the price on it (feeds do that) is no spend
    star(duck, STAR_ROWS + [silver_row("e6", "u2", "s9", "2024-01-09 00:11:00", "add_to_cart", "p3", "99.00")])
    assert run_model(duck, "gold/dim_users", ["user_key", "total_purchases", "total_spent", "is_purchaser"],
                     **CONTEXT) == [("u1", 1, Decimal("10.50"), True), ("u2", 1, Decimal("4.25"), True)]
    assert run_model(duck, "gold/dim_sessions", ["user_key", "cart_adds", "purchases", "revenue"], **CONTEXT) == [
        ("u1", 1, 1, Decimal("10.50")), ("u2", 1, 1, Decimal("4.25"))]


def test_dim_sessions(duck):
    star(duck, STAR_ROWS)
    assert run_model(duck, "gold/dim_sessions", ["user_key", "source_session_id", "session_start_ts",
                                                 "duration_seconds", "start_date_key", "total_events", "cart_adds",
                                                 "purchases", "revenue", "is_bounce", "has_purchase"], **CONTEXT) == [
        ("u1", "s1", ts("2024-01-06 10:00:00"), 120.0, 20240106, 3, 1, 1, Decimal("10.50"), False, True),
        ("u2", "s9", ts("2024-01-08 23:59:59"), 601.0, 20240108, 2, 0, 1, Decimal("4.25"), False, True),
    ]


def test_dim_products_has_a_not_applicable_member(duck):
    star(duck, STAR_ROWS)
    assert run_model(duck, "gold/dim_products", ["product_key", "views", "cart_adds", "purchases", "revenue",
                                                 "is_not_applicable"], **CONTEXT) == [
        ("", 0, 0, 0, Decimal("0.00"), True),
        ("p1", 1, 1, 1, Decimal("10.50"), False),
        ("p2", 0, 0, 1, Decimal("4.25"), False),
    ]


def test_the_configured_view_and_cart_types_are_counted_in_the_products_and_visits(duck):
    # a feed whose product pages are `quick_view` too, and whose cart has `basket_add` only
    star(duck, STAR_ROWS + [silver_row("e6", "u1", "s1", "2024-01-06 10:03:00", "quick_view", "p1"),
                            silver_row("e7", "u2", "s9", "2024-01-09 00:11:00", "basket_add", "p2")])
    context = {**CONTEXT, "product_view_event_types": ["product_view", "quick_view"],
               "cart_add_event_types": ["basket_add"]}
    assert run_model(duck, "gold/dim_products", ["product_key", "views", "cart_adds", "purchases"], **context) == [
        ("", 0, 0, 0), ("p1", 2, 0, 1), ("p2", 0, 1, 1)]
    assert run_model(duck, "gold/dim_sessions", ["user_key", "product_views", "cart_adds"], **context) == [
        ("u1", 2, 0), ("u2", 0, 1)]


def test_dim_date_covers_every_day_with_iso_weekdays(duck):
    star(duck, STAR_ROWS)
    assert run_model(duck, "gold/dim_date", ["date_key", "day_of_week", "day_name", "is_weekend", "month_name"],
                     **CONTEXT) == [
        (20240106, 6, "Saturday", True, "January"),
        (20240107, 7, "Sunday", True, "January"),
        (20240108, 1, "Monday", False, "January"),
        (20240109, 2, "Tuesday", False, "January"),
    ]


def test_dim_event_types_lists_configured_and_observed_types(duck):
    star(duck, STAR_ROWS)
    assert run_model(duck, "gold/dim_event_types", ["event_type_key", "is_product_event", "is_purchase",
                                                    "funnel_step", "total_events"], **CONTEXT) == [
        ("add_to_cart", True, False, 2, 1),
        ("page_view", False, False, None, 1),
        ("product_view", True, False, 1, 1),
        ("purchase", True, True, 3, 2),
    ]


def test_dim_time_has_every_minute(duck):
    _, rows = duck.fetch("select count(*), count(distinct time_key), min(time_key), max(time_key) from ("
                         + render("gold/dim_time", duck) + ") t")
    assert rows == [(1440, 1440, 0, 2359)]
