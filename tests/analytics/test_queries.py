"""Analytics queries on small inline gold tables, compared as whole tables."""
from __future__ import annotations

from decimal import Decimal

import pytest
from helpers import FCT, USERS, analytics_context, event, inline_table, run_model, ts

from clickstream.sql import render

CONTEXT = analytics_context(top_n=3)


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


@pytest.mark.parametrize(
    ("recency", "frequency", "monetary", "segment"),
    [(5, 5, 5, "champions"), (4, 4, 4, "champions"), (5, 5, 3, "loyal"), (3, 3, 1, "loyal"),
     (4, 2, 5, "promising"), (3, 2, 5, "needs_attention"), (2, 3, 5, "at_risk"), (1, 1, 1, "hibernating"),
     (2, 2, 5, "hibernating")],
)
def test_rfm_segment_boundaries(duck, recency, frequency, monetary, segment):
    # the segment rule alone, on chosen scores
    sql = render("analytics/rfm_scores", duck, **CONTEXT)
    final_case = sql[sql.index("case"):sql.index("end as segment") + 3]
    _, rows = duck.fetch(f"select {final_case} from (select {recency} as recency_score, {frequency} as "
                         f"frequency_score, {monetary} as monetary_score) s")
    assert rows == [(segment,)]


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
