"""The analytics queries on tiny inline gold tables, on DuckDB and on Spark: each result compared whole, by hand.

Between them the cases cover: rows not in time order, ties at one timestamp, a step before step 1, re-entry after
a failed attempt, the window boundary (exactly W and W plus one second), an attempt crossing midnight, times that
cross midnight UTC (what input written in another time zone becomes), an attempt still in its window when the
data ends, an incomplete retention period, consecutive repeats in a path and a cart still open at the end.
"""
from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal
from fractions import Fraction

import pytest
from helpers import DATES, FCT, USERS, analytics_context, dates, event, inline_table, run_model, ts

from clickstream.config import Retention, Segments
from clickstream.sql import render

ENGINES = ["duckdb", pytest.param("spark", marks=pytest.mark.spark)]
HOUR_US = 3600 * 1_000_000
DAY = "2024-01-01"


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.getfixturevalue("duckdb_engine" if request.param == "duckdb" else "spark")


# ---- conversion_funnel (ordered, with a window)

FUNNEL_EVENTS = [
    # a: rows not in time order; through every step
    event("a3", "a", "purchase", "2024-01-01 10:20", amount="5"),
    event("a1", "a", "product_view", "2024-01-01 10:00"),
    event("a2", "a", "add_to_cart", "2024-01-01 10:05"),
    # b: a step before step 1 does not count; b's window closed before the data ended: dropped at step 1
    event("b1", "b", "add_to_cart", "2024-01-01 09:00"),
    event("b2", "b", "product_view", "2024-01-01 09:30"),
    # c: adds to cart and buys without viewing: never in the funnel, in no denominator
    event("c1", "c", "add_to_cart", "2024-01-01 10:00"),
    event("c2", "c", "purchase", "2024-01-01 10:10", amount="5"),
    # d: re-entry; the first attempt's cart comes 1 h + 1 s after its view (outside the window); the second
    # attempt's cart comes at the view's very time (a tie, taken in step order) and its purchase exactly 1 h after
    event("d1", "d", "product_view", "2024-01-01 08:00"),
    event("d2", "d", "add_to_cart", "2024-01-01 09:00:01"),
    event("d4", "d", "add_to_cart", "2024-01-01 09:30"),
    event("d3", "d", "product_view", "2024-01-01 09:30"),
    event("d5", "d", "purchase", "2024-01-01 10:30", amount="5"),
    # e: the window boundary plus one second: dropped at step 1
    event("e1", "e", "product_view", "2024-01-01 10:00"),
    event("e2", "e", "add_to_cart", "2024-01-01 11:00:01"),
    # f and g: still inside their window when the data ends (12:00): in progress at steps 1 and 2
    event("f1", "f", "product_view", "2024-01-01 11:30"),
    event("g1", "g", "product_view", "2024-01-01 11:45"),
    event("g2", "g", "add_to_cart", "2024-01-01 11:50"),
    # h: no funnel step, but the data's last event
    event("h1", "h", "page_view", "2024-01-01 12:00"),
]


def test_conversion_funnel_follows_each_attempt_in_order_within_the_window(engine):
    inline_table(engine, "fct_events", FCT, FUNNEL_EVENTS)
    assert run_model(engine, "analytics/conversion_funnel", ordered=True,
                     **analytics_context(funnel_window_us=HOUR_US)) == [
        # users, in_progress, dropped, conversion from previous and from first (users still in progress left out
        # of the denominators), median and mean seconds from the previous step
        (1, "product_view", 6, 1, 2, 1.0, 1.0, None, None),
        (2, "add_to_cart", 3, 1, 0, 3 / 5, 3 / 5, 300.0, 200.0),  # a 300 s, d 0 s (a tie), g 300 s
        (3, "purchase", 2, 0, 0, 1.0, 2 / 4, 2250.0, 2250.0),  # a 900 s, d exactly 3600 s
    ]


def test_funnel_users_holds_each_starters_furthest_step_and_times_never_whether_they_are_in_progress(engine):
    context = analytics_context(funnel_window_us=HOUR_US)
    inline_table(engine, "fct_events", FCT, FUNNEL_EVENTS)
    state = run_model(engine, "analytics/funnel_users", **context)
    at = ts
    assert state == sorted([
        # user, breakdown, furthest step, step times of the earliest attempt reaching it, latest attempt's start
        ("a", None, 3, at("2024-01-01 10:00"), at("2024-01-01 10:05"), at("2024-01-01 10:20"), at("2024-01-01 10:00")),
        ("b", None, 1, at("2024-01-01 09:30"), None, None, at("2024-01-01 09:30")),
        ("d", None, 3, at("2024-01-01 09:30"), at("2024-01-01 09:30"), at("2024-01-01 10:30"), at("2024-01-01 09:30")),
        ("e", None, 1, at("2024-01-01 10:00"), None, None, at("2024-01-01 10:00")),
        ("f", None, 1, at("2024-01-01 11:30"), None, None, at("2024-01-01 11:30")),
        ("g", None, 2, at("2024-01-01 11:45"), at("2024-01-01 11:50"), None, at("2024-01-01 11:45")),
    ], key=lambda row: tuple((v is None, str(v)) for v in row))
    # Another user's event moves the data's end past f's and g's windows: their state is the same, and the
    # funnel counts them as dropped, not in progress.
    inline_table(engine, "fct_events", FCT, FUNNEL_EVENTS + [event("h2", "h", "page_view", "2024-01-01 12:51")])
    assert run_model(engine, "analytics/funnel_users", **context) == state
    assert run_model(engine, "analytics/conversion_funnel", ["step_number", "users", "in_progress", "dropped"],
                     ordered=True, **context) == [(1, 6, 0, 3), (2, 3, 0, 1), (3, 2, 0, 0)]


