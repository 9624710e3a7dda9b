"""The report's charts: Vega-Lite specs as plain dicts, rendered to static SVG by vl-convert (no JavaScript).

Each chart reads its table by column names, from rows given as dicts; it returns None when a column it needs
is missing, so a table whose shape changes shows as "not available" instead of breaking the report. Dates reach
a chart as text already bucketed ('2024-03-01', week '2024-W09'), so no viewer's time zone can move them.
"""
from __future__ import annotations

import copy
import heapq
from typing import Any, Iterable

from clickstream.report import measure, svg

Rows = list[dict[str, Any]]

# A section's card is this wide at the page's widest (main 1000 px less its and the section's padding): a chart's
# plot is the card less the padding and its y axis, estimated here (Vega-Lite's autosize "fit-x" measures it
# instead, but lays every chart out twice).
CARD_WIDTH = 900
# the daily panels' plot (a facet is not fitted): the card less the padding and the widest axis labels
DAILY_WIDTH = CARD_WIDTH - 130
# Text is measured in Liberation Sans, which vl-convert carries itself: the same widths whatever fonts the system
# has (byte-stable charts), and much faster than a system font, which vl-convert reads from disk per label. The
# page shows it in Liberation Sans or a font with its metrics (Arimo, Arial; Helvetica is close), see DISPLAY_FONT;
# a wider fallback gets the room of PADDING and is checked in a browser.
FONT = "Liberation Sans"
DISPLAY_FONT = '"Liberation Sans", Arimo, Arial, Helvetica, sans-serif'
PADDING = {"left": 40, "right": 56, "top": 6, "bottom": 12}
# the widest label, in pixels, of a ranking's bars, a funnel's steps and the ledger's files
RANKED_LABEL = 260
STEP_LABEL = 220
FILE_LABEL = 240
# Muted, distinguishable hues; the partial-day marker is the one warm accent.
PALETTE = ["#3b6ea8", "#5aa469", "#d9a441", "#b0506f", "#7a5fa8", "#4aa3a8", "#8c8c8c"]
ACCENT = "#c0392b"
LEDGER_COLOURS = {"silver": "#3b6ea8", "quarantine": "#c0392b", "duplicates": "#d9a441", "re-delivered": "#8c8c8c"}


def has(rows: Rows | None, *columns: str) -> bool:
    """The table exists, has rows, and holds every column named."""
    return bool(rows) and all(column in rows[0] for column in columns)


# A chart's rows are its spec's one named dataset, joined at the end (`_finish`).
TABLE = "table"
_TABLE = {"name": TABLE}
_TYPES = {"Q": "quantitative", "N": "nominal", "O": "ordinal"}


def channel(shorthand: str, **properties: Any) -> dict:
    """An encoding channel: "users:Q" is the field users, quantitative (N nominal, O ordinal), with `properties`
    (Vega-Lite's: title, axis, scale, sort, format ...; a None is JSON's null, e.g. no title)."""
    field, kind = shorthand.rsplit(":", 1)
    return {"field": field, "type": _TYPES[kind], **properties}


def mark(kind: str, encoding: dict, **properties: Any) -> dict:
    """A single view: its mark (with `properties`) and its encoding."""
    return {"mark": {"type": kind, **properties}, "encoding": encoding}


def _layered(*layers: dict, **properties: Any) -> dict:
    """Views drawn over each other on the chart's rows."""
    return {"data": _TABLE, "layer": list(layers), **properties}


# slanted labels drawn a tenth wider reach further down, towards the axis title, the longer they are
SLANTED_TITLE_PADDING = 20

