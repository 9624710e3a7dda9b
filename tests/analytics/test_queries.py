"""Analytics queries on small inline gold tables, compared as whole tables."""
from __future__ import annotations

from decimal import Decimal

import pytest
from helpers import inline_table, run_model, ts

from clickstream.config import Segments

FCT = [("event_id", "string"), ("user_key", "string"), ("session_key", "string"), ("product_key", "string"),
       ("event_type_key", "string"), ("date_key", "integer"), ("time_key", "integer"), ("event_ts", "timestamp"),
       ("amount", "decimal(18,2)"), ("outcome", "string"), ("is_purchase", "boolean")]
USERS = [("user_key", "string"), ("total_events", "bigint"), ("total_sessions", "bigint"),
         ("total_purchases", "bigint"), ("total_spent", "decimal(18,2)"), ("last_purchase_ts", "timestamp"),
         ("is_purchaser", "boolean")]
CONTEXT = dict(no_product_key="", funnel=["product_view", "add_to_cart", "purchase"], top_n=3, path_length=3,
               segments=Segments(high_min_events=5, medium_min_events=3), incremental=False)


def event(event_id, user, event_type, when, session="s", product="", amount=None):
    day = ts(when)
    return (event_id, user, f"{user}-{session}", product, event_type, int(day.strftime("%Y%m%d")),
            day.hour * 100 + day.minute, day, None if amount is None else Decimal(amount),
            "purchase" if event_type == "purchase" else None, event_type == "purchase")


def test_conversion_funnel_counts_users_per_step_and_through_every_step(duck):
    inline_table(duck, "fct_events", FCT, [
        event("1", "a", "product_view", "2024-01-01 10:00"), event("2", "a", "add_to_cart", "2024-01-01 10:01"),
        event("3", "a", "purchase", "2024-01-01 10:02", amount="5"),
        event("4", "b", "product_view", "2024-01-01 10:00"), event("5", "b", "add_to_cart", "2024-01-01 10:01"),
        event("6", "c", "product_view", "2024-01-01 10:00"),
        event("7", "d", "purchase", "2024-01-01 10:00", amount="9"),  # bought without viewing: not through the funnel
        event("8", "e", "page_view", "2024-01-01 10:00"),
    ])
    assert run_model(duck, "analytics/conversion_funnel", **CONTEXT) == [
        (1, "product_view", 3, 3, 1.0, 1.0),
        (2, "add_to_cart", 2, 2, 2 / 3, 2 / 3),
        (3, "purchase", 2, 1, 1 / 2, 1 / 3),
    ]


def test_revenue_metrics(duck):
    inline_table(duck, "fct_events", FCT, [
        event("1", "a", "purchase", "2024-01-01 10:00", amount="10.10"),
        event("2", "a", "purchase", "2024-01-02 10:00", amount="0.20"),
        event("3", "b", "purchase", "2024-01-01 10:00", amount="5.00"),
        event("4", "c", "page_view", "2024-01-01 10:00"),
    ])
    inline_table(duck, "dim_users", USERS, [("a", 2, 2, 2, Decimal("10.30"), None, True),
                                            ("b", 1, 1, 1, Decimal("5.00"), None, True),
                                            ("c", 1, 1, 0, Decimal("0"), None, False)])
    assert run_model(duck, "analytics/revenue_metrics", **CONTEXT) == [
        (Decimal("15.30"), 3, 3, 2, 1, 0.5, 15.30 / 3, 15.30 / 3, 15.30 / 2),
    ]


def test_user_segments_by_activity(duck):
    inline_table(duck, "dim_users", USERS, [
        ("one", 4, 1, 0, Decimal("0"), None, False),       # one session: one_time, whatever its events
        ("low", 2, 2, 1, Decimal("3.00"), None, True),
        ("mid", 3, 2, 0, Decimal("0"), None, False),      # exactly medium_min_events
        ("hi1", 5, 3, 2, Decimal("7.00"), None, True),     # exactly high_min_events
        ("hi2", 9, 4, 0, Decimal("0"), None, False),
    ])
    rows = run_model(duck, "analytics/user_segments", ["segment", "users", "avg_events", "total_spent",
                                                       "purchaser_rate"], **CONTEXT)
    assert rows == [("high", 2, 7.0, Decimal("7.00"), 0.5), ("low", 1, 2.0, Decimal("3.00"), 1.0),
                    ("medium", 1, 3.0, Decimal("0.00"), 0.0), ("one_time", 1, 4.0, Decimal("0.00"), 0.0)]