def test_conversion_funnel_denominators_leave_out_users_who_skip_step_1(engine):
    # c adds to cart and buys without viewing: the step conversions are those of b alone, not 2/1
    inline_table(engine, "fct_events", FCT, [
        event("b1", "b", "product_view", DAY + " 10:00"), event("b2", "b", "add_to_cart", DAY + " 10:01"),
        event("c1", "c", "add_to_cart", DAY + " 10:00"), event("c2", "c", "purchase", DAY + " 10:02", amount="5"),
        event("z1", "z", "page_view", "2024-02-01 10:00"),  # the data ends weeks later: every window closed
    ])
    assert run_model(engine, "analytics/conversion_funnel", ["step_number", "users", "dropped",
                                                             "conversion_from_previous", "conversion_from_first"],
                     ordered=True, **analytics_context()) == [
        (1, 1, 0, 1.0, 1.0), (2, 1, 1, 1.0, 1.0), (3, 0, 0, 0.0, 0.0)]


MIDNIGHT_EVENTS = [
    # u views in one visit before midnight and carts and buys in the next visit after it
    event("u1", "u", "product_view", "2024-01-01 23:50", session="s1"),
    event("u2", "u", "add_to_cart", "2024-01-02 00:10", session="s2"),
    event("u3", "u", "purchase", "2024-01-02 00:20", session="s2", amount="5"),
    # v's one visit crosses midnight
    event("v1", "v", "product_view", "2024-01-01 23:55", session="s1"),
    event("v2", "v", "add_to_cart", "2024-01-02 00:05", session="s1"),
]


@pytest.mark.parametrize(("scope", "expected"), [
    ("user", [(1, "product_view", 2, 0, 0, 1.0, 1.0, None, None),
              (2, "add_to_cart", 2, 1, 0, 1.0, 1.0, 900.0, 900.0),
              (3, "purchase", 1, 0, 0, 1.0, 1.0, 600.0, 600.0)]),
    # an attempt stays in the visit of its step 1: u's cart in the next visit does not count
    ("visit", [(1, "product_view", 2, 1, 0, 1.0, 1.0, None, None),
               (2, "add_to_cart", 1, 1, 0, 1.0, 1.0, 600.0, 600.0),
               (3, "purchase", 0, 0, 0, None, None, None, None)]),
])
def test_conversion_funnel_attempts_cross_midnight_and_keep_to_one_visit_with_scope_visit(engine, scope, expected):
    inline_table(engine, "fct_events", FCT, MIDNIGHT_EVENTS)  # the 7-day windows are all open at the end
    assert run_model(engine, "analytics/conversion_funnel", ordered=True,
                     **analytics_context(funnel_scope=scope)) == expected


def test_conversion_funnel_breakdown_gives_one_funnel_per_value(engine):
    inline_table(engine, "fct_events", FCT, [
        event("p1", "p", "product_view", DAY + " 10:00"), event("p2", "p", "add_to_cart", DAY + " 10:00:30"),
        event("p3", "p", "purchase", DAY + " 10:01", amount="5"),
        event("q1", "q", "product_view", DAY + " 10:00"),
        event("z1", "z", "page_view", DAY + " 12:00"),
    ])
    inline_table(engine, "dim_users", USERS, [
        ("p", 3, 1, 1, Decimal("5.00"), ts(DAY + " 10:01"), True), ("q", 1, 1, 0, Decimal(0), None, False),
        ("z", 1, 1, 0, Decimal(0), None, False)])
    assert run_model(engine, "analytics/conversion_funnel", ordered=True,
                     **analytics_context(funnel_window_us=HOUR_US, funnel_breakdown="is_purchaser")) == [
        ("false", 1, "product_view", 1, 0, 1, 1.0, 1.0, None, None),
        ("false", 2, "add_to_cart", 0, 0, 0, 0.0, 0.0, None, None),
        ("false", 3, "purchase", 0, 0, 0, None, 0.0, None, None),
        ("true", 1, "product_view", 1, 0, 0, 1.0, 1.0, None, None),
        ("true", 2, "add_to_cart", 1, 0, 0, 1.0, 1.0, 30.0, 30.0),
        ("true", 3, "purchase", 1, 0, 0, 1.0, 1.0, 30.0, 30.0),
    ]


def test_conversion_funnel_of_one_step_counts_who_did_it(engine):
    inline_table(engine, "fct_events", FCT, [event("1", "a", "login", DAY + " 10:00"),
                                             event("2", "a", "login", DAY + " 11:00"),
                                             event("3", "b", "page_view", DAY + " 12:00")])
    assert run_model(engine, "analytics/conversion_funnel", ordered=True, **analytics_context(funnel=["login"])) == [
        (1, "login", 1, 0, 0, 1.0, 1.0, None, None)]


# ---- funnel_any_order (the order-free counts, kept)

def test_funnel_any_order_counts_users_per_step_and_through_every_step(engine):
    inline_table(engine, "fct_events", FCT, [
        event("1", "a", "product_view", DAY + " 10:00"), event("2", "a", "add_to_cart", DAY + " 10:01"),
        event("3", "a", "purchase", DAY + " 10:02", amount="5"),
        event("4", "b", "product_view", DAY + " 10:00"), event("5", "b", "add_to_cart", DAY + " 10:01"),
        event("6", "c", "product_view", DAY + " 10:00"),
        event("7", "d", "purchase", DAY + " 10:00", amount="9"),  # bought without viewing: not through the funnel
        event("8", "e", "page_view", DAY + " 10:00"),
        event("9", "f", "add_to_cart", DAY + " 10:00"), event("10", "f", "product_view", DAY + " 10:05"),  # any order
    ])
    assert run_model(engine, "analytics/funnel_any_order", ordered=True, **analytics_context()) == [
        (1, "product_view", 4, 4, 1.0, 1.0),
        (2, "add_to_cart", 3, 3, 3 / 4, 3 / 4),
        (3, "purchase", 2, 1, 1 / 3, 1 / 4),
    ]