# No text has a pixel limit (labelLimit, titleLimit 0): Vega measures a limited text again to check it fits, and
# more to cut it, which was a third of the drawing. Texts from the data are cut in Python (`measure.fit`); the rest
# are the report's own, short.
_UNLIMITED = {"labelLimit": 0, "titleLimit": 0}
_CONFIG = {
    "font": FONT, "background": "white", "padding": PADDING,
    "view": {"continuousWidth": 300, "continuousHeight": 300, "stroke": None},
    # titlePadding: room for labels drawn wider than measured (see PADDING)
    "axis": {"labelFontSize": 11, "titleFontSize": 11, "titleFontWeight": "normal", "titlePadding": 10,
             "gridColor": "#eeeeee", "domainColor": "#999999", "tickColor": "#999999", "labelColor": "#333333",
             "titleColor": "#333333", **_UNLIMITED},
    "legend": {"labelFontSize": 11, "titleFontSize": 11, "orient": "top", **_UNLIMITED},
    "header": {"labelFontSize": 12, "titleFontSize": 12, **_UNLIMITED},
}


def _finish(chart: dict, rows: Rows, width: int | None = None) -> dict:
    """The chart's Vega-Lite spec with its rows, the report's look and its plot's `width` (see `fitted`)."""
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v6.json", **chart}
    spec["datasets"] = {TABLE: rows}
    spec["config"] = copy.deepcopy(_CONFIG)
    if width is not None:
        spec["width"] = width
    return spec


def fitted(labels: Iterable[str], limit: int = 260, titled: bool = False) -> int:
    """The plot width that makes a chart as wide as its card: the card less the padding and the y axis, its
    widest label (at most `limit`), its ticks and its title."""
    widest = min(limit, max((measure.width(str(label)) for label in labels), default=0))
    return int(CARD_WIDTH - PADDING["left"] - PADDING["right"] - widest - 10 - (21 if titled else 0))


def _number_labels(values: Iterable[float]) -> list[str]:
    """The widest label `quantity_axis` gives values up to the largest of these (a tick can be one step above)."""
    top = max((abs(v) for v in values), default=0)
    return ["000.0k"] if top >= 100_000 else [f"{top * 1.2:,.0f}"]


# a d3 format with an SI prefix gives every tick the largest one's: the zero tick reads "0k"
_ZERO_AS_ZERO = "datum.value === 0 ? '0' : datum.label"


def quantity_axis(values: Iterable[float], **kwargs: Any) -> dict:
    """An axis of counts or money: plain numbers with thousands separators ("2,500") below a hundred thousand, SI
    prefixes from there ("150k", "2M"), and 0 always "0" (never "0k")."""
    if max((abs(v) for v in values), default=0) >= 100_000:
        return {"format": "~s", "labelExpr": _ZERO_AS_ZERO, **kwargs}
    return {"format": ",~r", **kwargs}


def funnel_steps(rows: Rows) -> Rows:
    """The ordered funnel's steps with every breakdown value summed (a user has one value, so users add up):
    step_number, event_type, users, in_progress, dropped, and the median seconds from the step before when
    there is no breakdown (medians do not add up)."""
    steps: dict[int, dict[str, Any]] = {}
    values = {r.get("breakdown_value") for r in rows}
    for row in rows:
        step = steps.setdefault(int(row["step_number"]), {"step_number": int(row["step_number"]),
                                                          "event_type": row["event_type"], "users": 0,
                                                          "in_progress": 0, "dropped": 0, "median": None})
        for column in ("users", "in_progress", "dropped"):
            step[column] += int(row.get(column) or 0)
        if len(values) == 1:
            step["median"] = row.get("median_seconds_from_previous")
    return [steps[k] for k in sorted(steps)]