def rfm_users(n):
    """n purchasers: user i bought i times, last i - 1 days before the reference, spending i * 10."""
    return [(f"u{i:02d}", i, i, i, Decimal(i * 10), ts(f"2024-02-{29 - i:02d} 12:00"), True) for i in range(1, n + 1)]


def test_rfm_scores_are_quintiles_with_five_the_best(duck):
    inline_table(duck, "dim_users", USERS, rfm_users(10))
    inline_table(duck, "fct_events", FCT, [event("x", "u01", "page_view", "2024-02-28 12:00")])
    rows = run_model(duck, "analytics/rfm_scores", ["user_key", "recency_days", "frequency", "monetary",
                                                    "recency_score", "frequency_score", "monetary_score", "segment"],
                     **CONTEXT)
    expected = []
    for i in range(1, 11):
        f_score = (i + 1) // 2          # 1,1,2,2,...,5,5: more purchases, higher score
        r_score = 6 - f_score            # bought longer ago -> lower recency score
        expected.append((f"u{i:02d}", i - 1, i, Decimal(i * 10), r_score, f_score, f_score))
    labels = {(5, 1): "promising", (4, 2): "promising", (3, 3): "loyal", (2, 4): "at_risk", (1, 5): "at_risk"}
    assert rows == [e + (labels[(e[4], e[5])],) for e in expected]


@pytest.mark.parametrize(
    ("recency", "frequency", "monetary", "segment"),
    [(5, 5, 5, "champions"), (4, 4, 4, "champions"), (5, 5, 3, "loyal"), (3, 3, 1, "loyal"),
     (4, 2, 5, "promising"), (3, 2, 5, "needs_attention"), (2, 3, 5, "at_risk"), (1, 1, 1, "hibernating"),
     (2, 2, 5, "hibernating")],
)
def test_rfm_segment_boundaries(duck, recency, frequency, monetary, segment):
    # Five users per score level make ntile hand out each score once per level: choose the user's rank.
    users = []
    for i in range(1, 6):
        users.append((f"u{i}", i, i, i, Decimal(i), ts("2024-01-01 00:00"), True))
    inline_table(duck, "dim_users", USERS, users)
    inline_table(duck, "fct_events", FCT, [event("x", "u1", "page_view", "2024-01-01 00:00")])
    from clickstream.sql import render

    sql = render("analytics/rfm_scores", duck, **CONTEXT)
    final_case = sql[sql.index("case"):sql.index("end as segment") + 3]
    _, rows = duck.fetch(f"select {final_case} from (select {recency} as recency_score, {frequency} as "
                         f"frequency_score, {monetary} as monetary_score) s")
    assert rows == [(segment,)]


def test_top_products_ranks_by_views_and_limits_to_top_n(duck):
    products = [("product_key", "string"), ("product_id", "string"), ("views", "bigint"), ("cart_adds", "bigint"),
                ("purchases", "bigint"), ("revenue", "decimal(18,2)"), ("unique_users", "bigint"),
                ("is_not_applicable", "boolean")]
    inline_table(duck, "dim_products", products, [
        ("", None, 0, 0, 0, Decimal(0), 0, True),
        ("p1", "p1", 10, 5, 1, Decimal("9.99"), 7, False),
        ("p2", "p2", 10, 0, 2, Decimal("5.00"), 3, False),  # same views: more purchases ranks first
        ("p3", "p3", 4, 2, 0, Decimal(0), 2, False),
        ("p4", "p4", 1, 0, 0, Decimal(0), 1, False),
    ])
    assert run_model(duck, "analytics/top_products", ["view_rank", "product_id", "view_to_cart_rate",
                                                      "cart_to_purchase_rate"], **CONTEXT) == [
        (1, "p2", 0.0, None), (2, "p1", 0.5, 0.2), (3, "p3", 0.5, 0.0)]


