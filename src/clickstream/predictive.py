"""The predictive results of analytics: churn risk and behavioural clusters, fitted on gold's user features.

The features are SQL models run by the engine (`sql/predictive/`); only their one row per user and cutoff
comes to Python, as Arrow, where `churn.fit` and `clusters.fit` (pure functions) turn it into the tables
analytics publishes beside its queries' results. On Spark the features are computed by Spark and the models
fitted on the driver.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib
import importlib.metadata
import logging
import threading
from dataclasses import dataclass
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from clickstream import churn, clusters
from clickstream.config import Analytics
from clickstream.engines.base import Engine
from clickstream.schema import CHURN_MODEL, CHURN_SCORES, CLUSTER_PROFILES, USER_CLUSTERS, Schema
from clickstream.sql import render

log = logging.getLogger(__name__)
# part of the models' fingerprint: another scikit-learn may fit other models (read without importing it)
SKLEARN_VERSION = importlib.metadata.version("scikit-learn")

TREND_WINDOW_DAYS = 28  # user_features' trend: the last four weeks against the weeks before
MAX_TRAINING_CUTOFFS = 6  # the training cutoffs, a horizon apart, before the evaluation cutoff
CUTOFFS: Schema = [("cutoff_number", "integer"), ("cutoff_ts", "timestamp"), ("is_labelled", "boolean")]


@dataclass(frozen=True)
class Output:
    """One published table of the predictive models, shown like an analytics query's result."""
    name: str
    part: str  # churn or clusters: the config switch that turns it on
    title: str
    description: str
    schema: Schema
    order_by: list[str]  # its natural order, unique
    shown_by: str | None = None  # the model (sql/predictive/) whose rows people see instead of the table's own


OUTPUTS = [
    Output("churn_model", "churn", "11a. Churn model (evaluated out of time)",
           "one row: the churn model's status, its evaluation on the latest labelled cutoff against recency alone, "
           "and its features", CHURN_MODEL, []),
    Output("churn_scores", "churn", "11b. Churn risk, riskiest users first",
           "one row per user: the calibrated probability of no event in the horizon after the models' time "
           "(scored_at), and its risk band", CHURN_SCORES, ["churn_probability desc", "user_id"], "top_risk_users"),
    Output("user_clusters", "clusters", "12a. Behavioural cluster of each user",
           "one row per user: the behavioural cluster they belong to", USER_CLUSTERS, ["user_key"]),
    Output("cluster_profiles", "clusters", "12b. Behavioural clusters",
           "one row per behavioural cluster: its users, their average behaviour and a label naming what sets them "
           "apart", CLUSTER_PROFILES, ["cluster"]),
]


# What fitting imports from scikit-learn (churn._model and _metrics, clusters): about a second of imports.
_FIT_MODULES = ("sklearn.calibration", "sklearn.linear_model", "sklearn.model_selection", "sklearn.pipeline",
                "sklearn.preprocessing", "sklearn.cluster", "sklearn.metrics")


def _import_fit_modules() -> None:
    try:
        for module in _FIT_MODULES:
            importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - the fit imports them again and fails with the real error
        log.debug("analytics: importing scikit-learn ahead of the fit failed: %s", exc)


@contextlib.contextmanager
def importing_ahead(wanted: bool) -> Iterator[None]:
    """With `wanted`, scikit-learn's modules are imported in a thread while the block runs (the engine's queries,
    which release Python's lock), so the fit at its end does not wait for them; the thread is joined on the way
    out, whatever happened. A module the fit imports meanwhile waits for that import, as any import does."""
    thread = threading.Thread(target=_import_fit_modules, name="sklearn-import", daemon=True) if wanted else None
    if thread is not None:
        thread.start()
    try:
        yield
    finally:
        if thread is not None:
            thread.join()


def enabled(settings: Analytics) -> list[Output]:
    on = {"churn": settings.churn.enabled, "clusters": settings.clusters.enabled}
    return [output for output in OUTPUTS if on[output.part]]