# ---- retention

def test_retention_by_week_leaves_an_incomplete_period_null(engine):
    # Weeks start on Monday 1, 8 and 15 January 2024; the data ends at noon on Monday 15th: the second week is
    # complete since midnight, the third has just begun.
    inline_table(engine, "fct_events", FCT, [
        event("1", "u1", "page_view", "2024-01-01 10:00"),
        event("2", "u1", "login", "2024-01-09 10:00"),
        event("3", "u1", "login", "2024-01-15 10:00"),  # in a week not over yet: not counted
        event("4", "u2", "page_view", "2024-01-07 23:30"),  # Sunday night ...
        event("5", "u2", "page_view", "2024-01-08 00:30"),  # ... and Monday morning: the next week, one hour later
        event("6", "u4", "page_view", "2024-01-02 12:00"),  # never returns
        event("7", "u3", "page_view", "2024-01-10 12:00"),
        event("8", "u3", "page_view", "2024-01-15 12:00"),
    ])
    inline_table(engine, "dim_date", DATES, dates("2024-01-01", "2024-01-15"))
    d = ts("2024-01-01").date()
    assert run_model(engine, "analytics/retention", ordered=True, **analytics_context()) == [
        (d, 0, 3, 3, 1.0), (d, 1, 3, 2, 2 / 3), (d, 2, 3, None, None),
        (ts("2024-01-08").date(), 0, 1, 1, 1.0), (ts("2024-01-08").date(), 1, 1, None, None),
    ]


def test_retention_a_week_ending_one_microsecond_after_the_data_is_incomplete(engine):
    inline_table(engine, "fct_events", FCT, [event("1", "u1", "page_view", "2024-01-01 10:00"),
                                             event("2", "u1", "page_view", "2024-01-14 23:59:59.999999")])
    inline_table(engine, "dim_date", DATES, dates("2024-01-01", "2024-01-14"))
    d = ts("2024-01-01").date()
    assert run_model(engine, "analytics/retention", ordered=True, **analytics_context()) == [
        (d, 0, 1, 1, 1.0), (d, 1, 1, None, None)]


def test_retention_by_day_with_a_start_and_a_return_event(engine):
    inline_table(engine, "fct_events", FCT, [
        event("1", "x", "login", "2024-01-01 09:00"),  # before x's first purchase: not a return
        event("2", "x", "purchase", "2024-01-01 10:00", amount="5"),
        event("3", "x", "login", "2024-01-02 08:00"),
        event("4", "x", "purchase", "2024-01-02 09:00", amount="5"),  # not the return event
        event("5", "y", "purchase", "2024-01-02 23:30", amount="5"),
        event("6", "y", "login", "2024-01-03 00:10"),  # forty minutes later, but the next day: a return, still open
        event("7", "z", "login", "2024-01-03 12:00"),  # never bought: in no cohort
    ])
    inline_table(engine, "dim_date", DATES, dates("2024-01-01", "2024-01-03"))
    context = analytics_context(retention=Retention(period="day", start_event="purchase", return_event="login"))
    day = [ts(f"2024-01-0{i}").date() for i in (1, 2)]
    assert run_model(engine, "analytics/retention", ordered=True, **context) == [
        (day[0], 0, 1, 1, 1.0), (day[0], 1, 1, 1, 1.0), (day[0], 2, 1, None, None),
        (day[1], 0, 1, 1, 1.0), (day[1], 1, 1, None, None),
    ]


# ---- paths

def test_paths_collapse_repeats_keep_the_first_steps_and_sum_to_each_steps_visits(engine):
    inline_table(engine, "fct_events", FCT, [
        # a-s1: page_view page_view product_view product_view add_to_cart purchase (rows out of order)
        event("15", "a", "add_to_cart", DAY + " 10:04", session="s1"),
        event("11", "a", "page_view", DAY + " 10:00", session="s1"),
        event("12", "a", "page_view", DAY + " 10:01", session="s1"),
        event("13", "a", "product_view", DAY + " 10:02", session="s1"),
        event("14", "a", "product_view", DAY + " 10:03", session="s1"),
        event("16", "a", "purchase", DAY + " 10:05", session="s1", amount="5"),
        event("21", "a", "page_view", DAY + " 12:00", session="s2"),
        event("22", "a", "click", DAY + " 12:01", session="s2"),
        event("31", "b", "page_view", DAY + " 10:00", session="s3"),
        event("32", "b", "page_view", DAY + " 10:00", session="s3"),  # a repeat at the same time
        event("41", "b", "page_view", DAY + " 13:00", session="s4"),
        event("42", "b", "product_view", DAY + " 13:01", session="s4"),
        event("43", "b", "page_view", DAY + " 13:02", session="s4"),  # not a consecutive repeat: a step
    ])
    assert run_model(engine, "analytics/paths", ordered=True, **analytics_context(path_steps=3)) == [
        (1, "page_view", "product_view", 2, 2, 2 / 4),
        (1, "page_view", "click", 1, 1, 1 / 4),
        (1, "page_view", "exit", 1, 1, 1 / 4),
        (2, "click", "exit", 1, 1, 1 / 3),
        (2, "product_view", "add_to_cart", 1, 1, 1 / 3),
        (2, "product_view", "page_view", 1, 1, 1 / 3),
        (3, "add_to_cart", "purchase", 1, 1, 1 / 2),  # a-s1's fourth step is the last edge's end
        (3, "page_view", "exit", 1, 1, 1 / 2),
    ]


