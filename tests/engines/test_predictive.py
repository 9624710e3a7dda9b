"""The predictive models on both engines: the user features as of each cutoff (labels at the horizon's edge, users
first seen after a cutoff, unknown spend), and churn and clusters fitted on data with a known churn mechanism, equal
on DuckDB and Spark."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from helpers import FCT, event, inline_table, ts

from clickstream import churn, clusters, predictive
from clickstream.config import Config

ENGINES = ["duckdb", pytest.param("spark", marks=pytest.mark.spark)]
USER_IDS = [("user_key", "string"), ("user_id", "string")]


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.getfixturevalue("duckdb_engine" if request.param == "duckdb" else "spark")


def context(**overrides) -> dict:
    config = Config()
    return {"purchase_event_types": config.silver.purchase_event_types,
            "product_view_event_types": config.gold.product_view_event_types,
            "cart_add_event_types": config.gold.cart_add_event_types, **overrides}


def feature_rows(engine, events: list[tuple], times: list[dt.datetime], horizon_days: int = 7) -> list[dict]:
    inline_table(engine, "fct_events", FCT, events)
    users = sorted({row[1] for row in events})
    inline_table(engine, "dim_users", USER_IDS, [(u, u) for u in users])
    return predictive.features(engine, context(), times, horizon_days).to_pylist()


# cutoff 1 (labelled, a horizon of 7 days: to 2024-01-22 00:00 inclusive) and cutoff 0, a later one
CUTOFFS = [ts("2024-01-23 00:00"), ts("2024-01-15 00:00")]
EDGE_EVENTS = [
    # a: back exactly one horizon after the cutoff: not churned at it
    event("a1", "a", "page_view", "2024-01-10 12:00"),
    event("a2", "a", "page_view", "2024-01-22 00:00"),
    # b: back one second after the horizon: churned at it
    event("b1", "b", "page_view", "2024-01-14 00:00"),
    event("b2", "b", "page_view", "2024-01-22 00:00:01"),
    # c: an event at the cutoff itself is history, not a return; none after: churned
    event("c1", "c", "add_to_cart", "2024-01-15 00:00", session="1", amount="4"),
    # d: first seen after the cutoff: no row at it, only at the last event
    event("d1", "d", "purchase", "2024-01-20 00:00", amount="5"),
    # e: bought, but no purchase carries an amount: monetary unknown
    event("e1", "e", "purchase", "2024-01-01 00:00", session="1"),
    event("e2", "e", "click", "2024-01-01 00:05", session="1"),
    # f: 56 days of tenure at cutoff 1, one event before the last 28 days and two in them
    event("f1", "f", "login", "2023-11-20 00:00", session="1"),
    event("f2", "f", "login", "2024-01-05 00:00", session="2"),
    event("f3", "f", "login", "2024-01-10 00:00", session="3"),
]


def test_labels_at_the_horizons_edge_and_users_first_seen_after_the_cutoff(engine):
    rows = feature_rows(engine, EDGE_EVENTS, CUTOFFS)
    got = sorted((r["cutoff_number"], r["user_key"], r["events"], r["is_churned"]) for r in rows)
    assert got == [(0, "a", 2, None), (0, "b", 2, None), (0, "c", 1, None), (0, "d", 1, None), (0, "e", 2, None),
                   (0, "f", 3, None),
                   (1, "a", 1, False), (1, "b", 1, True), (1, "c", 1, True), (1, "e", 2, True), (1, "f", 3, True)]


def test_features_as_of_a_cutoff_read_only_the_events_up_to_it(engine):
    rows = {(r["cutoff_number"], r["user_key"]): r for r in feature_rows(engine, EDGE_EVENTS, CUTOFFS)}
    c = rows[(1, "c")]
    # one visit with a cart add and no purchase, at the cutoff itself: recency 0, an abandoned cart
    assert (c["recency_days"], c["tenure_days"], c["visits"], c["cart_adds"], c["abandoned_carts"], c["orders"],
            c["monetary"], c["share_cart_add"], c["trend"]) == (0.0, 0.0, 1, 1, 1, 0, 0.0, 1.0, None)
    e = rows[(1, "e")]
    # bought without an amount: monetary NULL (unknown), not 0; a purchase is never an abandoned cart
    assert (e["orders"], e["monetary"], e["share_purchase"], e["share_click"], e["recency_days"]) == (
        1, None, 0.5, 0.5, 14 - 5 / 1440)
    d = rows[(0, "d")]
    assert (d["orders"], d["monetary"], d["recent_events"]) == (1, 5.0, 1)


def test_trend_compares_the_last_28_days_with_the_days_before(engine):
    rows = {(r["cutoff_number"], r["user_key"]): r for r in feature_rows(engine, EDGE_EVENTS, CUTOFFS)}
    f = rows[(1, "f")]
    # 2 events a 28 days lately, 1 in the 28 days before: (2/28 - 1/28) / (2/28 + 1/28) = 1/3
    assert (f["tenure_days"], f["recent_events"], f["visits"], f["active_days"], f["share_login"]) == (56.0, 2, 3, 3,
                                                                                                       1.0)
    assert f["trend"] == pytest.approx(1 / 3, abs=1e-12)


# ---- a known churn mechanism: engaged users visit more often and stay longer


def engaged_users_stay_longer(users: int = 500, days: int = 182, seed: int = 7) -> list[tuple]:
    """fct_events rows: user i has an engagement g; visits come at g a day until their lifetime (mean 20 + 200 g
    days) ends; engaged users also buy more. Amounts are whole numbers (exact on every engine)."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2024, 1, 1)
    rows = []
    for user in range(users):
        g = rng.uniform(0.05, 1.0)
        first = rng.uniform(0, days * 0.8)
        end = min(days, first + rng.exponential(20 + 200 * g))
        t, visit = first, 0
        while t < end:
            when = start + dt.timedelta(days=float(t))
            kinds = ["page_view", "product_view"] + (["add_to_cart"] if rng.random() < 0.3 + 0.4 * g else [])
            kinds += ["purchase"] if kinds[-1] == "add_to_cart" and rng.random() < g else []
            for n, kind in enumerate(kinds):
                stamp = (when + dt.timedelta(minutes=n)).isoformat(sep=" ")
                rows.append(event(f"{user}-{visit}-{n}", f"u{user:04d}", kind, stamp, session=str(visit),
                                  amount="20" if kind == "purchase" else None))
            t += rng.exponential(1 / g)
            visit += 1
    return rows


