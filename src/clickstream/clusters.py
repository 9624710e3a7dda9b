"""Behavioural clusters: k-means on the standardised user features as of the last event, each cluster labelled
by the features that set it apart.

Pure: tables in, tables out. The users are put in `user_key` order, k-means runs with fixed seeds and a fixed
number of starts, and the clusters are numbered by size (largest first, ties by their centres), so the same
features give the same clusters on every engine and every run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from clickstream.schema import CLUSTER_PROFILES, EVENT_MIX

SEED = 0
STARTS = 4  # k-means starts per k, the best kept
AUTO_K = range(2, 9)  # the k `auto` chooses from, by silhouette
SILHOUETTE_SAMPLE = 5000  # users the silhouette is measured on (a fixed-seed sample when there are more)
STANDS_OUT = 0.5  # a cluster's mean this many standard deviations from all users' is named in its label
_AVERAGED = ["events", "visits", "active_days", "orders", "monetary", "cart_adds", "abandoned_carts"]
# What the clusters are found on: intensity, purchase behaviour and the event mix.
INPUTS = ["events", "visits", "active_days", "events_per_visit", "orders_per_visit", "monetary", "cart_adds_per_visit",
          "abandoned_share", *[f"share_{kind}" for kind in EVENT_MIX]]
# How a label names an input far above or below the average user.
_WORDS = {"events": ("very active", "few events"), "visits": ("frequent visitor", "rare visitor"),
          "active_days": ("active on many days", "active on few days"),
          "events_per_visit": ("long visits", "short visits"), "orders_per_visit": ("buys often", "rarely buys"),
          "monetary": ("high spend", "low spend"), "cart_adds_per_visit": ("cart-heavy", "rarely adds to cart"),
          "abandoned_share": ("abandons carts", "completes carts"), "share_page_view": ("page-view heavy", "few page views"),
          "share_product_view": ("browses products", "few product views"),
          "share_cart_add": ("many cart adds", "few cart adds"), "share_purchase": ("purchase-heavy", "few purchases"),
          "share_click": ("click-heavy", "few clicks"), "share_login": ("logs in often", "rarely logs in"),
          "share_logout": ("logs out often", "rarely logs out")}


@dataclass(frozen=True)
class Clusters:
    users: pa.Table  # schema.USER_CLUSTERS
    profiles: pa.Table  # schema.CLUSTER_PROFILES


def _column(features: pa.Table, name: str) -> np.ndarray:
    values = pc.cast(features[name], pa.float64()).to_numpy(zero_copy_only=False)
    return np.nan_to_num(np.asarray(values, dtype=float), nan=0.0)


def inputs(features: pa.Table) -> np.ndarray:
    """INPUTS, in order, from user_features rows: counts and money as log(1 + x), rates per visit; unknown
    spend as none."""
    visits = np.maximum(_column(features, "visits"), 1.0)
    derived = {"events_per_visit": _column(features, "events") / visits,
               "orders_per_visit": _column(features, "orders") / visits,
               "cart_adds_per_visit": _column(features, "cart_adds") / visits,
               "abandoned_share": _column(features, "abandoned_carts") / visits}
    columns = []
    for name in INPUTS:
        values = derived[name] if name in derived else _column(features, name)
        columns.append(values if name.startswith(("share_", "abandoned")) else np.log1p(np.maximum(values, 0.0)))
    return np.column_stack(columns)


def _kmeans(points: np.ndarray, k: int) -> np.ndarray:
    # scikit-learn is imported when the clusters are fitted, not with the module (churn._model says why)
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=STARTS, random_state=SEED).fit_predict(points)


class _Silhouette:
    """How well clusters separate, from -1 to 1, on a fixed-seed sample of SILHOUETTE_SAMPLE users: the sample
    scikit-learn's silhouette_score takes, with the distances between its users computed once for every k tried
    (they were most of the time of `auto`)."""

    def __init__(self, points: np.ndarray) -> None:
        self.points = points
        self.sample: np.ndarray | None = None
        self.distances: np.ndarray | None = None

    def __call__(self, labels: np.ndarray) -> float:
        from sklearn.metrics import pairwise_distances  # see _kmeans

        if self.sample is None:
            count = len(self.points)
            self.sample = np.random.RandomState(SEED).permutation(count)[:min(SILHOUETTE_SAMPLE, count)]
            self.distances = pairwise_distances(self.points[self.sample])
        return mean_silhouette(self.distances, labels[self.sample])


def mean_silhouette(distances: np.ndarray, labels: np.ndarray) -> float:
    """scikit-learn's silhouette_samples, averaged, from the square matrix of distances: each user's summed
    distance to each cluster is one product of that matrix with the clusters' indicators, where scikit-learn
    sums a row at a time (0.09-0.29 s per k against 0.03 s on 5,000 users, measured). A user alone scores 0;
    fewer than two clusters in the sample score -1 (nothing is separated)."""
    clusters, codes = np.unique(labels, return_inverse=True)
    if len(clusters) < 2:
        return -1.0
    rows = np.arange(len(codes))
    members = np.zeros((len(codes), len(clusters)))
    members[rows, codes] = 1.0
    sums = distances @ members  # (users, clusters): each user's summed distance to each cluster's users
    sizes = members.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        within = sums[rows, codes] / (sizes[codes] - 1)  # 0 / 0 for a user alone: NaN, then a score of 0
        means = sums / sizes
        means[rows, codes] = np.inf
        nearest = means.min(axis=1)
        scores = (nearest - within) / np.maximum(within, nearest)
    return float(np.mean(np.nan_to_num(scores)))


def _clustered(points: np.ndarray, k: int | str, distinct: int) -> tuple[np.ndarray, float | None]:
    """The cluster of each point and the silhouette: k as configured (at most the distinct points), or for
    `auto` the k of AUTO_K with the best silhouette (the smaller k on a tie). One cluster has no silhouette."""
    candidates = [min(int(k), distinct)] if k != "auto" else [c for c in AUTO_K if c <= distinct]
    best: tuple[np.ndarray, float | None] = (np.zeros(len(points), dtype=np.int32), None)
    silhouette = _Silhouette(points)
    for candidate in [c for c in candidates if 2 <= c < len(points)]:
        labels = _kmeans(points, candidate)
        score = silhouette(labels) if len(set(labels.tolist())) > 1 else -1.0
        if best[1] is None or score > best[1] + 1e-9:
            best = (labels, round(score, 6))
    return best


def _numbered(labels: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Cluster numbers 1, 2 ... by size, largest first; equal sizes by their centres, so the order never depends on
    which start found a cluster first."""
    found = sorted(set(labels.tolist()),
                   key=lambda c: (-int((labels == c).sum()), tuple(points[labels == c].mean(axis=0).round(9))))
    renumber = np.zeros(max(found) + 1, dtype=np.int32)
    for number, cluster in enumerate(found, start=1):
        renumber[cluster] = number
    return renumber[labels]


