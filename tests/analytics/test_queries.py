"""Analytics queries on small inline gold tables, compared as whole tables."""
from __future__ import annotations

import csv
import json
from decimal import Decimal

import pytest
from helpers import DATES, FCT, USERS, analytics_context, dates, event, inline_table, make_config, run_model, ts

from clickstream import analytics, quality
from clickstream.config import Config, DuckDBSettings
from clickstream.engines.duckdb_engine import DuckDBEngine
from clickstream.pipeline import run_layers
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
        (Decimal("15.30"), 3, 0, 3, 2, 1, 0.5, 15.30 / 3, 15.30 / 3, 15.30 / 2),
    ]


@pytest.mark.parametrize(
    ("recency", "frequency", "monetary", "segment"),
    [(5, 5, 5, "champions"), (4, 4, 4, "champions"), (5, 5, 3, "loyal"), (3, 3, 1, "loyal"),
     (4, 2, 5, "promising"), (3, 2, 5, "needs_attention"), (2, 3, 5, "at_risk"), (1, 1, 1, "hibernating"),
     (2, 2, 5, "hibernating"), (4, 4, "null", "champions"), (3, 3, "null", "loyal")],
)
def test_rfm_segment_boundaries(duck, recency, frequency, monetary, segment):
    # the segment rule alone, on chosen scores
    sql = render("analytics/rfm_scores", duck, **CONTEXT)
    start = sql.index("case", sql.index("final as ("))
    final_case = sql[start:sql.index("end as segment") + 3]
    _, rows = duck.fetch(f"select {final_case} from (select {recency} as recency_score, {frequency} as "
                         f"frequency_score, {monetary} as monetary_score) s")
    assert rows == [(segment,)]


# a and b view, cart and buy; c only buys
BUYING_VISITS = [
    event("1", "a", "product_view", "2024-01-01 10:00"), event("2", "a", "add_to_cart", "2024-01-01 10:01"),
    event("3", "a", "purchase", "2024-01-01 10:02", amount="1"),
    event("4", "b", "product_view", "2024-01-01 10:00"), event("5", "b", "add_to_cart", "2024-01-01 10:01"),
    event("6", "b", "purchase", "2024-01-01 10:02", amount="1"),
    event("7", "c", "purchase", "2024-01-01 10:00", amount="1"),
]


def test_purchase_paths_count_the_steps_before_each_purchase_in_a_visit(duck):
    inline_table(duck, "fct_events", FCT, BUYING_VISITS + [
        event("8", "d", "product_view", "2024-01-01 10:00"), event("9", "d", "add_to_cart", "2024-01-01 10:01"),
    ])
    assert run_model(duck, "analytics/purchase_paths", **CONTEXT) == [
        (1, "product_view > add_to_cart > purchase", 2, 2 / 3), (2, "purchase", 1, 1 / 3)]


def test_purchase_paths_keep_exactly_the_top_n_with_shares_of_every_purchase(duck):
    inline_table(duck, "fct_events", FCT, BUYING_VISITS + [
        event("8", "d", "page_view", "2024-01-01 10:00"), event("9", "d", "purchase", "2024-01-01 10:01", amount="1"),
    ])
    # three paths, two kept: the tie of one purchase each is broken by the path's text
    assert run_model(duck, "analytics/purchase_paths", ordered=True, **{**CONTEXT, "top_n": 2}) == [
        (1, "product_view > add_to_cart > purchase", 2, 2 / 4), (2, "page_view > purchase", 1, 1 / 4)]


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
    inline_table(duck, "affected_users", [("user_key", "string"), ("first_new_ts", "timestamp")],
                 [("a", ts("2024-01-01 10:20")), ("b", ts("2024-01-02 09:00"))])
    assert run_model(duck, "analytics/user_journey", ["user_key", "event_number", "event_type",
                                                      "previous_event_type", "seconds_since_previous"],
                     **{**CONTEXT, "incremental": True}) == [
        ("a", 4, "add_to_cart", "product_view", 900.0), ("a", 5, "purchase", "add_to_cart", 600.0),
        ("b", 1, "page_view", None, None)]