def test_purchase_paths_count_the_steps_before_each_purchase_in_a_visit(duck):
    inline_table(duck, "fct_events", FCT, [
        event("1", "a", "product_view", "2024-01-01 10:00"), event("2", "a", "add_to_cart", "2024-01-01 10:01"),
        event("3", "a", "purchase", "2024-01-01 10:02", amount="1"),
        event("4", "b", "product_view", "2024-01-01 10:00"), event("5", "b", "add_to_cart", "2024-01-01 10:01"),
        event("6", "b", "purchase", "2024-01-01 10:02", amount="1"),
        event("7", "c", "purchase", "2024-01-01 10:00", amount="1"),
        event("8", "d", "product_view", "2024-01-01 10:00"), event("9", "d", "add_to_cart", "2024-01-01 10:01"),
    ])
    assert run_model(duck, "analytics/purchase_paths", **CONTEXT) == [
        (1, "product_view > add_to_cart > purchase", 2, 2 / 3), (2, "purchase", 1, 1 / 3)]


def test_user_journey_orders_each_users_events_with_the_previous_one(duck):
    inline_table(duck, "fct_events", FCT, [
        event("2", "a", "add_to_cart", "2024-01-01 10:01", product="p1"),
        event("1", "a", "product_view", "2024-01-01 10:00", product="p1"),
        event("3", "b", "page_view", "2024-01-02 10:00"),
    ])
    assert run_model(duck, "analytics/user_journey", ["user_key", "event_number", "event_type", "product_id",
                                                      "previous_event_type", "seconds_since_previous"],
                     **CONTEXT) == [
        ("a", 1, "product_view", "p1", None, None), ("a", 2, "add_to_cart", "p1", "product_view", 60.0),
        ("b", 1, "page_view", None, None, None)]


def test_user_journey_for_an_incremental_build_numbers_each_users_rows_from_the_first_new_event_on(duck):
    inline_table(duck, "fct_events", FCT, [
        event("1", "a", "page_view", "2024-01-01 10:00"),
        event("3", "a", "product_view", "2024-01-01 10:05", product="p1"),
        event("2", "a", "page_view", "2024-01-01 10:05"),  # the same time: after "2" comes "3"
        event("5", "a", "purchase", "2024-01-01 10:30", product="p1", amount=9.5),
        event("4", "a", "add_to_cart", "2024-01-01 10:20", product="p1"),  # a's first new event
        event("6", "b", "page_view", "2024-01-02 09:00"),  # b is new
        event("7", "c", "page_view", "2024-01-02 09:00"),  # c has nothing new
    ])
    inline_table(duck, "scope_users", [("scope_key", "string"), ("first_new_ts", "timestamp")],
                 [("a", ts("2024-01-01 10:20")), ("b", ts("2024-01-02 09:00"))])
    assert run_model(duck, "analytics/user_journey", ["user_key", "event_number", "event_type",
                                                      "previous_event_type", "seconds_since_previous"],
                     **{**CONTEXT, "incremental": True}) == [
        ("a", 4, "add_to_cart", "product_view", 900.0), ("a", 5, "purchase", "add_to_cart", 600.0),
        ("b", 1, "page_view", None, None)]


def test_day_type_behavior_compares_weekdays_with_weekends_per_calendar_day(duck):
    # Friday 5 and Monday 8 January 2024 are weekdays, Saturday 6 a weekend day; Monday has no activity.
    inline_table(duck, "dim_date", [("date_key", "integer"), ("is_weekend", "boolean")],
                 [(20240105, False), (20240106, True), (20240108, False)])
    inline_table(duck, "fct_events", FCT, [
        event("1", "a", "product_view", "2024-01-05 10:00", product="p1"),
        event("2", "a", "purchase", "2024-01-05 10:01", product="p1", amount="10.00"),
        event("3", "b", "page_view", "2024-01-05 11:00"),
        event("4", "a", "page_view", "2024-01-06 09:00", session="t"),
    ])
    inline_table(duck, "dim_sessions", [("session_key", "string"), ("start_date_key", "integer"),
                                        ("has_purchase", "boolean"), ("duration_seconds", "double")],
                 [("a-s", 20240105, True, 60.0), ("b-s", 20240105, False, 0.0), ("a-t", 20240106, False, 0.0)])
    # user a's two Friday events make one active user that day: 2 user-days over 2 weekdays
    assert run_model(duck, "analytics/day_type_behavior", **CONTEXT) == [
        ("weekday", 2, 3, 1.5, 1.0, 2, 1.0, 1, Decimal("10.00"), 5.0, 0.5, 30.0),
        ("weekend", 1, 1, 1.0, 1.0, 1, 1.0, 0, Decimal("0.00"), None, 0.0, 0.0),
    ]