def funnel(rows: Rows) -> dict | None:
    """Bars of users per step of the ordered funnel, each labelled with its conversion from the step before
    (users still in progress left out of it), the users in progress and the median time from the step before."""
    if not has(rows, "step_number", "event_type", "users", "dropped"):
        return None
    data = []
    previous = None
    for step in funnel_steps(rows):
        users = step["users"]
        decided = users + (previous["dropped"] if previous else 0)
        note = f"{users:,} users"
        if previous is not None:
            note += f", {users / decided:.1%} of the step before" if decided else ", no user decided yet"
        if step["in_progress"]:
            note += f", {step['in_progress']:,} in progress"
        if step["median"] is not None:
            note += f", median {_duration(step['median'])}"
        data.append({"step": measure.fit(f"{step['step_number']}. {step['event_type']}", STEP_LABEL),
                     "users": users, "note": note, "order": step["step_number"]})
        previous = step
    steps = channel("step:N", sort={"field": "order"}, title=None)
    most = max(d["users"] for d in data) * 1.9
    bars = mark("bar", {"y": steps, "x": channel(
        "users:Q", title="users who did the steps so far in order, within the window",
        axis=quantity_axis([most], tickCount=5), scale={"domainMax": most or 1})},
        color=PALETTE[0], height={"band": 0.7})
    text = mark("text", {"y": steps, "x": channel("users:Q"), "text": channel("note:N")},
                align="left", dx=4, fontSize=11, color="#333333")
    return _finish(_layered(bars, text, height=36 * len(data)), data, fitted((d["step"] for d in data), STEP_LABEL))


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def daily(rows: Rows, partial_days: Iterable[str]) -> dict | None:
    """One panel per measure (users, visits, revenue) over the days; partial days drawn as red diamonds."""
    if not has(rows, "activity_date", "active_users", "sessions", "revenue"):
        return None
    partial = set(partial_days)
    measures = [("active_users", "active users"), ("sessions", "visits"), ("revenue", "revenue")]
    if all(row["revenue"] is None for row in rows):  # a feed without prices: no revenue drawn as 0
        measures = measures[:2]
    data = [{"day": str(row["activity_date"]), "measure": label, "value": float(row[column] or 0),
             "partial": str(row["activity_date"]) in partial}
            for row in rows for column, label in measures]
    days = sorted({d["day"] for d in data})
    step = max(1, len(days) // 12)  # about a dozen dated ticks: measuring a label per day is most of the cost
    encoding = {"x": channel("day:O", title=None, sort=days,
                             axis={"labelAngle": -45, "values": days[::step], "labelOverlap": False}),
                "y": channel("value:Q", title=None, axis=quantity_axis(d["value"] for d in data))}
    line = mark("line", encoding, color=PALETTE[0], strokeWidth=1.5)
    # only the partial days get a point: a point per day would triple the drawing for nothing
    points = {**mark("point", encoding, filled=True, size=60, shape="diamond", color=ACCENT),
              "transform": [{"filter": "datum.partial"}]}
    chart = {"data": _TABLE,
             "facet": {"row": channel("measure:N", title=None, sort=[label for _, label in measures],
                                      header={"labelAngle": 0, "labelAlign": "left", "labelOrient": "top",
                                              "labelFontWeight": "bold"})},
             "spec": {"layer": [line, points], "width": DAILY_WIDTH, "height": 110},
             "resolve": {"scale": {"y": "independent"}}}
    return _finish(chart, data)


def weekly_revenue(rows: Rows, partial_days: Iterable[str]) -> dict | None:
    """Revenue and orders per ISO week (the days summed), a week holding a partial day marked."""
    if not has(rows, "activity_date", "revenue") or all(row["revenue"] is None for row in rows):
        return None  # no revenue known (a feed without prices): no bars of 0
    import datetime as dt

    partial = set(partial_days)
    weeks: dict[str, dict[str, Any]] = {}
    for row in rows:
        day = row["activity_date"]
        day = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day))
        year, week, _ = day.isocalendar()
        key = f"{year}-W{week:02d}"
        entry = weeks.setdefault(key, {"week": key, "revenue": 0.0, "days": 0, "partial": False})
        entry["revenue"] += float(row["revenue"] or 0)
        entry["days"] += 1
        entry["partial"] = entry["partial"] or str(row["activity_date"]) in partial
    data = [{**w, "kind": "partial week" if w["partial"] or w["days"] < 7 else "whole week"}
            for w in sorted(weeks.values(), key=lambda w: w["week"])]
    chart = {"data": _TABLE, **mark("bar", {
        "x": channel("week:O", title="ISO week (UTC)",
                     axis={"labelAngle": -45, "labelOverlap": True, "titlePadding": SLANTED_TITLE_PADDING}),
        "y": channel("revenue:Q", title="revenue", axis=quantity_axis(d["revenue"] for d in data)),
        "color": channel("kind:N", title=None, scale={"domain": ["whole week", "partial week"],
                                                      "range": [PALETTE[1], "#b9d7be"]})}), "height": 220}
    return _finish(chart, data, fitted(_number_labels(d["revenue"] for d in data), titled=True))


