"""`analytics/report.html`: one self-contained page of the results, charts as inline static SVG, no JavaScript.

It reads the published tables by name and column (Parquet through pyarrow, as any reader of the outputs would),
the quality report and the history of runs, and renders `templates/report.html.j2` with autoescape on: every
value from the data reaches the page escaped; only the charts' SVG (`charts.py`, drawn by `svg.py`, which
escapes every text and refuses markup that could run code) is inserted as markup.

A section is one function below that returns its content, or a note that its table is not built yet, and one
block in the template. To add a table: write its chart in `charts.py`, a section function here, add it to
`SECTIONS`, and a block in the template.
"""
from __future__ import annotations

import collections
import datetime as dt
import functools
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import jinja2
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from markupsafe import Markup

from clickstream import churn, clusters, incremental, storage
from clickstream.config import Config
from clickstream.context import Layout
from clickstream.report import REPORT_HTML, charts
from clickstream.report.escape import escape_terminal
from clickstream.report.tables import NO_EVENTS, abandoned_value_note, format_value, prices_note
from clickstream.sql import load_yaml
from clickstream.template_cache import bytecode_cache

log = logging.getLogger(__name__)

# Rows shown in a section's table of figures; the Parquet files and the warehouse hold all of them.
TABLE_ROWS = 20
HISTORY_RUNS = 30
EXAMPLES_PER_REASON = 3
_RAW_COLUMNS = ["UserID", "SessionID", "Timestamp", "EventType", "ProductID", "Amount", "Outcome", "raw_line"]


@dataclass
class Section:
    """What one block of the page shows: charts (SVG markup), tables of figures, notes, or why it is absent."""

    id: str
    title: str
    lead: str = ""
    charts: list[tuple[str, str]] = field(default_factory=list)  # (caption, chart name)
    tables: list[dict[str, Any]] = field(default_factory=list)  # {caption, columns, rows, total}
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # tables this section needs that are not built yet
    extra: dict[str, Any] = field(default_factory=dict)

    def draw(self, facts: "Facts", caption: str, name: str, chart: charts.Chart | None) -> bool:
        """Add the chart `name` under `caption`, unless its table lacks a column it reads (chart None)."""
        if chart is None:
            return False
        facts.svgs[name] = chart.svg
        self.charts.append((caption, name))
        return True


class Tables:
    """The published tables, read on first use by name; a table not built is None."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._cache: dict[tuple[str, str], list[dict[str, Any]] | None] = {}

    def folder(self, layer: str, name: str) -> Path:
        return (self.layout.gold if layer == "gold" else self.layout.analytics) / name

    def rows(self, name: str, layer: str = "analytics", columns: list[str] | None = None) -> list[dict] | None:
        key = (layer, name + repr(columns))
        if key not in self._cache:
            table = self.read(name, layer, columns)
            self._cache[key] = None if table is None else _python(table)
        return self._cache[key]

    def largest(self, name: str, by: str, columns: list[str], limit: int, layer: str = "gold") -> list[dict] | None:
        """The products (or other rows) with the `limit` largest positive `by`, largest first, ties in the
        table's order; the not-applicable row left out. Chosen in Arrow: a dimension of millions of rows never
        becomes Python objects."""
        table = self.read(name, layer, list(dict.fromkeys(columns + [by, "is_not_applicable"])))
        if table is None:
            return None
        shown = [c for c in columns if c in table.column_names]
        if by not in table.column_names:  # an older table: the chart, missing a column, is not drawn
            return _python(table.select(shown).slice(0, 1))
        keep = pc.greater(table[by], 0)
        if "is_not_applicable" in table.column_names:
            keep = pc.and_(keep, pc.invert(pc.fill_null(table["is_not_applicable"], False)))
        table = table.filter(keep)
        table = table.take(pc.sort_indices(table, sort_keys=[(by, "descending")])[:limit])  # a stable sort
        return _python(table.select(shown))

    def read(self, name: str, layer: str, columns: list[str] | None) -> pa.Table | None:
        """The table's columns that exist (all with None), or None when the table is not built."""
        files = storage.parquet_files(self.folder(layer, name))
        if not files:
            return None
        available = pq.read_schema(files[0]).names
        wanted = [c for c in columns if c in available] if columns else None
        return pq.read_table([str(f) for f in files], columns=wanted, partitioning=None)

    def count(self, name: str, layer: str = "analytics") -> int | None:
        files = storage.parquet_files(self.folder(layer, name))
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files) if files else None