@pytest.fixture(scope="module")
def mechanism() -> list[tuple]:
    return engaged_users_stay_longer()


def fit_both(engine, events: list[tuple]) -> tuple[dict, list, list, list]:
    engine.register_rows("fct_events", [(c, "double" if c == "amount" else t) for c, t in FCT],
                         [row[:8] + (None if row[8] is None else float(row[8]),) + row[9:] for row in events])
    engine.register_rows("dim_users", USER_IDS, [(u, u) for u in sorted({row[1] for row in events})])
    last = max(row[7] for row in events)
    times = predictive.cutoffs(min(row[7] for row in events), last, 28, labelled=True)
    table = predictive.features(engine, context(), times, 28)
    result = churn.fit(table, times, 28)
    now = table.filter(np.asarray(table["cutoff_number"]) == 0)
    groups = clusters.fit(now, "auto")
    return (result.model.to_pylist()[0], result.scores.to_pylist(), groups.users.to_pylist(),
            groups.profiles.to_pylist())


def test_on_data_with_a_churn_mechanism_the_model_beats_chance_and_recency_alone(duckdb_engine, mechanism):
    model, scores, users, profiles = fit_both(duckdb_engine, mechanism)
    assert model["status"] == "ok"
    assert model["auc"] > 0.7, model
    assert model["auc"] >= model["baseline_auc"] - churn.BASELINE_MARGIN, model
    assert model["top_decile_lift"] > 1.3, model
    assert len(scores) == 500 and all(0 <= s["churn_probability"] <= 1 for s in scores)
    assert [p["users"] for p in profiles] == sorted((p["users"] for p in profiles), reverse=True)
    assert sum(p["users"] for p in profiles) == len(users) == 500


@pytest.mark.spark
def test_both_engines_fit_equal_models_scores_and_clusters(duckdb_engine, spark, mechanism):
    assert fit_both(spark, mechanism) == fit_both(duckdb_engine, mechanism)
