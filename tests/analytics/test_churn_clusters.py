"""The model fitting as pure functions on small Arrow tables: a label set of one class, unknown spend, and
clusters that are there in the data (and numbered the same way every time)."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from clickstream import churn, clusters, predictive

CUTOFFS = [dt.datetime(2024, 3, 1), dt.datetime(2024, 2, 2), dt.datetime(2024, 1, 5)]
NUMERIC = ["recency_days", "tenure_days", "events", "visits", "active_days", "orders", "monetary", "cart_adds",
           "abandoned_carts", "recent_events", "trend", "share_page_view", "share_product_view", "share_cart_add",
           "share_purchase", "share_click", "share_login", "share_logout"]


def features(rows: list[dict]) -> pa.Table:
    """user_features rows as feature_rows.sql gives them; unset numbers are 0 (monetary may be None)."""
    full = [{"cutoff_number": r["cutoff_number"], "user_key": r["user_key"], "user_id": r["user_key"],
             "is_churned": r.get("is_churned"), **{c: r.get(c, 0.0) for c in NUMERIC}} for r in rows]
    types = {"cutoff_number": pa.int32(), "user_key": pa.string(), "user_id": pa.string(), "is_churned": pa.bool_()}
    return pa.Table.from_pylist(full, schema=pa.schema([(c, types.get(c, pa.float64())) for c in full[0]]))


def population(churned, monetary=lambda i: float(i % 7)) -> list[dict]:
    """40 users at each labelled cutoff and as of the last event; recency decides churn when `churned` says so."""
    rows = []
    for cutoff in (0, 1, 2):
        for i in range(40):
            rows.append({"cutoff_number": cutoff, "user_key": f"u{i:02d}", "recency_days": float(i),
                         "events": float(40 - i), "visits": 3.0, "monetary": monetary(i),
                         "is_churned": None if cutoff == 0 else churned(i)})
    return rows


def test_a_single_class_label_set_is_insufficient_history_with_no_scores():
    result = churn.fit(features(population(lambda i: False)), CUTOFFS, 28)
    model = result.model.to_pylist()[0]
    assert (model["status"], model["train_users"], model["test_users"], model["churn_rate"], model["auc"]) == (
        "insufficient_history", 40, 40, 0.0, None)
    assert result.scores.num_rows == 0
    assert churn.verdict(model).startswith("Not enough history")


def test_fewer_than_three_cutoffs_is_insufficient_history():
    rows = [r for r in population(lambda i: i >= 20) if r["cutoff_number"] < 2]
    assert churn.fit(features(rows), CUTOFFS[:2], 28).model.to_pylist()[0]["status"] == "insufficient_history"


@pytest.mark.parametrize("monetary", [lambda i: None, lambda i: None if i % 2 else float(i)])
def test_unknown_spend_is_read_as_none_with_a_flag_and_scores_every_user(monetary):
    result = churn.fit(features(population(lambda i: i >= 20, monetary)), CUTOFFS, 28)
    model = result.model.to_pylist()[0]
    # recency alone separates the classes here: the model ranks perfectly, as the baseline does
    assert (model["status"], model["auc"], model["baseline_auc"], model["top_decile_lift"]) == ("ok", 1.0, 1.0, 2.0)
    scores = result.scores.to_pylist()
    assert [s["user_key"] for s in scores] == [f"u{i:02d}" for i in range(40)]
    assert all(s["scored_at"] == CUTOFFS[0] for s in scores)
    # the riskiest users are the longest unseen, and their band follows their probability
    assert scores[39]["churn_probability"] > 0.6 > 0.3 > scores[0]["churn_probability"]
    assert {s["risk_band"] for s in scores} == {"high", "low"} | ({"medium"} & {s["risk_band"] for s in scores})


def test_a_model_no_better_than_recency_says_so_and_a_weak_one_says_not_to_act():
    ok = {"status": "ok", "auc": 0.80, "baseline_auc": 0.795, "top_decile_lift": 2.0}
    assert "Recency alone ranks users as well" in churn.verdict(ok)
    assert "Recency alone" not in churn.verdict({**ok, "baseline_auc": 0.70})
    assert churn.verdict({**ok, "status": "weak_signal", "auc": 0.55}).startswith(
        "No better than chance: do not act on these scores")


def two_groups() -> pa.Table:
    """30 browsers (many page views, no purchase) and 20 buyers (cart adds and orders in every visit), a little
    apart within each group."""
    rows = [{"cutoff_number": 0, "user_key": f"b{i:02d}", "events": 10.0 + i / 1000, "visits": 5.0,
             "active_days": 4.0, "share_page_view": 0.9, "share_click": 0.1} for i in range(30)]
    rows += [{"cutoff_number": 0, "user_key": f"p{i:02d}", "events": 12.0 + i / 1000, "visits": 4.0, "active_days": 4.0,
              "orders": 4.0, "cart_adds": 4.0, "monetary": 80.0, "share_product_view": 0.3,
              "share_cart_add": 0.3, "share_purchase": 0.3, "share_page_view": 0.1} for i in range(20)]
    return features(rows)


def test_auto_finds_the_two_groups_numbered_by_size_and_labelled_by_what_sets_them_apart():
    result = clusters.fit(two_groups(), "auto")
    members = {row["user_key"]: row["cluster"] for row in result.users.to_pylist()}
    assert {members[k] for k in members if k.startswith("b")} == {1}
    assert {members[k] for k in members if k.startswith("p")} == {2}
    profiles = result.profiles.to_pylist()
    assert [(p["cluster"], p["users"], p["share_of_users"], p["avg_orders"]) for p in profiles] == [
        (1, 30, 0.6, 0.0), (2, 20, 0.4, 4.0)]
    assert "page-view heavy" in profiles[0]["label"] or "rarely buys" in profiles[0]["label"]
    assert profiles[0]["silhouette"] > 0.5
    assert clusters.fit(two_groups(), "auto").users.equals(result.users)


def test_a_fixed_k_is_kept_and_identical_users_make_one_cluster():
    assert len(clusters.fit(two_groups(), 3).profiles) == 3
    same = features([{"cutoff_number": 0, "user_key": f"u{i}", "events": 5.0, "visits": 1.0} for i in range(5)])
    profile = clusters.fit(same, "auto").profiles.to_pylist()
    assert [(p["cluster"], p["users"], p["label"], p["silhouette"]) for p in profile] == [(1, 5, "typical", None)]


@pytest.mark.parametrize(("last", "period", "expected"), [
    # Sunday 23:59: its week began on the Monday before, its day at midnight
    (dt.datetime(2024, 3, 31, 23, 59), "week", dt.datetime(2024, 3, 25)),
    (dt.datetime(2024, 3, 31, 23, 59), "day", dt.datetime(2024, 3, 31)),
    (dt.datetime(2024, 3, 31, 23, 59), "event", dt.datetime(2024, 3, 31, 23, 59)),
    # Monday 00:00 itself is the start of its week and of its day; a year's first days belong to December's week
    (dt.datetime(2024, 4, 1), "week", dt.datetime(2024, 4, 1)),
    (dt.datetime(2024, 1, 1, 0, 0, 0, 1), "day", dt.datetime(2024, 1, 1)),
    (dt.datetime(2023, 1, 1, 12), "week", dt.datetime(2022, 12, 26)),
])
def test_the_models_time_is_the_start_of_the_last_events_week_or_day_or_that_event(last, period, expected):
    assert predictive.as_of(last, period) == expected
    assert predictive.cutoffs(expected + dt.timedelta(hours=1), expected, 28, labelled=True) == []  # nothing seen


@pytest.mark.parametrize("users", [40, 7000])
def test_the_silhouette_is_scikit_learns_on_the_same_sample_with_the_distances_computed_once(users):
    """Every k tried is scored on one sample and one matrix of its distances: the same score silhouette_score
    gives on its own fixed-seed sample (all users when fewer than SILHOUETTE_SAMPLE, in its order)."""
    import numpy as np
    from sklearn.metrics import silhouette_score

    points = np.random.RandomState(3).normal(size=(users, 4))
    score = clusters._Silhouette(points)
    for k in (2, 3, 5):
        labels = np.arange(users) % k
        expected = silhouette_score(points, labels, sample_size=min(clusters.SILHOUETTE_SAMPLE, users),
                                    random_state=clusters.SEED)
        assert score(labels) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_the_mean_silhouette_from_the_distances_is_scikit_learns(seed):
    """Labels as k-means never numbers them (gaps, one user alone, clusters of one size) and points that
    coincide: the product of the distances with the clusters' indicators scores each user as
    silhouette_samples does."""
    import numpy as np
    from sklearn.metrics import pairwise_distances, silhouette_samples

    random = np.random.RandomState(seed)
    users = random.randint(3, 300)
    points = random.normal(size=(users, 3)).round(1)  # rounded: some users at the same point
    labels = random.choice([0, 2, 7, 9][:random.randint(2, 5)], size=users)
    labels[random.randint(users)] = 11  # one user alone in a cluster
    distances = pairwise_distances(points)
    expected = float(np.mean(silhouette_samples(distances, labels, metric="precomputed")))
    assert clusters.mean_silhouette(distances, labels) == pytest.approx(expected, abs=1e-12)


def test_a_sample_holding_one_cluster_scores_as_not_separated():
    import numpy as np

    assert clusters.mean_silhouette(np.zeros((3, 3)), np.array([4, 4, 4])) == -1.0