# ---- cart abandonment

def cart_events(with_amounts: bool) -> list[tuple]:
    def add(event_id, user, when, amount=None):
        return event(event_id, user, "add_to_cart", when, product="p1", amount=amount if with_amounts else None)

    return [
        # a: two adds half an hour apart, a purchase exactly 1 h after the last: converted
        add("a1", "a", "2024-01-01 10:00", "5.00"), add("a2", "a", "2024-01-01 10:30"),
        event("a3", "a", "purchase", "2024-01-01 11:30", product="p1", amount="7"),
        # a again: a new cart; the purchase comes 1 h and 1 s after it: abandoned
        add("a4", "a", "2024-01-01 13:00", "2.00"),
        event("a5", "a", "purchase", "2024-01-01 14:00:01", product="p1", amount="2"),
        # b: a cart opened before midnight, added to exactly 1 h later (still the same cart), then left: abandoned,
        # on the day it opened
        add("b1", "b", "2024-01-01 23:30"), add("b2", "b", "2024-01-02 00:30"),
        # c: opened half an hour before the data ends: open
        add("c1", "c", "2024-01-02 08:30"),
        # d: 1 h and 1 s between two adds: two carts, the first abandoned, the second open
        add("d1", "d", "2024-01-02 07:00"), add("d2", "d", "2024-01-02 08:00:01"),
        # f: an add and a purchase at one time: the add first, so converted
        add("f1", "f", "2024-01-02 06:00"),
        event("f2", "f", "purchase", "2024-01-02 06:00", product="p1", amount="3"),
        # e: the data's last event
        event("e1", "e", "purchase", "2024-01-02 09:00", product="p9", amount="1"),
    ]


@pytest.mark.parametrize(("with_amounts", "values"), [(True, [Decimal("2.00"), Decimal("0.00"), Decimal("2.00")]),
                                                      (False, [None, None, None])])
def test_cart_abandonment_per_day_and_overall_leaves_open_carts_out_of_the_rate(engine, with_amounts, values):
    inline_table(engine, "fct_events", FCT, cart_events(with_amounts))
    inline_table(engine, "dim_date", DATES, dates("2024-01-01", "2024-01-02"))
    context = analytics_context(cart_window_us=HOUR_US)
    assert run_model(engine, "analytics/cart_abandonment_daily", ordered=True, **context) == [
        (ts("2024-01-01").date(), 3, 1, 2, 0, 2 / 3, values[0]),
        (ts("2024-01-02").date(), 4, 1, 1, 2, 1 / 2, values[1]),
    ]
    engine.create_view("cart_abandonment_daily", render("analytics/cart_abandonment_daily", engine, **context))
    assert run_model(engine, "analytics/cart_abandonment", **context) == [(7, 2, 3, 2, 3 / 5, values[2])]


# ---- top_products

PRODUCTS = [("product_key", "string"), ("product_id", "string"), ("views", "bigint"), ("cart_adds", "bigint"),
            ("purchases", "bigint"), ("revenue", "decimal(18,2)"), ("unique_users", "bigint"),
            ("is_not_applicable", "boolean")]
P1 = ("p1", 2, 2, 1, Decimal("10.00"), 2, 2, 1, 1 / 2, 1 / 2, 1 / 2)
P2 = ("p2", 1, 0, 2, Decimal("40.00"), 1, 0, 2, 0.0, None, 0.0)
P3 = ("p3", 3, 1, 0, Decimal("0.00"), 3, 1, 0, 1 / 3, 0.0, 0.0)


@pytest.mark.parametrize(("rank_by", "top"), [("revenue", [P2, P1]), ("views", [P3, P1]), ("purchases", [P2, P1])])
def test_top_products_rank_and_user_rates_within_zero_and_one(engine, rank_by, top):
    def ev(event_id, user, event_type, product, amount=None):
        return event(event_id, user, event_type, DAY + " 10:00", product=product, amount=amount)

    inline_table(engine, "fct_events", FCT, [
        ev("1", "u1", "product_view", "p1"), ev("2", "u2", "product_view", "p1"), ev("3", "u1", "add_to_cart", "p1"),
        ev("4", "u1", "purchase", "p1", "10"), ev("5", "u3", "add_to_cart", "p1"),  # u3 carts without viewing
        ev("6", "u1", "product_view", "p2"), ev("7", "u2", "purchase", "p2", "20"),  # bought, never viewed
        ev("8", "u3", "purchase", "p2", "20"),
        ev("9", "u1", "product_view", "p3"), ev("10", "u2", "product_view", "p3"), ev("11", "u3", "product_view", "p3"),
        ev("12", "u2", "add_to_cart", "p3"),
        ev("13", "u1", "page_view", ""),
    ])
    inline_table(engine, "dim_products", PRODUCTS, [
        ("", None, 0, 0, 0, Decimal(0), 0, True),
        ("p1", "p1", 2, 2, 1, Decimal("10.00"), 3, False), ("p2", "p2", 1, 0, 2, Decimal("40.00"), 3, False),
        ("p3", "p3", 3, 1, 0, Decimal(0), 3, False)])
    # compared in the query's order: a rank that ran the other way, or rows out of rank order, fail here
    assert run_model(engine, "analytics/top_products", ordered=True,
                     **analytics_context(top_n=2, rank_by=rank_by)) == [(i,) + p for i, p in enumerate(top, start=1)]