def fingerprint(engine: Engine, context: dict[str, Any], settings: Analytics) -> str:
    """What decides the predictive results besides gold: the feature SQL, the models' settings and the library
    that fits them."""
    sql = render("predictive/user_features", engine, **feature_context(context, 1))
    models = f"{settings.churn.model_dump_json()}\0{settings.clusters.model_dump_json()}\0{settings.models_as_of}"
    return hashlib.sha256(f"{sql}\0{models}\0{SKLEARN_VERSION}".encode()).hexdigest()


def as_of(last: dt.datetime, period: str) -> dt.datetime:
    """The time the models see the events up to (at or before it): the start of the week (Monday 00:00) or of the
    day holding the data's last event, or (`event`) that event itself."""
    if period == "event":
        return last
    day = dt.datetime.combine(last.date(), dt.time(), tzinfo=last.tzinfo)
    return day - dt.timedelta(days=last.weekday()) if period == "week" else day


def span(engine: Engine, settings: Analytics) -> tuple[dt.datetime, dt.datetime] | None:
    """The first event of the fact and the time the models see the events up to (`as_of`); None without events."""
    _, rows = engine.fetch(render("predictive/event_span", engine))
    first, last = rows[0]
    return None if first is None or last is None else (first, as_of(last, settings.models_as_of))


def cutoffs(first: dt.datetime | None, last: dt.datetime | None, horizon_days: int, labelled: bool) -> list[dt.datetime]:
    """`last` (the time the models see the events up to), then (with `labelled`) the cutoffs a horizon, two
    horizons ... before it that leave some history before them: at most one evaluation and MAX_TRAINING_CUTOFFS
    training cutoffs. None when no event comes at or before `last`."""
    if first is None or last is None or last < first:
        return []
    found = [last]
    step = dt.timedelta(days=horizon_days)
    while labelled and len(found) < MAX_TRAINING_CUTOFFS + 2 and last - len(found) * step > first:
        found.append(last - len(found) * step)
    return found


def feature_context(context: dict[str, Any], horizon_days: int) -> dict[str, Any]:
    return {**context, "horizon_us": horizon_days * 86_400_000_000, "trend_window_days": TREND_WINDOW_DAYS}


def features(engine: Engine, context: dict[str, Any], times: list[dt.datetime], horizon_days: int) -> pa.Table:
    """user_features for each cutoff of `times` (number i for times[i]; 0 unlabelled), as Arrow, monetary as
    double, in (cutoff, user) order."""
    engine.register_rows("feature_cutoffs", CUTOFFS, [(i, t, i > 0) for i, t in enumerate(times)])
    engine.create_view("user_features", render("predictive/user_features", engine,
                                               **feature_context(context, horizon_days)))
    table = engine.fetch_arrow(render("predictive/feature_rows", engine))
    engine.drop("user_features")
    engine.drop("feature_cutoffs")
    return table


def fit(engine: Engine, context: dict[str, Any], settings: Analytics,
        events: tuple[dt.datetime, dt.datetime] | None) -> dict[str, pa.Table]:
    """Every enabled output's table, fitted on the features of the published star (registered in `engine`) up to
    the time `span` gave with the first event (`events`)."""
    wanted = {output.part for output in enabled(settings)}
    if not wanted:
        return {}
    first, last = events or (None, None)
    horizon = settings.churn.horizon_days
    times = cutoffs(first, last, horizon, "churn" in wanted)
    table = features(engine, context, times, horizon) if times else None
    fitted: dict[str, pa.Table] = {}
    if "churn" in wanted:
        result = churn.fit(table if table is not None else _empty_features(), times, horizon)
        fitted.update(churn_model=result.model, churn_scores=result.scores)
        log.info("analytics: churn model %s", result.model.to_pylist()[0])
    if "clusters" in wanted:
        now = table.filter(pc.equal(table["cutoff_number"], 0)) if table is not None else _empty_features()
        result = clusters.fit(now, settings.clusters.k)
        fitted.update(user_clusters=result.users, cluster_profiles=result.profiles)
    return fitted


def _empty_features() -> pa.Table:
    columns = ["cutoff_number", "user_key", "user_id", "is_churned", "monetary", *churn.FEATURES, *clusters.INPUTS]
    return pa.table({column: pa.array([], pa.float64()) for column in dict.fromkeys(columns)})