def _python(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in table.to_pylist()]


def _plain(value: Any) -> Any:
    """A value as a chart and a table take it: money as float, dates as ISO text."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _parquet_count(folder: Path, files: list[Path] | None = None) -> int:
    files = storage.parquet_files(folder) if files is None else files
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def _table(caption: str, rows: list[dict] | None, columns: list[str] | None = None, limit: int = TABLE_ROWS) -> dict:
    """A table of figures for the template: every value formatted as text (the template escapes it)."""
    rows = rows or []
    columns = columns or (list(rows[0]) if rows else [])
    shown = [[format_value(c, row.get(c)) for c in columns] for row in rows[:limit]]
    numeric = [all(isinstance(row.get(c), (int, float)) and not isinstance(row.get(c), bool) for row in rows
                   if row.get(c) is not None) and bool(rows) for c in columns]
    return {"caption": caption, "columns": columns, "rows": shown, "total": len(rows), "numeric": numeric}


# ---- the facts every section shares


@dataclass
class Facts:
    tables: Tables
    config: Config
    quality: dict[str, Any]
    history: list[dict[str, Any]]
    first_event: dt.datetime | None
    last_event: dt.datetime | None
    svgs: dict[str, str] = field(default_factory=dict)  # the charts drawn, by name

    @property
    def partial_days(self) -> list[str]:
        return partial_days(self.first_event, self.last_event)


def _event_range(folder: Path) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The first and last event_ts of the fact, from the Parquet files' statistics (no data is read)."""
    return storage.column_range(folder, "event_ts")


# ---- the sections, in page order


def headline_figures(layout: Layout, tables: Tables | None = None) -> dict[str, Any]:
    """The headline answers, each read from its table: events, users and visits are the rows of the fact and
    its dimensions, revenue and orders come from revenue_metrics, conversion from the funnel's last step."""
    t = tables or Tables(layout)
    revenue = (t.rows("revenue_metrics") or [{}])[0]
    funnel = t.rows("conversion_funnel")
    steps = charts.funnel_steps(funnel) if charts.has(funnel, "step_number", "event_type", "users", "dropped") else []
    dates = sorted(r["date_day"] for r in t.rows("dim_date", "gold", ["date_day"]) or [])
    first, last = _event_range(layout.gold / "fct_events")
    return {"events": t.count("fct_events", "gold"), "users": t.count("dim_users", "gold"),
            "visits": t.count("dim_sessions", "gold"), "revenue": revenue.get("total_revenue"),
            "orders": revenue.get("total_orders"), "prices_note": prices_note(revenue),
            "conversion": _conversion(steps),
            "first_step": steps[0]["event_type"] if steps else None,
            "last_step": steps[-1]["event_type"] if steps else None,
            "range": f"{dates[0]} to {dates[-1]} UTC, {len(dates):,} days" if dates else None,
            "first_event": first, "last_event": last, "partial_days": partial_days(first, last)}


def _conversion(steps: list[dict]) -> float | None:
    """The ordered funnel's conversion from its first step to its last, as conversion_funnel defines it: the
    users through the last step over the users whose attempts are decided (in progress left out)."""
    if not steps:
        return None
    decided = steps[-1]["users"] + sum(step["dropped"] for step in steps[:-1])
    return steps[-1]["users"] / decided if decided else None


def partial_days(first: dt.datetime | None, last: dt.datetime | None) -> list[str]:
    """The UTC days the data covers only in part, as daily_activity's `is_partial_day` defines them (the share of
    the day from midnight, or the first event, to the next midnight, or the last event, is below one): the first
    day unless its first event is at midnight, and always the last day."""
    if first is None or last is None:
        return []
    days = [] if first.time() == dt.time(0) else [first.date().isoformat()]
    return days + [last.date().isoformat()] if last.date().isoformat() not in days else days


# a card's label where its key alone would not say which figure it is
LABELS = {"conversion": "ordered funnel conversion"}