# ---- user_segments

SEGMENT_USERS = [(f"u{i:02d}", events, 2, 1 if events == 20 else 0, Decimal("10.00") if events == 20 else Decimal(0),
                  None, events == 20) for i, events in enumerate([20, 20, 15, 12, 10, 9, 8, 7, 6, 5])]
ONE_VISIT = [("once", 40, 1, 0, Decimal(0), None, False)]


@pytest.mark.parametrize(("segments", "expected"), [
    # the top 10% (ties at the boundary go together), the next 40%, the rest
    (Segments(), [("high", 2, 2 / 11, 20, 20, 20.0, 2.0, 1.0, 10.0, Decimal("20.00"), 1.0),
                  ("medium", 3, 3 / 11, 10, 15, 37 / 3, 2.0, 0.0, 0.0, Decimal("0.00"), 0.0),
                  ("low", 5, 5 / 11, 5, 9, 7.0, 2.0, 0.0, 0.0, Decimal("0.00"), 0.0),
                  ("one_time", 1, 1 / 11, 40, 40, 40.0, 1.0, 0.0, 0.0, Decimal("0.00"), 0.0)]),
    (Segments(thresholds="fixed", high_min_events=15, medium_min_events=9),
     [("high", 3, 3 / 11, 15, 20, 55 / 3, 2.0, 2 / 3, 20 / 3, Decimal("20.00"), 2 / 3),
      ("medium", 3, 3 / 11, 9, 12, 31 / 3, 2.0, 0.0, 0.0, Decimal("0.00"), 0.0),
      ("low", 4, 4 / 11, 5, 8, 6.5, 2.0, 0.0, 0.0, Decimal("0.00"), 0.0),
      ("one_time", 1, 1 / 11, 40, 40, 40.0, 1.0, 0.0, 0.0, Decimal("0.00"), 0.0)]),
])
def test_user_segments_by_quantiles_or_fixed_thresholds(engine, segments, expected):
    inline_table(engine, "dim_users", USERS, SEGMENT_USERS + ONE_VISIT)
    assert run_model(engine, "analytics/user_segments", ordered=True,
                     **analytics_context(segments=segments)) == expected


# ---- RFM

def test_rfm_scores_give_equal_values_one_score(engine):
    reference = "2024-02-29 12:00"
    users = [  # recency days, frequency, monetary
        ("u1", "2024-02-29 06:00", 1, "10"), ("u2", "2024-02-29 06:00", 1, "10"), ("u3", "2024-02-29 06:00", 1, "20"),
        ("u4", "2024-02-29 06:00", 1, "30"), ("u5", "2024-02-24 12:00", 2, "30"), ("u6", "2024-02-19 11:00", 3, "40")]
    inline_table(engine, "dim_users", USERS, [(key, f, 1, f, Decimal(m), ts(last), True) for key, last, f, m in users]
                 + [("x", 1, 1, 0, Decimal(0), None, False)])
    inline_table(engine, "fct_events", FCT, [event("x", "x", "page_view", reference)])
    # with n users, w worse and t equal: score = ceil(5 (w + t/2) / n); u1 and u2 are alike in everything
    assert run_model(engine, "analytics/rfm_scores", ordered=True, **analytics_context()) == [
        ("u6", 10, 3, Decimal("40.00"), 1, 5, 5, "at_risk"),
        ("u4", 0, 1, Decimal("30.00"), 4, 2, 4, "promising"),
        ("u5", 5, 2, Decimal("30.00"), 2, 4, 4, "at_risk"),
        ("u3", 0, 1, Decimal("20.00"), 4, 2, 3, "promising"),
        ("u1", 0, 1, Decimal("10.00"), 4, 2, 1, "promising"),
        ("u2", 0, 1, Decimal("10.00"), 4, 2, 1, "promising"),
    ]