RANKED = 15  # bars of a ranking


def ranked_bars(rows: Rows, label: str, value: str, title: str, colour: str = PALETTE[0], limit: int = RANKED,
                value_format: str = ",d") -> dict | None:
    """Horizontal bars of the `limit` largest values, largest on top, each labelled with its value."""
    if not has(rows, label, value):
        return None
    top = heapq.nsmallest(limit, rows, key=lambda r: -float(r[value] or 0))  # stable: ties keep the table's order
    labels = measure.fit_distinct((str(r[label]) for r in top), RANKED_LABEL)
    data = [{"label": shown, "rank": rank, "value": float(r[value] or 0)}
            for rank, (shown, r) in enumerate(zip(labels, top))]
    bar = channel("label:N", sort={"field": "rank"}, title=None)
    most = max(d["value"] for d in data) * 1.15
    bars = mark("bar", {"y": bar, "x": channel("value:Q", title=title, axis=quantity_axis([most], tickCount=5),
                                               scale={"domainMax": most or 1})}, color=colour)
    text = mark("text", {"y": bar, "x": channel("value:Q"), "text": channel("value:Q", format=value_format)},
                align="left", dx=3, fontSize=10, color="#333333")
    return _finish(_layered(bars, text, height=max(60, 18 * len(data))), data, fitted(labels, RANKED_LABEL))


def segments(rows: Rows, label: str, count: str, title: str) -> dict | None:
    """Bars of one count per segment, in the table's order, coloured by segment."""
    if not has(rows, label, count):
        return None
    plot = fitted(_number_labels(int(r[count] or 0) for r in rows), titled=True)
    # each label as wide as its bar's band, less a gap
    names = measure.fit_distinct((str(r[label]) for r in rows), max(60, plot / max(1, len(rows)) - 12))
    data = [{"segment": name, "count": int(r[count] or 0)} for name, r in zip(names, rows)]
    segment = channel("segment:N", sort=names, title=None, axis={"labelAngle": 0})
    bars = mark("bar", {"x": segment,
                        "y": channel("count:Q", title=title, axis=quantity_axis(d["count"] for d in data)),
                        "color": channel("segment:N", legend=None, sort=names, scale={"range": PALETTE})})
    text = mark("text", {"x": segment, "y": channel("count:Q"), "text": channel("count:Q", format=",")},
                dy=-6, fontSize=10, color="#333333")
    return _finish(_layered(bars, text, height=200), data, plot)


def day_types(rows: Rows) -> dict | None:
    """Weekday against weekend, per calendar day, one small panel per measure (each on its own scale)."""
    measures = [("events_per_day", "events per day"), ("active_users_per_day", "active users per day"),
                ("sessions_per_day", "visits per day"), ("revenue_per_day", "revenue per day"),
                ("session_conversion_rate", "% of visits with a purchase")]
    present = [(c, t) for c, t in measures if has(rows, "day_type", c)]
    if not present:
        return None
    data = [{"day_type": str(r["day_type"]), "measure": title,
             "value": float(r[column] or 0) * (100 if column.endswith("_rate") else 1)}
            for r in rows for column, title in present]
    panel = mark("bar", {
        "x": channel("day_type:N", title=None, axis={"labelAngle": 0}),
        # averages per day can be below 1: plain decimals, not SI prefixes ("400m")
        "y": channel("value:Q", title=None, axis={"format": ",.2~f"}),
        "color": channel("day_type:N", legend=None, scale={"domain": ["weekday", "weekend"],
                                                           "range": [PALETTE[0], PALETTE[2]]})})
    chart = {"data": _TABLE, "facet": {"column": channel("measure:N", title=None, sort=[t for _, t in present])},
             "spec": {**panel, "width": 110, "height": 150}, "resolve": {"scale": {"y": "independent"}}}
    return _finish(chart, data)