def headline(facts: Facts) -> Section:
    section = Section("headline", "Headline")
    f = headline_figures(facts.tables.layout, facts.tables)
    figures = [
        ("events", f["events"], "rows of fct_events"),
        ("users", f["users"], "rows of dim_users"),
        ("visits", f["visits"], "rows of dim_sessions"),
        ("revenue", f["revenue"], f"{format_value('total_orders', f['orders'])} orders"
         if f["orders"] is not None else "revenue_metrics not built yet"),
        ("conversion", f["conversion"], f"of the users reaching {f['first_step']}, the share reaching "
                                        f"{f['last_step']} in order within {facts.config.analytics.funnel.window} "
                                        f"(users still in progress left out)" if f["first_step"]
         else "conversion_funnel not built yet"),
    ]
    section.extra["figures"] = [
        {"id": key, "label": LABELS.get(key, key), "value": "unknown (no prices)" if key == "revenue" and value is None and f["orders"]
         else "not available" if value is None else
         f"{value:.2%}" if key == "conversion" else f"{value:,.2f}" if key == "revenue" else f"{value:,}",
         "raw": "" if value is None else repr(value), "detail": detail} for key, value, detail in figures]
    if f["events"] == 0:
        section.notes.append(NO_EVENTS)
    if f["prices_note"]:
        section.notes.append(f["prices_note"])
    if f["range"]:
        section.extra["range"] = f["range"]
    if f["partial_days"]:
        days = f["partial_days"]
        section.notes.append(f"Partial day{'s' if len(days) > 1 else ''}: {', '.join(days)} (UTC days the data covers "
                             "only in part: it starts after midnight or ends before the next); marked in the charts.")
    return section


def funnel(facts: Facts) -> Section:
    rows = facts.tables.rows("conversion_funnel")
    window = facts.config.analytics.funnel
    within = "in one visit" if window.scope == "visit" else "across visits"
    section = Section("funnel", "Funnel", f"Users who did the steps of analytics.funnel in order, each within "
                      f"{window.window} of the first ({within}), "
                      "and the share of the step before's decided users who went on; users still inside the "
                      "window are in progress, left out of the rates.")
    if rows is None:
        section.missing.append("conversion_funnel")
        return section
    if rows and "breakdown_value" in rows[0]:
        section.notes.append(f"Broken down by {window.breakdown}: the chart sums every value, the table has each.")
    section.draw(facts, "Users per funnel step, in order", "funnel", charts.funnel(rows))
    any_order = facts.tables.rows("funnel_any_order")
    conversions = _conversions(facts, rows, any_order)
    if conversions:
        section.notes.append(conversions)
    section.tables.append(_table(f"conversion_funnel (in order within {window.window}, users in progress left "
                                 "out: the headline's conversion)", rows))
    if any_order is not None:
        section.tables.append(_table("funnel_any_order (order and time ignored, for comparison)", any_order))
    return section


def _conversions(facts: Facts, rows: list[dict], any_order: list[dict] | None) -> str:
    """The report's conversions side by side, each saying which it is: they answer different questions."""
    steps = charts.funnel_steps(rows) if charts.has(rows, "step_number", "event_type", "users", "dropped") else []
    ordered = _conversion(steps)
    parts = [f"{_percent(ordered)} is the ordered funnel's conversion (the headline's): of the users reaching "
             f"{steps[0]['event_type']}, the share reaching {steps[-1]['event_type']} in order within "
             f"{facts.config.analytics.funnel.window}, users still in progress left out"] if steps else []
    if charts.has(any_order, "step_number", "overall_conversion"):
        last = max(any_order, key=lambda r: int(r["step_number"]))
        parts.append(f"{_percent(last['overall_conversion'])} is the any-order funnel's (funnel_any_order): the "
                     "share who did every step at any time, order and window ignored")
    days = facts.tables.rows("day_type_behavior")
    if charts.has(days, "day_type", "session_conversion_rate"):
        rates = ", ".join(f"{_percent(r['session_conversion_rate'])} on {r['day_type']}s" for r in days)
        parts.append(f"visit conversion, the share of visits with a purchase, is another measure ({rates}; "
                     "Weekday vs weekend)")
    return "Conversion, each its own question: " + "; ".join(parts) + "." if parts else ""


def _percent(value: Any) -> str:
    return "not known" if value is None else f"{float(value):.2%}"