def test_rfm_scores_of_distinct_values_are_quintiles_with_five_the_best(engine):
    # user i bought i times, last i - 1 days before the reference, spending i * 10
    inline_table(engine, "dim_users", USERS, [(f"u{i:02d}", i, i, i, Decimal(i * 10), ts(f"2024-02-{29 - i:02d} 12:00"),
                                               True) for i in range(1, 11)])
    inline_table(engine, "fct_events", FCT, [event("x", "u01", "page_view", "2024-02-28 12:00")])
    rows = run_model(engine, "analytics/rfm_scores", ["user_key", "recency_score", "frequency_score",
                                                      "monetary_score"], **analytics_context())
    assert rows == [(f"u{i:02d}", 6 - (i + 1) // 2, (i + 1) // 2, (i + 1) // 2) for i in range(1, 11)]


def test_rfm_segments_record_the_observation_window(engine):
    scores = [("user_key", "string"), ("recency_days", "bigint"), ("frequency", "bigint"),
              ("monetary", "decimal(18,2)"), ("segment", "string")]
    inline_table(engine, "rfm_scores", scores, [("a", 0, 3, Decimal("30.00"), "champions"),
                                                ("b", 4, 1, Decimal("5.00"), "hibernating"),
                                                ("c", 2, 1, Decimal("6.00"), "hibernating")])
    inline_table(engine, "fct_events", FCT, [event("1", "a", "page_view", "2024-01-01 00:00"),
                                             event("2", "b", "page_view", "2024-01-03 12:00")])
    first, last = ts("2024-01-01 00:00"), ts("2024-01-03 12:00")
    assert run_model(engine, "analytics/rfm_segments", ordered=True, **analytics_context()) == [
        ("champions", 1, 1 / 3, 0.0, 3.0, Decimal("30.00"), 30.0, first, last, 2.5),
        ("hibernating", 2, 2 / 3, 3.0, 1.0, Decimal("11.00"), 5.5, first, last, 2.5),
    ]


# ---- daily activity and weekday / weekend

def test_daily_activity_marks_the_days_the_data_covers_in_part(engine):
    # Friday 5 January from 18:00, all of Saturday 6, Sunday 7 until 06:00
    inline_table(engine, "dim_date", DATES, dates("2024-01-05", "2024-01-07"))
    inline_table(engine, "fct_events", FCT, [
        event("1", "a", "product_view", "2024-01-05 18:00", product="p1"),
        event("2", "a", "purchase", "2024-01-05 18:01", product="p1", amount="10.00"),
        event("3", "b", "page_view", "2024-01-05 19:00"),
        event("4", "a", "page_view", "2024-01-07 06:00", session="t"),
    ])
    assert run_model(engine, "analytics/daily_activity", ordered=True, **analytics_context()) == [
        (ts("2024-01-05").date(), "Friday", False, True, 0.25, 2, 3, 1.5, 2, 1, Decimal("10.00")),
        (ts("2024-01-06").date(), "Saturday", True, False, 1.0, 0, 0, None, 0, 0, Decimal("0.00")),
        (ts("2024-01-07").date(), "Sunday", True, True, 0.25, 1, 1, 1.0, 1, 0, Decimal("0.00")),
    ]


def test_daily_activity_counts_a_visit_across_midnight_on_both_days_whatever_the_rows_order(engine):
    # Friday 5 January from 22:00 to Saturday 6 at 12:00; a's visit runs from 22:00 over midnight to 00:10
    inline_table(engine, "dim_date", DATES, dates("2024-01-05", "2024-01-06"))
    inline_table(engine, "fct_events", FCT, [
        event("3", "a", "page_view", "2024-01-06 00:10"),  # rows not in time order
        event("1", "a", "product_view", "2024-01-05 22:00", product="p1"),
        event("4", "b", "page_view", "2024-01-06 12:00", session="t"),
        event("2", "a", "purchase", "2024-01-05 23:50", product="p1", amount="7.50"),
    ])
    assert run_model(engine, "analytics/daily_activity", ordered=True, **analytics_context()) == [
        (ts("2024-01-05").date(), "Friday", False, True, 2 / 24, 1, 2, 2.0, 1, 1, Decimal("7.50")),
        # a's visit counts on the day it ends too; b's alone is the other one
        (ts("2024-01-06").date(), "Saturday", True, True, 12 / 24, 2, 2, 1.0, 2, 0, Decimal("0.00")),
    ]


def test_day_type_behavior_averages_over_full_days_only(engine):
    # Friday 5 (from 10:00) and Tuesday 9 (to 01:00) are partial; Saturday 6, Sunday 7 and Monday 8 are full.
    inline_table(engine, "dim_date", DATES, dates("2024-01-05", "2024-01-09"))
    inline_table(engine, "fct_events", FCT, [
        event("1", "a", "product_view", "2024-01-05 10:00", product="p1"),
        event("2", "a", "purchase", "2024-01-05 10:01", product="p1", amount="10.00"),
        event("3", "b", "page_view", "2024-01-06 09:00"),
        event("4", "a", "page_view", "2024-01-08 12:00", session="t"),
        event("5", "a", "purchase", "2024-01-08 12:30", session="t", product="p1", amount="4.00"),
        event("6", "b", "page_view", "2024-01-08 13:00", session="t"),
        event("7", "c", "page_view", "2024-01-09 01:00"),
    ])
    inline_table(engine, "dim_sessions", [("session_key", "string"), ("start_date_key", "integer"),
                                          ("has_purchase", "boolean"), ("duration_seconds", "double")],
                 [("a-s", 20240105, True, 60.0), ("b-s", 20240106, False, 0.0), ("a-t", 20240108, True, 1800.0),
                  ("b-t", 20240108, False, 0.0), ("c-s", 20240109, False, 0.0)])
    assert run_model(engine, "analytics/day_type_behavior", ordered=True, **analytics_context()) == [
        ("weekday", 1, 2, 3, 3.0, 2.0, 2, 2.0, 1, Decimal("4.00"), 4.0, 0.5, 900.0),
        ("weekend", 2, 0, 1, 0.5, 0.5, 1, 0.5, 0, Decimal("0.00"), None, 0.0, 0.0),
    ]


# ---- purchases without prices: orders and purchasers count them; money sums the known amounts, NULL when none

GOLD_CONTEXT = dict(timeout_us=30 * 60 * 1_000_000, no_product_key="",
                    product_event_types=["product_view", "add_to_cart", "purchase"], purchase_event_types=["purchase"],
                    funnel=["product_view", "add_to_cart", "purchase"],
                    known_event_types=["add_to_cart", "product_view", "purchase"],
                    product_view_event_types=["product_view"], cart_add_event_types=["add_to_cart"])


def silver(event_id: str, user: str, when: str, event_type: str, product: str | None = None,
           amount: str | None = None) -> tuple:
    return (event_id, user, "s", ts(when), event_type, product, None if amount is None else Decimal(amount),
            "purchase" if event_type == "purchase" else None, "shop", "a.csv", "b1", ts("2026-01-02 03:04:05"),
            ts("2026-01-02 03:04:05").date())


def test_gold_sums_known_amounts_and_is_null_where_purchases_carry_none(engine):
    from clickstream.schema import SILVER

    inline_table(engine, "silver_events", SILVER, [
        silver("a1", "a", "2024-01-01 10:00", "purchase", "p1", "10.00"),  # a: one priced, one not
        silver("a2", "a", "2024-01-01 10:05", "purchase", "p2"),
        silver("b1", "b", "2024-01-01 10:00", "purchase", "p2"),  # b: bought, no price known
        silver("c1", "c", "2024-01-01 10:00", "product_view", "p3"),  # c: never bought
    ])
    for model in ["int_events_sessionized", "fct_events"]:
        engine.materialize(model, render(f"gold/{model}", engine, **GOLD_CONTEXT))
    assert run_model(engine, "gold/dim_users", ["user_key", "total_purchases", "total_spent", "is_purchaser"],
                     **GOLD_CONTEXT) == [
        ("a", 2, Decimal("10.00"), True), ("b", 1, None, True), ("c", 0, Decimal("0.00"), False)]
    assert run_model(engine, "gold/dim_sessions", ["user_key", "purchases", "revenue", "has_purchase"],
                     **GOLD_CONTEXT) == [
        ("a", 2, Decimal("10.00"), True), ("b", 1, None, True), ("c", 0, Decimal("0.00"), False)]
    assert run_model(engine, "gold/dim_products", ["product_key", "purchases", "revenue"], **GOLD_CONTEXT) == [
        ("", 0, Decimal("0.00")), ("p1", 1, Decimal("10.00")), ("p2", 2, None), ("p3", 0, Decimal("0.00"))]


PRICED = [event("1", "a", "purchase", "2024-01-01 10:00", amount="10.10"),
          event("2", "a", "purchase", "2024-01-02 10:00", amount="0.20"),
          event("3", "b", "purchase", "2024-01-01 10:00", amount="5.00")]


@pytest.mark.parametrize(("amounts", "expected"), [
    # revenue, orders, orders without amount, users, purchasers, repeat, repeat rate, AOV, per user, per purchaser
    (["10.10", "0.20", "5.00"], (Decimal("15.30"), 3, 0, 3, 2, 1, 0.5, 15.30 / 3, 15.30 / 3, 15.30 / 2)),
    (["10.00", None, None], (Decimal("10.00"), 3, 2, 3, 2, 1, 0.5, 10.0, 10.0 / 3, 5.0)),  # AOV over priced orders
    ([None, None, None], (None, 3, 3, 3, 2, 1, 0.5, None, None, None)),  # a feed without prices
    ([], (Decimal("0.00"), 0, 0, 3, 0, 0, None, None, 0.0, None)),  # no purchase at all: nothing was spent
])
def test_revenue_metrics_count_every_order_and_sum_the_known_amounts(engine, amounts, expected):
    purchases = [event(e[0], e[1], "purchase", e[7].isoformat(sep=" "), amount=amount)
                 for e, amount in zip(PRICED, amounts)]
    inline_table(engine, "fct_events", FCT, purchases + [event("4", "c", "page_view", "2024-01-01 10:00")])
    inline_table(engine, "dim_users", USERS, [("a", 2, 1, 2, None, None, True), ("b", 1, 1, 1, None, None, True),
                                              ("c", 1, 1, 0, Decimal(0), None, False)])
    assert run_model(engine, "analytics/revenue_metrics", **analytics_context()) == [expected]


def test_rfm_scores_monetary_among_known_spend_and_none_where_unknown(engine):
    users = [("u1", "2024-02-29 06:00", 3, "10"), ("u2", "2024-02-29 06:00", 3, None),
             ("u3", "2024-02-24 12:00", 1, "30")]
    inline_table(engine, "dim_users", USERS, [(key, f, 1, f, None if m is None else Decimal(m), ts(last), True)
                                              for key, last, f, m in users])
    inline_table(engine, "fct_events", FCT, [event("x", "u1", "page_view", "2024-02-29 12:00")])
    # two users have a known spend: scores ceil(5 (0 + 1/2) / 2) = 2 and ceil(5 (1 + 1/2) / 2) = 4
    assert run_model(engine, "analytics/rfm_scores", ordered=True, **analytics_context()) == [
        ("u1", 0, 3, Decimal("10.00"), 4, 4, 2, "loyal"),
        ("u2", 0, 3, None, 4, 4, None, "champions"),  # decided on recency and frequency
        ("u3", 5, 1, Decimal("30.00"), 1, 1, 4, "hibernating"),
    ]


def test_daily_activity_and_day_types_leave_revenue_unknown_where_purchases_carry_no_amount(engine):
    # the day-type test's events, no purchase priced: weekday revenue unknown, the weekend bought nothing (0)
    inline_table(engine, "dim_date", DATES, dates("2024-01-05", "2024-01-09"))
    inline_table(engine, "fct_events", FCT, [
        event("1", "a", "product_view", "2024-01-05 10:00", product="p1"),
        event("2", "a", "purchase", "2024-01-05 10:01", product="p1"),
        event("3", "b", "page_view", "2024-01-06 09:00"),
        event("5", "a", "purchase", "2024-01-08 12:30", session="t", product="p1"),
        event("7", "c", "page_view", "2024-01-09 01:00"),
    ])
    inline_table(engine, "dim_sessions", [("session_key", "string"), ("start_date_key", "integer"),
                                          ("has_purchase", "boolean"), ("duration_seconds", "double")],
                 [("a-s", 20240105, True, 60.0), ("b-s", 20240106, False, 0.0), ("a-t", 20240108, True, 0.0),
                  ("c-s", 20240109, False, 0.0)])
    assert run_model(engine, "analytics/daily_activity", ["activity_date", "purchases", "revenue"],
                     ordered=True, **analytics_context()) == [
        (ts("2024-01-05").date(), 1, None), (ts("2024-01-06").date(), 0, Decimal("0.00")),
        (ts("2024-01-07").date(), 0, Decimal("0.00")), (ts("2024-01-08").date(), 1, None),
        (ts("2024-01-09").date(), 0, Decimal("0.00"))]
    assert run_model(engine, "analytics/day_type_behavior", ["day_type", "purchases", "revenue", "revenue_per_day"],
                     ordered=True, **analytics_context()) == [("weekday", 1, None, None),
                                                              ("weekend", 0, Decimal("0.00"), None)]


def test_top_products_rank_an_unknown_revenue_as_none_and_segments_average_known_spend(engine):
    inline_table(engine, "fct_events", FCT, [
        event("1", "u1", "product_view", DAY + " 10:00", product="p1"),
        event("2", "u1", "purchase", DAY + " 10:01", product="p1", amount="10"),
        event("3", "u2", "purchase", DAY + " 10:02", product="p2"),
        event("4", "u3", "purchase", DAY + " 10:03", product="p2"),
        event("5", "u3", "product_view", DAY + " 10:04", product="p3"),
    ])
    inline_table(engine, "dim_products", PRODUCTS, [
        ("", None, 0, 0, 0, Decimal(0), 0, True), ("p1", "p1", 1, 0, 1, Decimal("10.00"), 1, False),
        ("p2", "p2", 0, 0, 2, None, 2, False), ("p3", "p3", 1, 0, 0, Decimal(0), 1, False)])
    assert run_model(engine, "analytics/top_products", ["product_rank", "product_id", "units", "revenue"],
                     ordered=True, **analytics_context(top_n=3, rank_by="revenue")) == [
        (1, "p1", 1, Decimal("10.00")), (2, "p2", 2, None), (3, "p3", 0, Decimal("0.00"))]
    # fixed thresholds: u1 (priced) and u2 (not) are high; u3 (not) medium
    inline_table(engine, "dim_users", USERS, [("u1", 20, 2, 1, Decimal("10.00"), None, True),
                                              ("u2", 20, 2, 1, None, None, True),
                                              ("u3", 10, 2, 1, None, None, True)])
    assert run_model(engine, "analytics/user_segments", ["segment", "users", "avg_spent", "total_spent"],
                     ordered=True, **analytics_context(segments=Segments(thresholds="fixed", high_min_events=15,
                                                                         medium_min_events=9))) == [
        ("high", 2, 10.0, Decimal("10.00")), ("medium", 1, None, None)]


# ---- means of durations: exact, so the same bits whatever order the rows come in

# 0.1 s seven times, then a short and two long ones: added as listed, in reverse or sorted either way, doubles end
# in other last digits than the exact mean, rounded once
DURATIONS_US = [100_000] * 7 + [300_009, 3_000_000_000_004, 3_000_000_000_007]
EXACT_MEAN_SECONDS = float(Fraction(sum(DURATIONS_US), len(DURATIONS_US) * 1_000_000))


@pytest.mark.parametrize("order", ["as listed", "reversed"])
def test_day_type_behavior_averages_durations_exactly_in_any_row_order(engine, order):
    # Friday 5 January 10:00 to Monday 8 January 12:00: Saturday 6 and Sunday 7 are the full days
    inline_table(engine, "dim_date", DATES, dates("2024-01-05", "2024-01-08"))
    inline_table(engine, "fct_events", FCT, [event("1", "a", "page_view", "2024-01-05 10:00"),
                                             event("2", "a", "page_view", "2024-01-08 12:00", session="t")])
    sessions = [(f"s{i}", 20240106, False, us / 1e6) for i, us in enumerate(DURATIONS_US)]
    inline_table(engine, "dim_sessions", [("session_key", "string"), ("start_date_key", "integer"),
                                          ("has_purchase", "boolean"), ("duration_seconds", "double")],
                 sessions if order == "as listed" else sessions[::-1])
    rows = run_model(engine, "analytics/day_type_behavior", ["day_type", "sessions", "avg_session_seconds"],
                     ordered=True, **analytics_context())
    assert rows == [("weekday", 0, None), ("weekend", 10, EXACT_MEAN_SECONDS)]  # 600000.100002
    assert struct.pack("<d", rows[1][2]) == struct.pack("<d", EXACT_MEAN_SECONDS)


@pytest.mark.parametrize("order", ["as listed", "reversed"])
def test_conversion_funnel_mean_time_is_exact_in_any_row_order(engine, order):
    # ten users view a product at 10:00 and add it to the cart DURATIONS_US later; the data ends weeks later
    start = ts(DAY + " 10:00")
    events = [event("z", "z", "page_view", "2024-03-01 10:00")]
    for i, us in enumerate(DURATIONS_US):
        events += [event(f"{i}v", f"u{i}", "product_view", start.isoformat()),
                   event(f"{i}c", f"u{i}", "add_to_cart", (start + dt.timedelta(microseconds=us)).isoformat())]
    inline_table(engine, "fct_events", FCT, events if order == "as listed" else events[::-1])
    rows = run_model(engine, "analytics/conversion_funnel", ["step_number", "users", "mean_seconds_from_previous"],
                     ordered=True, **analytics_context(funnel_window_us=10**13))
    assert rows == [(1, 10, None), (2, 10, EXACT_MEAN_SECONDS), (3, 0, None)]
    assert struct.pack("<d", rows[1][2]) == struct.pack("<d", EXACT_MEAN_SECONDS)