def test_the_configured_cart_and_view_types_open_carts_and_count_viewers(duck):
    # this feed puts products in the basket with `basket_add`; its `add_to_cart` is something else
    inline_table(duck, "dim_date", DATES, dates("2024-01-01", "2024-01-01"))
    inline_table(duck, "fct_events", FCT, [
        event("1", "a", "quick_view", "2024-01-01 09:00", product="p1"),
        event("2", "a", "basket_add", "2024-01-01 10:00", product="p1"),
        event("3", "a", "purchase", "2024-01-01 10:30", product="p1", amount="5"),
        event("4", "b", "add_to_cart", "2024-01-01 10:00", product="p1"),
    ])
    context = {**CONTEXT, "product_view_event_types": ["quick_view"], "cart_add_event_types": ["basket_add"]}
    assert run_model(duck, "analytics/cart_abandonment_daily", **context) == [
        (ts("2024-01-01").date(), 1, 1, 0, 0, 0.0, None)]
    inline_table(duck, "dim_products", [("product_key", "string"), ("product_id", "string"), ("views", "bigint"),
                                        ("cart_adds", "bigint"), ("purchases", "bigint"), ("revenue", "decimal(18,2)"),
                                        ("is_not_applicable", "boolean")],
                 [("p1", "p1", 1, 1, 1, Decimal("5.00"), False)])
    assert run_model(duck, "analytics/top_products", ["product_id", "viewers", "carters", "buyers",
                                                      "view_to_cart_rate"], **context) == [("p1", 1, 1, 1, 1.0)]


# ---- the natural order of each result, and what the report shows

def test_every_query_declares_a_natural_order_of_its_own_columns_or_expressions():
    for query in analytics.queries():
        assert isinstance(query["order_by"], list), query["name"]
    assert analytics.natural_order({"order_by": ["breakdown_value", "step_number"]}, ["step_number", "users"]) == (
        " order by step_number")
    assert analytics.natural_order({"order_by": ["sessions desc", "step"]}, ["step", "sessions"]) == (
        " order by sessions desc, step")
    assert analytics.natural_order({"order_by": []}, ["carts"]) == ""


def test_report_samples_and_csv_come_in_the_natural_order(tmp_path):
    # 30 products: the 10 shown must be the 10 best by revenue, in rank order, whatever order the files hold
    rows = ["UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome"]
    rows += [f"u{i},s,2024-01-0{1 + i % 5} 10:00:00,purchase,p{i:02d},{i}.00,purchase" for i in range(30)]
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "shop.csv").write_text("\n".join(rows) + "\n")
    results = run_layers(make_config(tmp_path, analytics={"show_rows": 10}))["analytics"]
    top = next(r for r in results if r.name == "top_products")
    assert [row[1] for row in top.rows] == [f"p{i:02d}" for i in range(29, 19, -1)]
    with (tmp_path / "data" / "analytics" / "top_products.csv").open() as handle:
        assert [row["product_id"] for row in csv.DictReader(handle)] == [f"p{i:02d}" for i in range(29, 9, -1)]
    retention = next(r for r in results if r.name == "retention")
    assert [(str(row[0]), row[1]) for row in retention.rows] == [("2024-01-01", 0)]


# ---- flags in the quality report

def test_one_segment_for_everyone_and_a_short_window_are_flagged(duck):
    inline_table(duck, "user_segments", [("segment", "string"), ("users", "bigint")], [("high", 4)])
    inline_table(duck, "fct_events", FCT, [event("1", "a", "page_view", "2024-01-01 10:00"),
                                           event("2", "a", "page_view", "2024-01-01 13:00")])
    flags = quality.analytics_flags(duck, Config().analytics, {"user_segments", "rfm_scores"})
    assert flags == [
        {"flag": "single_segment", "tables": ["user_segments"], "status": "warn",
         "message": "every user (4) is in segment 'high': the segment definition tells no users apart "
                    "(analytics.segments)"},
        {"flag": "short_rfm_window", "tables": ["rfm_scores", "rfm_segments"], "status": "warn",
         "observation_days": 0.125, "min_days": 28.0,
         "message": "the data spans 0.12 days from its first to its last event, less than analytics.rfm.min_days "
                    "(28): recency and frequency scores mean little on so short a window"},
    ]