def cart(facts: Facts) -> Section:
    rows = facts.tables.rows("cart_abandonment_daily")
    window = facts.config.analytics.cart.window
    section = Section("cart", "Cart abandonment", f"Carts opened per day: converted by a purchase within {window} of "
                      f"their last add, abandoned once {window} passed without one, or still open at the data's "
                      "last event (left out of the rate).")
    if rows is None:
        section.missing.append("cart_abandonment_daily")
        return section
    section.draw(facts, "Carts per day, by how they ended", "cart", charts.cart_daily(rows))
    total = facts.tables.rows("cart_abandonment")
    note = abandoned_value_note(total if total is not None else rows)
    if note:
        section.notes.append(note)
    if total is not None:
        section.tables.append(_table("cart_abandonment", total))
    section.tables.append(_table("cart_abandonment_daily (last days)", rows[-TABLE_ROWS:]))
    return section


def daily(facts: Facts) -> Section:
    rows = facts.tables.rows("daily_activity")
    section = Section("daily", "Daily activity", "Active users, visits and revenue per UTC day; a partial day is a "
                      "red diamond.")
    if rows is None:
        section.missing.append("daily_activity")
        return section
    section.draw(facts, "Per day", "daily", charts.daily(rows, facts.partial_days))
    section.tables.append(_table("daily_activity (last days)", rows[-TABLE_ROWS:]))
    return section


def retention(facts: Facts) -> Section:
    rows = facts.tables.rows("retention")
    setting = facts.config.analytics.retention
    period = setting.period
    start = f"first {setting.start_event}" if setting.start_event else "first event"
    back = f"a {setting.return_event}" if setting.return_event else "any event"
    section = Section("retention", "Retention", f"Of the users whose {start} fell in a {period} (UTC), the share "
                      f"with {back} in each {period} after; a {period} not over yet at the data's last event is "
                      "blank.")
    if rows is None:
        section.missing.append("retention")
        return section
    shown = charts.RETENTION_SHOWN
    caption = f"Cohorts by first {period}"
    if charts.has(rows, "cohort_start", "period", "retention_rate") and charts.retention_cells(rows)[2]:
        caption = (f"The last {shown} cohorts by first {period}, each over its first {shown} {period}s (the "
                   "retention table holds them all)")
    section.draw(facts, caption, "retention", charts.retention(rows, period))
    section.tables.append(_table("retention", rows))
    return section


def products(facts: Facts) -> Section:
    t = facts.tables
    section = Section("products", "Top products", "The most viewed products, and the products that brought the "
                      "most revenue.")
    top = t.rows("top_products")
    if top is None:
        section.missing.append("top_products")
    viewed = t.largest("dim_products", "views", ["product_id", "views"], charts.RANKED)
    if viewed is None:
        section.missing.append("dim_products")
    else:
        section.draw(facts, "By views", "products_views", charts.ranked_bars(viewed, "product_id", "views", "views"))
        sold = t.largest("dim_products", "revenue", ["product_id", "revenue"], charts.RANKED)
        section.draw(facts, "By revenue", "products_revenue", charts.ranked_bars(
            sold, "product_id", "revenue", "revenue", charts.PALETTE[1], value_format=",.2f"))
    if top is not None:
        section.tables.append(_table("top_products", top))
    by_attribute = t.rows("revenue_by_attribute")  # only where gold.product_attributes names one
    if by_attribute:
        section.tables.append(_table("revenue_by_attribute", by_attribute))
    return section


def revenue(facts: Facts) -> Section:
    t = facts.tables
    section = Section("revenue", "Revenue over time", "Revenue per ISO week (UTC); a week the data covers only in "
                      "part is lighter.")
    rows = t.rows("daily_activity")
    if rows is None:
        section.missing.append("daily_activity")
    else:
        section.draw(facts, "Revenue per week", "revenue", charts.weekly_revenue(rows, facts.partial_days))
    metrics = t.rows("revenue_metrics")
    if metrics is None:
        section.missing.append("revenue_metrics")
    else:
        note = prices_note(metrics[0] if metrics else None)
        if note:
            section.notes.append(note)
        section.tables.append(_table("revenue_metrics", metrics))
    return section


