"""Churn risk: a calibrated logistic regression on the user features, evaluated out of time against recency alone.

Pure: tables in, tables out; no file and no engine. `fit` takes the rows of `sql/predictive/user_features.sql`
for every cutoff (cutoff 0 the models' time, unlabelled; cutoff 1 a horizon before it, 2 two horizons ...,
labelled), trains on cutoffs 2 and earlier, evaluates on cutoff 1 (whose labels no training row has seen: the
latest training label ends at cutoff 1), then refits on every labelled cutoff and scores the users as of
cutoff 0. Rows are put in (cutoff, user) order first and every random choice has a fixed seed, so the same
features give the same scores on every engine and every run. docs/METRICS.md explains the numbers.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from clickstream.schema import CHURN_MODEL, EVENT_MIX

# Counts, days and money: log(1 + x), so a few heavy users do not set the scale.
_LOGGED = ["recency_days", "tenure_days", "events", "visits", "active_days", "orders", "monetary", "cart_adds",
           "abandoned_carts", "recent_events"]
FEATURES = [*_LOGGED, "monetary_unknown", "trend", *[f"share_{kind}" for kind in EVENT_MIX]]
# Fewer churned (or retained) rows than this in the training or the evaluation set: no honest model.
MIN_CLASS_ROWS = 10
WEAK_AUC = 0.6  # below: no better than chance, whatever the baseline
BASELINE_MARGIN = 0.01  # the model must beat recency alone by this much to add anything
# Calibrated probabilities at or above these are high and medium risk.
HIGH_RISK, MEDIUM_RISK = 0.6, 0.3
DECIMALS = 6  # probabilities and metrics are rounded: equal on every engine and platform


@dataclass(frozen=True)
class Churn:
    scores: pa.Table  # schema.CHURN_SCORES
    model: pa.Table  # schema.CHURN_MODEL, one row


def design(features: pa.Table) -> np.ndarray:
    """The model's inputs (FEATURES, in order) from user_features rows: unknown spend counts as none, with a flag;
    an unknown trend (a tenure shorter than the window) as flat."""
    columns = []
    for name in FEATURES:
        if name == "monetary_unknown":
            columns.append(pc.is_null(features["monetary"]).to_numpy(zero_copy_only=False).astype(float))
            continue
        values = pc.cast(features[name], pa.float64()).to_numpy(zero_copy_only=False)
        values = np.nan_to_num(np.asarray(values, dtype=float), nan=0.0)
        columns.append(np.log1p(np.maximum(values, 0.0)) if name in _LOGGED else values)
    return np.column_stack(columns) if columns else np.empty((features.num_rows, 0))


def _model(seed: int = 0) -> Any:
    """Standardised inputs, a logistic regression, Platt scaling over three ordered folds (no shuffling)."""
    # scikit-learn is imported when a model is fitted, not with the module: its import takes about a second, which
    # every run would pay, models or not
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    regression = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return CalibratedClassifierCV(regression, method="sigmoid", cv=StratifiedKFold(n_splits=3, shuffle=False))


def _ordered(features: pa.Table) -> pa.Table:
    return features.take(pc.sort_indices(features, sort_keys=[("cutoff_number", "ascending"),
                                                               ("user_key", "ascending")]))


def _rows(features: pa.Table, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, pa.Table]:
    table = features.filter(pa.array(keep))
    labels = pc.fill_null(table["is_churned"], False).to_numpy(zero_copy_only=False).astype(int)
    return design(table), labels, table


def _lift(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The churn rate of the tenth of users ranked riskiest, over the churn rate of all (ties in user order)."""
    top = np.argsort(-probabilities, kind="stable")[:max(1, len(labels) // 10)]
    return float(labels[top].mean() / labels.mean())


def _metrics(labels: np.ndarray, probabilities: np.ndarray, recency: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score  # see _model

    return {"auc": roc_auc_score(labels, probabilities), "baseline_auc": roc_auc_score(labels, recency),
            "pr_auc": average_precision_score(labels, probabilities),
            "brier": brier_score_loss(labels, probabilities), "top_decile_lift": _lift(labels, probabilities)}


def _too_small(*label_sets: np.ndarray) -> bool:
    return any(min(int(labels.sum()), int(len(labels) - labels.sum())) < MIN_CLASS_ROWS for labels in label_sets)


# One thread: the same sums in the same order on every machine, and no idle OpenMP threads spinning against the
# engine's for the cores.
@threadpool_limits.wrap(limits=1)
def fit(features: pa.Table, cutoffs: list[dt.datetime], horizon_days: int) -> Churn:
    """Evaluate and score (see the module's doc). `cutoffs[i]` is the time of cutoff number i."""
    features = _ordered(features)
    number = features["cutoff_number"].to_numpy(zero_copy_only=False)
    x_train, y_train, _ = _rows(features, number >= 2)
    x_test, y_test, test = _rows(features, number == 1)
    model = {"status": "insufficient_history", "horizon_days": horizon_days,
             "cutoff": cutoffs[1] if len(cutoffs) > 1 else None, "train_users": len(y_train),
             "test_users": len(y_test), "churn_rate": round(float(y_test.mean()), DECIMALS) if len(y_test) else None,
             "features": ", ".join(FEATURES)}
    if len(cutoffs) < 3 or _too_small(y_train, y_test):
        return Churn(_scores([], [], [], cutoffs[0] if cutoffs else None), _model_row(model))
    probabilities = _model().fit(x_train, y_train).predict_proba(x_test)[:, 1]
    recency = pc.cast(test["recency_days"], pa.float64()).to_numpy(zero_copy_only=False)
    model.update({key: round(float(value), DECIMALS) for key, value in
                  _metrics(y_test, probabilities, recency).items()})
    model["status"] = "weak_signal" if model["auc"] < WEAK_AUC else "ok"
    x_all, y_all, _ = _rows(features, number >= 1)
    x_now, _, now = _rows(features, number == 0)
    scored = _model().fit(x_all, y_all).predict_proba(x_now)[:, 1] if now.num_rows else np.empty(0)
    return Churn(_scores(now["user_id"].to_pylist(), now["user_key"].to_pylist(), scored, cutoffs[0]),
                 _model_row(model))


def risk_band(probability: float) -> str:
    return "high" if probability >= HIGH_RISK else "medium" if probability >= MEDIUM_RISK else "low"


def _scores(user_ids: list, user_keys: list, probabilities: np.ndarray | list, scored_at: dt.datetime | None
            ) -> pa.Table:
    rounded = [round(float(p), DECIMALS) for p in probabilities]
    return pa.table({"user_id": pa.array(user_ids, pa.string()), "user_key": pa.array(user_keys, pa.string()),
                     "churn_probability": pa.array(rounded, pa.float64()),
                     "risk_band": pa.array([risk_band(p) for p in rounded], pa.string()),
                     "scored_at": pa.array([scored_at] * len(rounded), pa.timestamp("us"))})


def _model_row(values: dict) -> pa.Table:
    types = {"string": pa.string(), "integer": pa.int32(), "bigint": pa.int64(), "double": pa.float64(),
             "timestamp": pa.timestamp("us")}
    return pa.table({column: pa.array([values.get(column)], types[kind]) for column, kind in CHURN_MODEL})


def verdict(model: dict) -> str:
    """The model's status in words, for the report and the terminal."""
    status = model.get("status")
    if status == "insufficient_history":
        return ("Not enough history to judge a churn model: the data spans fewer than two horizons after the first "
                "cutoff, or too few users churned (or stayed) at a labelled cutoff. No scores.")
    if status == "weak_signal":
        return (f"No better than chance: do not act on these scores (AUC {model['auc']:.3f} on the evaluation "
                f"cutoff, below {WEAK_AUC}).")
    words = (f"The churn model ranks users with AUC {model['auc']:.3f} on the evaluation cutoff (recency alone: "
             f"{model['baseline_auc']:.3f}); its riskiest tenth churn {model['top_decile_lift']:.2f} times as often "
             f"as the average user.")
    if model["auc"] < model["baseline_auc"] + BASELINE_MARGIN:
        words += " Recency alone ranks users as well: the model adds nothing to days since the last visit."
    return words