def ledger(rows: Rows, limit: int = 25) -> dict | None:
    """Per raw file, its rows stacked by where they went: silver, quarantine, duplicates, re-delivered."""
    if not has(rows, "source_file", "silver_rows", "quarantine_rows", "duplicate_rows"):
        return None
    files = sorted(rows, key=lambda r: (-int(r.get("bronze_rows") or 0), str(r["source_file"])))[:limit]
    parts = [("silver_rows", "silver"), ("quarantine_rows", "quarantine"), ("duplicate_rows", "duplicates"),
             ("redelivered_rows", "re-delivered")]
    names = measure.fit_distinct((str(r["source_file"]) for r in files), FILE_LABEL)
    data = [{"file": names[i], "order": i, "went": name, "rows": int(r.get(column) or 0),
             "stack": k} for i, r in enumerate(files) for k, (column, name) in enumerate(parts)]
    chart = {"data": _TABLE, **mark("bar", {
        "y": channel("file:N", sort={"field": "order"}, title=None),
        "x": channel("rows:Q", title="rows", stack="zero",
                     axis=quantity_axis((int(r.get("bronze_rows") or 0) for r in files), tickCount=5)),
        "color": channel("went:N", title=None, sort=list(LEDGER_COLOURS),
                         scale={"domain": list(LEDGER_COLOURS), "range": list(LEDGER_COLOURS.values())}),
        "order": channel("stack:Q")}), "height": max(40, 22 * len(files))}
    return _finish(chart, data, fitted(names, FILE_LABEL))


RUN_LABELS = 8  # dated ticks of a chart over runs: a label hidden as overlapping is measured all the same