def test_segments_that_tell_users_apart_and_a_long_window_are_not_flagged(duck):
    inline_table(duck, "user_segments", [("segment", "string"), ("users", "bigint")], [("high", 1), ("low", 3)])
    inline_table(duck, "fct_events", FCT, [event("1", "a", "page_view", "2024-01-01 10:00"),
                                           event("2", "a", "page_view", "2024-01-29 10:00")])
    assert quality.analytics_flags(duck, Config().analytics, {"user_segments", "rfm_scores"}) == []
    # a query the run did not build is not judged
    assert quality.analytics_flags(duck, Config().analytics, set()) == []


def test_a_short_window_is_flagged_in_the_quality_report_and_the_report(tmp_path):
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "shop.csv").write_text("UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"
                                  "u1,s,2024-01-01 10:00:00,purchase,p1,5.00,purchase\n"
                                  "u2,s,2024-01-01 13:00:00,page_view,,,\n")
    run_layers(make_config(tmp_path))
    report = json.loads((tmp_path / "data" / "reports" / "quality_report.json").read_text())
    assert [(f["flag"], f["tables"]) for f in report["analytics"]["flags"]] == [
        ("single_segment", ["user_segments"]), ("short_rfm_window", ["rfm_scores", "rfm_segments"])]
    text = (tmp_path / "data" / "analytics" / "REPORT.md").read_text()
    assert text.count("Caution: the data spans 0.12 days from its first to its last event") == 2
    assert "Caution: every user (2) is in segment 'one_time'" in text


# ---- input written in another time zone

def test_a_source_in_another_time_zone_is_counted_in_utc_periods(tmp_path):
    # 20:00 on Sunday 7 January in New York is 01:00 on Monday 8 January UTC: the second week, the 8th's day
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "ny.csv").write_text("UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"
                                "u1,s,2024-01-01 09:00:00,page_view,,,\n"
                                "u2,s,2024-01-07 20:00:00,page_view,,,\n"
                                "u1,s,2024-01-07 20:30:00,add_to_cart,p1,,\n"
                                "u1,s,2024-01-16 09:00:00,page_view,,,\n")
    run_layers(make_config(tmp_path, sources=[{"name": "ny", "glob": "ny.csv", "timezone": "America/New_York"}]))
    con = DuckDBEngine(DuckDBSettings(threads=1))
    try:
        def rows(table, columns):
            path = tmp_path / "data" / "analytics" / table
            return con.fetch(f"select {columns} from read_parquet('{path}/*.parquet') order by all")[1]

        first, second = ts("2024-01-01").date(), ts("2024-01-08").date()
        assert rows("retention", "*") == [(first, 0, 1, 1, 1.0), (first, 1, 1, 1, 1.0), (first, 2, 1, None, None),
                                          (second, 0, 1, 1, 1.0), (second, 1, 1, None, None)]
        assert rows("daily_activity", "activity_date, events") == [
            (first, 1)] + [(ts(f"2024-01-{d:02d}").date(), 0) for d in range(2, 8)] + [
            (second, 2)] + [(ts(f"2024-01-{d:02d}").date(), 0) for d in range(9, 16)] + [
            (ts("2024-01-16").date(), 1)]
        days = [d for d, _ in rows("daily_activity", "activity_date, 1")]
        assert rows("cart_abandonment_daily", "cart_date, carts, abandoned") == [
            (d, int(d == second), int(d == second)) for d in days]
    finally:
        con.close()


def test_the_tests_render_the_analytics_with_the_parameters_gold_gives_them(tmp_path):
    config = make_config(tmp_path)
    context = analytics.model_context(config)
    gold_only = {"timeout_us", "product_event_types", "purchase_event_types", "known_event_types",
                 "may_hold_unit_separator"}
    assert {k: v for k, v in context.items() if k not in gold_only} == analytics_context()