def segments(facts: Facts) -> Section:
    t = facts.tables
    section = Section("segments", "Customer segments", "RFM segments of the purchasing users (recency, frequency, "
                      "monetary quintiles), and activity segments of every user.")
    for flag in facts.quality.get("analytics", {}).get("flags", []):
        section.notes.append(f"Caution: {flag.get('message', '')}")
    rfm = t.rows("rfm_segments")
    if rfm is None:
        section.missing.append("rfm_segments")
    else:
        section.draw(facts, "RFM segments", "rfm", charts.segments(rfm, "segment", "customers", "customers"))
        section.tables.append(_table("rfm_segments", rfm))
    activity = t.rows("user_segments")
    if activity is None:
        section.missing.append("user_segments")
    else:
        section.draw(facts, "Activity segments", "activity", charts.segments(activity, "segment", "users", "users"))
        section.tables.append(_table("user_segments", activity))
    return section


def predictions(facts: Facts) -> Section:
    section = Section("predictions", "Churn risk and behavioural clusters", "Each user's risk of no event in the "
                      "churn horizon after the models' time, from a model evaluated out of time against recency "
                      "alone; and clusters of users who behave alike (docs/METRICS.md).")
    model = facts.tables.rows("churn_model")
    if model is None:
        section.missing.append("churn_model")
    elif model:
        section.notes.append(churn.verdict(model[0]))
        section.tables.append(_table("churn_model", model))
        if model[0]["status"] == "ok":
            _churn_scores(facts, section)
    due = incremental.models_due(facts.tables.layout.analytics)
    if due:
        section.notes.append(f"The models are due to be fitted up to {due.replace('T', ' ')[:16]} UTC, the new "
                             "models' time: `clickstream watch` fits them when no batch waits, a run at once.")
    profiles = facts.tables.rows("cluster_profiles")
    if profiles is None:
        section.missing.append("cluster_profiles")
    elif profiles:
        section.draw(facts, "Users per behavioural cluster", "clusters", charts.segments(
            [{"cluster": f"{p['cluster']}. {p['label']}", "users": p["users"]} for p in profiles],
            "cluster", "users", "users"))
        section.notes.append(clusters.verdict(profiles[0]["silhouette"], len(profiles)))
        section.tables.append(_table("cluster_profiles", profiles))
    return section


def prediction_notes(layout: Layout) -> list[str]:
    """The churn model's verdict and how far the clusters separate, in words (for the end of a run)."""
    tables, notes = Tables(layout), []
    model, profiles = tables.rows("churn_model"), tables.rows("cluster_profiles")
    if model:
        notes.append(churn.verdict(model[0]))
    if profiles:
        notes.append(clusters.verdict(profiles[0]["silhouette"], len(profiles)) + " "
                     + "; ".join(f"{p['cluster']}: {p['label']} ({p['users']:,} users)" for p in profiles) + ".")
    return notes


def _churn_scores(facts: Facts, section: Section) -> None:
    """The scores' distribution (users per tenth of probability) and the riskiest users with their value."""
    scores = facts.tables.read("churn_scores", "analytics", ["user_key", "user_id", "churn_probability", "risk_band",
                                                              "scored_at"])
    if scores is None or scores.num_rows == 0:
        return
    scored_at = scores["scored_at"][0].as_py()
    section.notes.append(f"Scored as of {scored_at:%Y-%m-%d %H:%M} UTC, the models' time "
                         "(analytics.models_as_of): a user whose last_seen_ts is later has come back since.")
    scores = scores.drop_columns(["scored_at"])
    tenths = collections.Counter(pc.min_element_wise(pc.floor(pc.multiply(scores["churn_probability"], 10)),
                                                     9).to_pylist())
    counts = [{"probability": f"{10 * t}-{10 * t + 10}%", "users": tenths[t]} for t in range(10)]
    section.draw(facts, "Users by churn probability", "churn_scores", charts.segments(
        counts, "probability", "users", "users"))
    riskiest = scores.take(pc.sort_indices(scores, sort_keys=[("churn_probability", "descending"),
                                                              ("user_id", "ascending")])[:TABLE_ROWS])
    users = facts.tables.read("dim_users", "gold", ["user_key", "total_spent", "total_purchases", "last_seen_ts"])
    value = {} if users is None else {row["user_key"]: row for row in _python(users.filter(
        pc.is_in(users["user_key"], riskiest["user_key"])))}
    rows = [{**{k: v for k, v in row.items() if k != "user_key"},
             **{k: v for k, v in value.get(row["user_key"], {}).items() if k != "user_key"}}
            for row in _python(riskiest)]
    section.tables.append(_table("riskiest users, with their spend", rows))