# One thread: the same sums in the same order on every machine, and no idle OpenMP threads spinning against the
# engine's for the cores.
@threadpool_limits.wrap(limits=1)
def fit(features: pa.Table, k: int | str) -> Clusters:
    """Cluster the users of `features` (one row per user) into k clusters, or as many as `auto` finds best."""
    features = features.take(pc.sort_indices(features, sort_keys=[("user_key", "ascending")]))
    if features.num_rows == 0:
        return Clusters(_users(features, np.empty(0, dtype=np.int32)),
                        _profiles(features, np.empty(0), np.empty(0), None))
    from sklearn.preprocessing import StandardScaler  # see _kmeans

    points = StandardScaler().fit_transform(inputs(features))
    labels, silhouette = _clustered(points, k, len(np.unique(points.round(12), axis=0)))
    numbers = _numbered(labels, points)
    return Clusters(_users(features, numbers), _profiles(features, numbers, points, silhouette))


def _users(features: pa.Table, numbers: np.ndarray) -> pa.Table:
    return pa.table({"user_id": pc.cast(features["user_id"], pa.string()),
                     "user_key": pc.cast(features["user_key"], pa.string()),
                     "cluster": pa.array(numbers, pa.int32())})


WEAK_SILHOUETTE = 0.25  # below: the clusters are slices of one cloud of users, not groups


def verdict(silhouette: float | None, clusters: int) -> str:
    """How far the clusters are groups that exist in the data, in words."""
    if silhouette is None:
        return "One cluster: the users' features do not split."
    if silhouette < WEAK_SILHOUETTE:
        return (f"{clusters} clusters with silhouette {silhouette:.2f}: they barely separate; read them as slices of "
                "one population, not as distinct groups.")
    return f"{clusters} clusters with silhouette {silhouette:.2f}: groups of users that behave differently."


def label(centre: np.ndarray) -> str:
    """The one or two inputs on which a cluster's mean (in standard deviations) stands out most, in words."""
    order = np.argsort(-np.abs(centre), kind="stable")
    words = [_WORDS[INPUTS[i]][0 if centre[i] > 0 else 1] for i in order[:2] if abs(centre[i]) >= STANDS_OUT]
    return ", ".join(words) or "typical"


def _profiles(features: pa.Table, numbers: np.ndarray, points: np.ndarray, silhouette: float | None) -> pa.Table:
    clusters = sorted(set(numbers.tolist()))
    rows: dict[str, list] = {column: [] for column, _ in CLUSTER_PROFILES}
    for cluster in clusters:
        members = numbers == cluster
        rows["cluster"].append(cluster)
        rows["users"].append(int(members.sum()))
        rows["share_of_users"].append(round(float(members.mean()), 6))
        for name in _AVERAGED:
            values = pc.cast(features[name], pa.float64()).to_numpy(zero_copy_only=False)[members]
            known = values[~np.isnan(values)]
            rows[f"avg_{name}"].append(round(float(known.mean()), 6) if len(known) else None)
        for kind in EVENT_MIX:
            rows[f"share_{kind}"].append(round(float(_column(features, f"share_{kind}")[members].mean()), 6))
        rows["label"].append(label(points[members].mean(axis=0)))
        rows["silhouette"].append(silhouette)
    types = {"integer": pa.int32(), "bigint": pa.int64(), "double": pa.float64(), "string": pa.string()}
    return pa.table({column: pa.array(rows[column], types[kind]) for column, kind in CLUSTER_PROFILES})