def _run_axis(runs: Iterable[str]) -> dict:
    """The runs, oldest first, by their start; at most RUN_LABELS of them labelled, evenly spaced back from the
    last run."""
    starts = list(dict.fromkeys(runs))
    step = -(-len(starts) // RUN_LABELS)
    return channel("run:O", sort={"field": "order"}, title="run (UTC start)",
                   axis={"labelAngle": -45, "values": starts[::-step][::-1], "labelOverlap": False,
                         "titlePadding": SLANTED_TITLE_PADDING})


def rates_over_runs(runs: Rows) -> dict | None:
    """The quarantine and duplicate rates of each run that judged rows, oldest first."""
    if not has(runs, "run", "quarantine_rate", "duplicate_rate"):
        return None
    data = [{"run": r["run"], "order": i, "rate": name, "value": float(r[column])}
            for i, r in enumerate(runs) for column, name in (("quarantine_rate", "quarantined"),
                                                            ("duplicate_rate", "duplicates"))]
    chart = {"data": _TABLE, **mark("line", {
        "x": _run_axis(r["run"] for r in runs),
        "y": channel("value:Q", title="share of the run's bronze rows", axis={"format": "%"}),
        "color": channel("rate:N", title=None, scale={"domain": ["quarantined", "duplicates"],
                                                      "range": [ACCENT, PALETTE[2]]})}, point=True), "height": 180}
    return _finish(chart, data, fitted(["00.0%"], titled=True))


def runs_over_time(runs: Rows, series: dict[str, str], axis_title: str) -> dict | None:
    """Figures of each recorded run, oldest first: one line per column of `series` (column -> name)."""
    if not runs or not has(runs, "run", *series):
        return None
    data = [{"run": r["run"], "order": i, "measure": name, "value": float(r[column])}
            for i, r in enumerate(runs) for column, name in series.items() if r[column] is not None]
    chart = {"data": _TABLE, **mark("line", {
        "x": _run_axis(r["run"] for r in runs),
        "y": channel("value:Q", title=axis_title),
        "color": channel("measure:N", title=None, scale={"domain": list(series.values()),
                                                         "range": [PALETTE[0], ACCENT][:len(series)]})},
        point=True), "height": 160}
    return _finish(chart, data, fitted(["0000000.0"], titled=True))


RETENTION_SHOWN = 26  # cohorts, and periods of each, in the retention heatmap (half a year of weeks)


def retention_cells(rows: Rows) -> tuple[list[str], Rows, bool]:
    """The retention heatmap's cohorts, the last RETENTION_SHOWN with a known rate (a cell's label is measured as
    it is drawn, and daily cohorts over months are thousands of cells); their cells of a known rate in the first
    RETENTION_SHOWN periods; and whether a cell of a known rate was left out."""
    known = [r for r in rows if r["retention_rate"] is not None]
    cohorts = sorted({str(r["cohort_start"]) for r in known})[-RETENTION_SHOWN:]
    shown = set(cohorts)
    data = [{"cohort": str(r["cohort_start"]), "period": int(r["period"]), "rate": float(r["retention_rate"])}
            for r in known if str(r["cohort_start"]) in shown and int(r["period"]) < RETENTION_SHOWN]
    return cohorts, data, len(data) < len(known)


def retention(rows: Rows, period: str = "week") -> dict | None:
    """Cohort by period heatmap: the share of each cohort back in each later period; a period not over yet at the
    data's last event (NULL rate) is left blank; the cells of `retention_cells`."""
    if not has(rows, "cohort_start", "period", "retention_rate"):
        return None
    cohorts, data, _ = retention_cells(rows)
    if not data:
        return None
    place = {"x": channel("period:O", title=f"{period}s after the cohort's {period}", axis={"labelAngle": 0}),
             "y": channel("cohort:O", title=f"cohort (first {period}, UTC)", sort=cohorts)}
    # each cell is labelled with its share: no colour legend (a gradient's id changes from one drawing to the next)
    cells = mark("rect", {**place, "color": channel("rate:Q", legend=None,
                                                    scale={"scheme": "blues", "domain": [0, 1]})})
    text = mark("text", {**place, "text": channel("rate:Q", format=".0%"),
                         "color": {"condition": {"test": "datum.rate > 0.5", "value": "white"},
                                   "value": "#333333"}}, fontSize=9)
    return _finish(_layered(cells, text, height=max(60, 18 * len(cohorts))), data, fitted(cohorts, titled=True))


def cart_daily(rows: Rows) -> dict | None:
    """Carts opened per day, stacked by how they ended: converted, abandoned, or still open at the data's end."""
    if not has(rows, "cart_date", "converted", "abandoned", "open"):
        return None
    kinds = [("converted", PALETTE[1]), ("abandoned", ACCENT), ("open", "#bbbbbb")]
    data = [{"day": str(r["cart_date"]), "ended": kind, "carts": int(r[kind] or 0), "stack": k}
            for r in rows for k, (kind, _) in enumerate(kinds)]
    days = sorted({d["day"] for d in data})
    step = max(1, len(days) // 12)
    totals = [sum(int(r[kind] or 0) for kind, _ in kinds) for r in rows]  # a day's stacked bar
    chart = {"data": _TABLE, **mark("bar", {
        "x": channel("day:O", title=None, sort=days,
                     axis={"labelAngle": -45, "values": days[::step], "labelOverlap": False}),
        "y": channel("carts:Q", title="carts opened", stack="zero", axis=quantity_axis(totals)),
        "color": channel("ended:N", title=None, sort=[k for k, _ in kinds],
                         scale={"domain": [k for k, _ in kinds], "range": [c for _, c in kinds]}),
        "order": channel("stack:Q")}), "height": 180}
    return _finish(chart, data, fitted(_number_labels(totals), titled=True))


def warm_up() -> None:
    """Start vl-convert's renderer in this process (about 0.4 s, once per process): for a process that draws its
    charts itself (no helper process)."""
    svg.warm_up()