def paths(facts: Facts) -> Section:
    rows = facts.tables.rows("purchase_paths")
    section = Section("paths", "Paths", "The event types just before each purchase within its visit, most "
                      "common first; and the steps visits take, repeats of one type collapsed.")
    if rows is None:
        section.missing.append("purchase_paths")
        return section
    section.draw(facts, "Paths to a purchase", "paths", charts.ranked_bars(
        rows, "path", "purchases", "purchases", charts.PALETTE[4], limit=10))
    section.tables.append(_table("purchase_paths", rows))
    edges = facts.tables.rows("paths")
    if edges is None:
        section.missing.append("paths")
        return section
    taken = [{"edge": f"{e['step']}. {e['from_event']} \u2192 {e['to_event']}", "sessions": e["sessions"]}
             for e in edges if charts.has([e], "step", "from_event", "to_event", "sessions")]
    section.draw(facts, "The steps visits take most (step. from \u2192 next, or exit)", "visit_paths",
                 charts.ranked_bars(taken, "edge", "sessions", "visits", charts.PALETTE[5], limit=12))
    section.tables.append(_table("paths", edges))
    return section


def day_types(facts: Facts) -> Section:
    rows = facts.tables.rows("day_type_behavior")
    section = Section("daytype", "Weekday vs weekend", "Activity per calendar day of each type, and visit "
                      "conversion: the share of visits with a purchase (not the funnel's share of users).")
    if rows is None:
        section.missing.append("day_type_behavior")
        return section
    section.draw(facts, "Per calendar day", "daytype", charts.day_types(rows))
    section.tables.append(_table("day_type_behavior", rows))
    return section


def data_quality(facts: Facts) -> Section:
    quality = facts.quality
    section = Section("quality", "Data quality", "Where every raw row went, why rows were quarantined, the gold "
                      "tests, and the rates of the last runs.")
    silver = quality.get("silver", {})
    ledger = silver.get("ledger") or []
    totals = silver.get("totals") or {}
    section.extra["totals"] = totals
    drawn = section.draw(facts, "Rows per raw file, by where they went", "ledger", charts.ledger(ledger))
    if not drawn and not ledger:
        section.notes.append("No silver run has judged rows yet.")
    if len(ledger) > 25:
        section.notes.append(f"The chart shows the 25 largest of {len(ledger):,} files; the table of figures all.")
    reasons = silver.get("rejection_reasons", {}).get("overall", {})
    if reasons:
        rows = [{"reason": k, "rows": v} for k, v in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
        section.draw(facts, "Quarantine reasons", "reasons",
                     charts.ranked_bars(rows, "reason", "rows", "quarantined rows", charts.ACCENT))
        section.extra["examples"] = _examples(facts.tables.layout, [r["reason"] for r in rows])
    gold = quality.get("gold", {})
    tests = gold.get("tests") or []
    section.extra["tests"] = {"passed": sum(t["status"] == "pass" for t in tests),
                              "warned": sum(t["status"] == "warn" for t in tests),
                              "failed": sum(t["status"] == "fail" for t in tests),
                              "not_passed": [t for t in tests if t["status"] != "pass"], "all": tests}
    runs = _rates(facts.history)
    if len(runs) > 1:
        section.draw(facts, f"Quarantine and duplicate rates, last {len(runs)} runs that judged rows", "rates",
                     charts.rates_over_runs(runs))
    elif runs:  # one point is no line: said in words until a second run
        section.notes.append(f"One run has judged rows so far: quarantine rate {runs[0]['quarantine_rate']:.2%}, "
                             f"duplicate rate {runs[0]['duplicate_rate']:.2%} of its bronze rows; the rates are drawn "
                             "over runs from the second one.")
    for anomaly in (quality.get("last_run") or {}).get("anomalies") or []:
        section.notes.append(f"Anomaly in the last run: {anomaly['message']}.")
    bronze = quality.get("bronze", {})
    section.extra["refused"] = bronze.get("refused") or []
    section.extra["unmatched"] = bronze.get("unmatched") or []
    section.tables.append(_table("ledger per raw file", ledger, ["source_file", "bronze_rows", "silver_rows",
                                                                  "quarantine_rows", "duplicate_rows",
                                                                  "redelivered_rows", "pending_rows", "stale_rows"],
                                 limit=100))
    return section


def _examples(layout: Layout, reasons: list[str]) -> list[dict]:
    """Up to three quarantined rows per reason, raw values as they arrived: the first rows, in the quarantine's
    order, whose `;`-joined rejection_reasons holds the reason as a whole item; found in one read of that column."""
    files = storage.parquet_files(layout.quarantine)
    if not files:
        return []
    dataset = ds.dataset([str(f) for f in files], format="parquet")
    columns = [c for c in _RAW_COLUMNS + ["source_file", "rejection_reasons"] if c in dataset.schema.names]
    rows: dict[str, list[int]] = {reason: [] for reason in reasons}
    wanted = len(reasons)
    for number, joined in enumerate(dataset.to_table(columns=["rejection_reasons"])["rejection_reasons"].to_pylist()):
        for reason in set((joined or "").split(";")):
            taken = rows.get(reason)
            if taken is not None and len(taken) < EXAMPLES_PER_REASON:
                taken.append(number)
                wanted -= len(taken) == EXAMPLES_PER_REASON
        if not wanted:
            break
    chosen = sorted({number for taken in rows.values() for number in taken})
    examples = dict(zip(chosen, _python(dataset.take(pa.array(chosen, pa.int64()), columns=columns))))
    return [{"reason": reason, "table": _table(reason, [examples[number] for number in rows[reason]], columns)}
            for reason in reasons]


def _rates(history: list[dict]) -> list[dict]:
    runs = []
    for run in history:
        totals = (run.get("silver") or {}).get("totals") or {}
        judged = totals.get("bronze_rows") or 0
        if judged:
            runs.append({"run": str(run.get("started_at", run.get("run_id", "")))[:19].replace("T", " "),
                         "quarantine_rate": totals.get("quarantine_rows", 0) / judged,
                         "duplicate_rate": totals.get("duplicate_rows", 0) / judged})
    return runs[-HISTORY_RUNS:]


def _records_text(files: list[dict]) -> str:
    """The raw files' records counted apart from the engine; a file whose count is not known is said so."""
    known = [f["records"] for f in files if f.get("records") is not None]
    unknown = len(files) - len(known)
    return f"{sum(known):,}" + (f" (and {unknown:,} file(s) not counted)" if unknown else "")


def lineage(facts: Facts) -> Section:
    t, layout, quality = facts.tables, facts.tables.layout, facts.quality
    section = Section("lineage", "Lineage", "From the raw files to the answers, with the rows at each step.")
    bronze = quality.get("bronze", {})
    files = bronze.get("files") or []
    silver_totals = (quality.get("silver") or {}).get("totals") or {}
    gold = [m["name"] for m in load_yaml("gold/models.yml")["models"] if m.get("publish", True)]
    analytics = [q["name"] for q in load_yaml("analytics/queries.yml")["queries"]]
    stages = [
        {"name": "raw", "where": "raw/", "items": [("files", f"{len(files):,}"), ("records", _records_text(files))]
         + ([("refused", f"{len(bronze.get('refused') or []):,}")] if bronze.get("refused") else [])},
        {"name": "bronze", "where": "bronze/", "items": [("rows", f"{_parquet_count(layout.bronze):,}")]},
        {"name": "silver", "where": "silver/, quarantine/, duplicates/", "items": [
            ("events", f"{_parquet_count(layout.silver):,}"),
            ("quarantined", f"{_parquet_count(layout.quarantine):,}"),
            ("duplicates", f"{_parquet_count(layout.duplicates):,}")]},
        {"name": "gold", "where": "gold/", "items": [(name, _count_text(t.count(name, "gold"))) for name in gold]},
        {"name": "analytics", "where": "analytics/", "items": [(name, _count_text(t.count(name)))
                                                               for name in analytics]},
    ]
    section.extra["stages"] = stages
    if silver_totals.get("stale_rows"):
        section.notes.append(f"{silver_totals['stale_rows']:,} row(s) of replaced file versions are still held: "
                             "run `clickstream verify`.")
    return section


def runs(facts: Facts) -> Section:
    """What the recorded runs cost: duration, CPU and rows per second over the last HISTORY_RUNS runs."""
    section = Section("runs", "Runs", f"Duration, CPU and rows ingested per second of the last {HISTORY_RUNS} runs "
                      "that recorded their cost (clickstream history lists every run).")
    shown = []
    for run in facts.history:
        cost = run.get("cost") or {}
        if "cpu_seconds" not in cost:
            continue
        rows = (run.get("bronze") or {}).get("rows") or 0
        wall = cost.get("wall_seconds") or 0.0
        shown.append({"run": str(run.get("started_at", ""))[:19].replace("T", " "), "outcome": run.get("outcome"),
                      "wall_seconds": wall, "cpu_seconds": cost["cpu_seconds"], "rows_in": rows,
                      "rows_per_second": round(rows / wall, 1) if wall else None,
                      "peak_rss_mb": round(cost.get("peak_rss_bytes", 0) / 1e6, 1)})
    shown = shown[-HISTORY_RUNS:]
    if not shown:
        section.notes.append("No run has recorded its cost yet.")
        return section
    section.draw(facts, f"Duration and CPU, last {len(shown)} runs", "runs_seconds", charts.runs_over_time(
        shown, {"wall_seconds": "duration", "cpu_seconds": "CPU"}, "seconds"))
    section.draw(facts, "Raw rows ingested per second of the run (0: nothing new)", "runs_rows", charts.runs_over_time(
        shown, {"rows_per_second": "rows per second"}, "rows per second"))
    section.tables.append(_table("runs", list(reversed(shown)), limit=HISTORY_RUNS))
    return section


def _count_text(count: int | None) -> str:
    return "not built" if count is None else f"{count:,}"


SECTIONS: list[Callable[[Facts], Section]] = [headline, funnel, cart, daily, retention, products, revenue,
                                              segments, predictions, paths, day_types, data_quality, runs,
                                              lineage]


# ---- the page


def _history(layout: Layout) -> list[dict]:
    folder = layout.reports / "history"
    if not folder.is_dir():
        return []
    runs = []
    for path in sorted(folder.glob("quality_*.json"))[-HISTORY_RUNS * 3:]:
        try:
            runs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            log.warning("report: skipped the unreadable run record %s", path)
    return runs


def _shown(value: Any) -> Any:
    """Every value the template prints: its control characters and lone surrogates as escapes (the same text the
    terminal and REPORT.md show), then HTML-escaped by autoescape. The charts' SVG (Markup) passes as it is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return escape_terminal(value)
    return value


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("clickstream.report", "templates"), autoescape=True,
                              finalize=_shown, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, bytecode_cache=bytecode_cache())


def render(layout: Layout, config: Config, quality: dict[str, Any]) -> str:
    """The page as text."""
    first, last = _event_range(layout.gold / "fct_events")
    facts = Facts(Tables(layout), config, quality, _history(layout), first, last)
    sections = [build(facts) for build in SECTIONS]
    last_run = quality.get("last_run", {})
    return _environment().get_template("report.html.j2").render(
        sections=sections, svg={name: Markup(drawn) for name, drawn in facts.svgs.items()},
        font=Markup(charts.DISPLAY_FONT),
        run_id=last_run.get("run_id", ""), engine=last_run.get("engine", ""),
        generated=(last_run.get("started_at") or "")[:19].replace("T", " "))


def warm_up() -> None:
    """Compile the page's template (once per process): the pipeline calls this in a thread while the layers run,
    with this module's imports, so the report does not wait for them at the end."""
    _environment().get_template("report.html.j2")


def write(layout: Layout, config: Config, quality: dict[str, Any]) -> Path:
    """Write `analytics/report.html` (aside, then renamed over the old one) and return its path."""
    started = time.perf_counter()
    page = render(layout, config, quality)
    path = layout.analytics / REPORT_HTML
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    log.info("report: %s (%d bytes) in %.2f s", path, len(page.encode()), time.perf_counter() - started)
    return path
