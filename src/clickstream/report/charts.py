"""The report's charts, each drawn as one static SVG (`svg.py`: no JavaScript, nothing fetched).

Each chart reads its table by column names, from rows given as dicts; it returns None when a column it needs
is missing, so a table whose shape changes shows as "not available" instead of breaking the report. Dates reach
a chart as text already bucketed ('2024-03-01', week '2024-W09'), so no viewer's time zone can move them. A chart
keeps the rows it drew (`Chart.rows`, one per mark or point) beside its SVG.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from clickstream.report import measure, svg
from clickstream.report.svg import Canvas, Linear

Rows = list[dict[str, Any]]

# A section's card is this wide at the page's widest (main 1000 px less its and the section's padding): every
# chart but the weekday/weekend panels is drawn this wide.
CARD_WIDTH = 900
# Text is measured in Liberation Sans (`measure.FONT`): the same layout whatever fonts the machine has. The page
# shows it in Liberation Sans or a font with its metrics (Arimo, Arial; Helvetica is close); a wider fallback gets
# the room of svg.WIDER, checked in a browser.
DISPLAY_FONT = '"Liberation Sans", Arimo, Arial, Helvetica, sans-serif'
PAD = {"left": 12, "right": 24, "top": 8, "bottom": 10}
# the widest label, in pixels, of a ranking's bars, a funnel's steps and the ledger's files
RANKED_LABEL = 260
STEP_LABEL = 220
FILE_LABEL = 240
# Muted, distinguishable hues; the partial-day marker is the one warm accent.
PALETTE = ["#3b6ea8", "#5aa469", "#d9a441", "#b0506f", "#7a5fa8", "#4aa3a8", "#8c8c8c"]
ACCENT = "#c0392b"
LEDGER_COLOURS = {"silver": "#3b6ea8", "quarantine": "#c0392b", "duplicates": "#d9a441", "re-delivered": "#8c8c8c"}
# Vega's "blues" scheme, light to dark: the retention heatmap's cells from a share of 0 to 1
BLUES = ["#cfe1f2", "#bed8ec", "#a8cee5", "#8fc1de", "#74b2d7", "#5ba3cf", "#4592c6", "#3181bd", "#206fb2",
         "#125ca4", "#0a4a90"]


@dataclass(frozen=True)
class Chart:
    rows: Rows  # what the chart drew, one row per mark
    svg: str


def has(rows: Rows | None, *columns: str) -> bool:
    """The table exists, has rows, and holds every column named."""
    return bool(rows) and all(column in rows[0] for column in columns)


def _left_room(labels: Iterable[str], title: str | None = None) -> float:
    """The pixels left of a plot: the padding, the widest label, its tick, and the title turned along the axis."""
    return PAD["left"] + svg.widest(labels) + svg.TICK + svg.GAP + (8 + svg.SIZE if title else 0)


def _quantity(top: float, length: float, count: int | None = None) -> tuple[float, list[float], Callable]:
    """A count or money axis over `length` pixels up to at least `top`: its domain (ending on a tick), ticks and
    format ("2,500" below a hundred thousand, "150k" above, 0 always "0")."""
    count = count or max(2, round(length / 50))
    domain, marks = svg.nice(top, count)
    return domain, marks, svg.quantity_format(max(marks))


def _notes_domain(totals: Sequence[float], notes: Sequence[str | None], plot: float, size: float) -> float:
    """The smallest domain that leaves room right of each bar for its note, and a twentieth beyond the longest."""
    need = max(totals, default=0) * 1.05
    for total, note in zip(totals, notes):
        room = plot - svg.widest([note or ""], size) - 8
        if note and room > plot / 4:
            need = max(need, total * plot / room)
    return need or 1.0


# ---- horizontal bars: the funnel, rankings, the ledger


def _bars_across(labels: list[str], parts: list[list[tuple[float, str, str]]], notes: list[str | None],
                 title: str, band: float, share: float, legend: Sequence[tuple[str, str]] = (),
                 note_size: float = 10) -> str:
    """One bar per label, top to bottom, each a stack of (value, colour, tip) parts, its note right of it."""
    canvas = Canvas()
    left, right = _left_room(labels), CARD_WIDTH - PAD["right"]
    top = PAD["top"] + (svg.LEGEND_HEIGHT if legend else 0)
    bottom = top + band * len(labels)
    totals = [sum(value for value, _, _ in stack) for stack in parts]
    domain = _notes_domain(totals, notes, right - left, note_size)
    count = max(2, round((right - left) / 110))
    marks = svg.ticks(domain, count)
    scale, fmt = Linear(domain, left, right), svg.quantity_format(max(marks))
    if legend:
        svg.legend(canvas, left, PAD["top"] + 8, legend)
    below = svg.bottom_axis(canvas, bottom, [(scale(t), fmt(t)) for t in marks], left, right, title, grid_from=top)
    canvas.open("mark")
    for i, stack in enumerate(parts):
        y, start = top + band * (i + (1 - share) / 2), 0.0
        for value, colour, tip in stack:
            canvas.rect(scale(start), y, scale(start + value) - scale(start), band * share, colour, tip)
            start += value
    canvas.close()
    canvas.open("mark-text")
    for i, note in enumerate(notes):
        if note:
            canvas.text(scale(totals[i]) + 4, top + band * (i + 0.5), note, size=note_size)
    canvas.close()
    svg.left_axis(canvas, left, [(top + band * (i + 0.5), label) for i, label in enumerate(labels)], top, bottom)
    return canvas.svg(CARD_WIDTH, bottom + below + PAD["bottom"], title)


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


def funnel(rows: Rows) -> Chart | None:
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
                     "users": users, "note": note})
        previous = step
    drawn = _bars_across([d["step"] for d in data], [[(d["users"], PALETTE[0], d["note"])] for d in data],
                         [d["note"] for d in data], "users who did the steps so far in order, within the window",
                         band=36, share=0.7, note_size=11)
    return Chart(data, drawn)


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


RANKED = 15  # bars of a ranking


def ranked_bars(rows: Rows, label: str, value: str, title: str, colour: str = PALETTE[0], limit: int = RANKED,
                value_format: str = ",d") -> Chart | None:
    """Horizontal bars of the `limit` largest values, largest on top, each labelled with its value
    (`value_format`: ",d" whole numbers, ",.2f" money)."""
    if not has(rows, label, value):
        return None
    top = heapq.nsmallest(limit, rows, key=lambda r: -float(r[value] or 0))  # stable: ties keep the table's order
    labels = measure.fit_distinct((str(r[label]) for r in top), RANKED_LABEL)
    data = [{"label": shown, "rank": rank, "value": float(r[value] or 0)}
            for rank, (shown, r) in enumerate(zip(labels, top))]
    shown = [f"{d['value']:,.2f}" if value_format == ",.2f" else f"{round(d['value']):,}" for d in data]
    drawn = _bars_across(labels, [[(d["value"], colour, f"{d['label']}: {text}")] for d, text in zip(data, shown)],
                         shown, title, band=18, share=0.9)
    return Chart(data, drawn)


def ledger(rows: Rows, limit: int = 25) -> Chart | None:
    """Per raw file, its rows stacked by where they went: silver, quarantine, duplicates, re-delivered."""
    if not has(rows, "source_file", "silver_rows", "quarantine_rows", "duplicate_rows"):
        return None
    files = sorted(rows, key=lambda r: (-int(r.get("bronze_rows") or 0), str(r["source_file"])))[:limit]
    parts = [("silver_rows", "silver"), ("quarantine_rows", "quarantine"), ("duplicate_rows", "duplicates"),
             ("redelivered_rows", "re-delivered")]
    names = measure.fit_distinct((str(r["source_file"]) for r in files), FILE_LABEL)
    data = [{"file": names[i], "went": name, "rows": int(r.get(column) or 0)}
            for i, r in enumerate(files) for column, name in parts]
    stacks = [[(d["rows"], LEDGER_COLOURS[d["went"]], f"{d['file']}: {d['rows']:,} {d['went']}")
               for d in data[i * len(parts):(i + 1) * len(parts)]] for i in range(len(files))]
    drawn = _bars_across(names, stacks, [None] * len(files), "rows", band=22, share=0.9,
                         legend=list(LEDGER_COLOURS.items()))
    return Chart(data, drawn)


# ---- vertical bars: segments, weeks, carts per day, weekday against weekend


@dataclass(frozen=True)
class _Columns:
    """Columns over categories: each a stack of (value, colour, tip) parts, an optional text above it."""
    labels: list[str]
    stacks: list[list[tuple[float, str, str]]]
    texts: list[str | None]
    shown: set[int]  # the categories whose label is drawn (a long run of days: about a dozen)
    slanted: bool = False


def _columns(canvas: Canvas, columns: _Columns, left: float, top: float, width: float, height: float,
             axis: tuple[float, list[float], Callable], title: str | None = None, x_title: str | None = None
             ) -> float:
    """Draw the columns in the plot at (left, top), `width` by `height`; returns the height below it."""
    domain, marks, fmt = axis
    scale = Linear(domain, top + height, top)
    svg.left_axis(canvas, left, [(scale(t), fmt(t)) for t in marks], top, top + height, title,
                  grid_to=left + width)
    starts, band = svg.bands(len(columns.labels), left, width)
    canvas.open("mark")
    for x, stack in zip(starts, columns.stacks):
        bottom = 0.0
        for value, colour, tip in stack:
            canvas.rect(x, scale(bottom + value), band, scale(bottom) - scale(bottom + value), colour, tip)
            bottom += value
    canvas.close()
    canvas.open("mark-text")
    for x, stack, text in zip(starts, columns.stacks, columns.texts):
        if text:
            canvas.text(x + band / 2, scale(sum(v for v, _, _ in stack)) - 8, text, anchor="middle", size=10)
    canvas.close()
    places = [(x + band / 2, label) for i, (x, label) in enumerate(zip(starts, columns.labels)) if i in columns.shown]
    return svg.bottom_axis(canvas, top + height, places, left, left + width, x_title, slanted=columns.slanted)


def _column_chart(columns: _Columns, title: str, height: float, x_title: str | None = None,
                  legend: Sequence[tuple[str, str]] = ()) -> str:
    """Columns as wide as the card, the y axis titled, an optional legend above."""
    most = max((sum(v for v, _, _ in stack) for stack in columns.stacks), default=0)
    axis = _quantity(most * (1.08 if any(columns.texts) else 1), height)
    left = _left_room([axis[2](t) for t in axis[1]], title)
    top = PAD["top"] + (svg.LEGEND_HEIGHT if legend else 0) + (14 if any(columns.texts) else 0)
    canvas = Canvas()
    if legend:
        svg.legend(canvas, left, PAD["top"] + 8, legend)
    below = _columns(canvas, columns, left, top, CARD_WIDTH - PAD["right"] - left, height, axis, title, x_title)
    return canvas.svg(CARD_WIDTH, top + height + below + PAD["bottom"], title)


def _every_nth(count: int, about: int = 12) -> set[int]:
    """About `about` evenly spaced positions of `count`, the first included."""
    return set(range(0, count, max(1, count // about)))


def segments(rows: Rows, label: str, count: str, title: str) -> Chart | None:
    """Bars of one count per segment, in the table's order, coloured by segment."""
    if not has(rows, label, count):
        return None
    plot = CARD_WIDTH - PAD["left"] - PAD["right"] - 80
    # each label as wide as its bar's band, less a gap
    names = measure.fit_distinct((str(r[label]) for r in rows), max(60, plot / max(1, len(rows)) - 12))
    data = [{"segment": name, "count": int(r[count] or 0)} for name, r in zip(names, rows)]
    columns = _Columns(names, [[(d["count"], PALETTE[i % len(PALETTE)], f"{d['segment']}: {d['count']:,}")]
                               for i, d in enumerate(data)], [f"{d['count']:,}" for d in data], set(range(len(data))))
    return Chart(data, _column_chart(columns, title, 200))


def weekly_revenue(rows: Rows, partial_days: Iterable[str]) -> Chart | None:
    """Revenue per ISO week (the days summed), a week holding a partial day marked."""
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
    colours = {"whole week": PALETTE[1], "partial week": "#b9d7be"}
    columns = _Columns([d["week"] for d in data],
                       [[(d["revenue"], colours[d["kind"]], f"{d['week']}: {d['revenue']:,.2f} ({d['kind']})")]
                        for d in data], [None] * len(data), _every_nth(len(data), 26), slanted=True)
    return Chart(data, _column_chart(columns, "revenue", 220, "ISO week (UTC)", list(colours.items())))


def cart_daily(rows: Rows) -> Chart | None:
    """Carts opened per day, stacked by how they ended: converted, abandoned, or still open at the data's end."""
    if not has(rows, "cart_date", "converted", "abandoned", "open"):
        return None
    kinds = [("converted", PALETTE[1]), ("abandoned", ACCENT), ("open", "#bbbbbb")]
    data = [{"day": str(r["cart_date"]), "ended": kind, "carts": int(r[kind] or 0)}
            for r in sorted(rows, key=lambda r: str(r["cart_date"])) for kind, _ in kinds]
    days = [d["day"] for d in data[::len(kinds)]]
    stacks = [[(d["carts"], colour, f"{d['day']}: {d['carts']:,} {d['ended']}")
               for d, (_, colour) in zip(data[i * len(kinds):(i + 1) * len(kinds)], kinds)] for i in range(len(days))]
    columns = _Columns(days, stacks, [None] * len(days), _every_nth(len(days)), slanted=True)
    return Chart(data, _column_chart(columns, "carts opened", 180, legend=kinds))


def day_types(rows: Rows) -> Chart | None:
    """Weekday against weekend, per calendar day, one small panel per measure (each on its own scale)."""
    measures = [("events_per_day", "events per day"), ("active_users_per_day", "active users per day"),
                ("sessions_per_day", "visits per day"), ("revenue_per_day", "revenue per day"),
                ("session_conversion_rate", "% of visits with a purchase")]
    present = [(c, t) for c, t in measures if has(rows, "day_type", c)]
    if not present:
        return None
    colours, width, height = {"weekday": PALETTE[0], "weekend": PALETTE[2]}, 110, 150  # each panel's plot
    data = [{"day_type": str(r["day_type"]), "measure": title,
             "value": float(r[column] or 0) * (100 if column.endswith("_rate") else 1)}
            for column, title in present for r in rows]
    canvas, x = Canvas(), float(PAD["left"])
    top = PAD["top"] + 20
    for _, title in present:
        panel = [d for d in data if d["measure"] == title]
        most = max((d["value"] for d in panel), default=0)
        domain, marks = svg.nice(most, 4)
        axis = (domain, marks, svg.decimal)  # averages per day can be below 1: decimals, not SI prefixes
        left = x + svg.widest(svg.decimal(t) for t in marks) + svg.TICK + svg.GAP
        canvas.text(left + width / 2, PAD["top"] + 8, title, anchor="middle", size=12)
        columns = _Columns([d["day_type"] for d in panel],
                           [[(d["value"], colours.get(d["day_type"], PALETTE[6]), f"{d['day_type']}: "
                              f"{svg.decimal(d['value'])}")] for d in panel], [None] * len(panel),
                           set(range(len(panel))))
        below = _columns(canvas, columns, left, top, width, height, axis)
        x = left + width + max(20, svg.widest([title], 12) - width)
    return Chart(data, canvas.svg(x + PAD["right"], top + height + below + PAD["bottom"],
                                  "weekday against weekend"))


# ---- lines: days, runs


@dataclass(frozen=True)
class _Series:
    name: str
    colour: str
    values: list[float | None]  # one per position; None: no point there
    marked: set[int]  # the positions drawn as a point (the rest only joined by the line)
    marker: str = "circle"


def _lines(canvas: Canvas, positions: list[str], series: list[_Series], left: float, top: float, width: float,
           height: float, axis: tuple[float, list[float], Callable], shown: set[int], title: str | None = None,
           x_title: str | None = None, x_axis: bool = True) -> float:
    """Lines over ordinal positions (each in the middle of its step) in the plot at (left, top); returns the
    height below it."""
    domain, marks, fmt = axis
    scale = Linear(domain, top + height, top)
    svg.left_axis(canvas, left, [(scale(t), fmt(t)) for t in marks], top, top + height, title,
                  grid_to=left + width)
    step = width / max(1, len(positions))
    xs = [left + step * (i + 0.5) for i in range(len(positions))]
    canvas.open("mark")
    for line in series:
        points = [(xs[i], scale(v)) for i, v in enumerate(line.values) if v is not None]
        canvas.polyline(points, line.colour)
        for i, v in enumerate(line.values):
            if v is not None and i in line.marked:
                tip = f"{positions[i]}: {line.name} {fmt(v)}"
                if line.marker == "diamond":
                    canvas.diamond(xs[i], scale(v), 5, ACCENT, tip)
                else:
                    canvas.circle(xs[i], scale(v), 2.5, line.colour, tip)
    canvas.close()
    if not x_axis:
        canvas.line(left, top + height, left + width, top + height, svg.DOMAIN)
        return 0.0
    places = [(xs[i], label) for i, label in enumerate(positions) if i in shown]
    return svg.bottom_axis(canvas, top + height, places, left, left + width, x_title, slanted=True)


def daily(rows: Rows, partial_days: Iterable[str]) -> Chart | None:
    """One panel per measure (users, visits, revenue) over the days; partial days drawn as red diamonds."""
    if not has(rows, "activity_date", "active_users", "sessions", "revenue"):
        return None
    partial = set(partial_days)
    measures = [("active_users", "active users"), ("sessions", "visits"), ("revenue", "revenue")]
    if all(row["revenue"] is None for row in rows):  # a feed without prices: no revenue drawn as 0
        measures = measures[:2]
    ordered = sorted(rows, key=lambda r: str(r["activity_date"]))
    days = [str(r["activity_date"]) for r in ordered]
    data = [{"day": day, "measure": label, "value": float(row[column] or 0), "partial": day in partial}
            for column, label in measures for day, row in zip(days, ordered)]
    panel, header = 110, 22  # each measure's plot height, and its name's above it
    axes = [_quantity(max((d["value"] for d in data if d["measure"] == label), default=0), panel, 4)
            for _, label in measures]
    left = _left_room(fmt(t) for _, marks, fmt in axes for t in marks)
    marked = {i for i, day in enumerate(days) if day in partial}
    canvas, top, below = Canvas(), float(PAD["top"]), 0.0
    for k, ((_, label), axis) in enumerate(zip(measures, axes)):
        canvas.text(left, top + 8, label, size=12, bold=True)
        values = [d["value"] for d in data if d["measure"] == label]
        last = k == len(measures) - 1
        below = _lines(canvas, days, [_Series(label, PALETTE[0], values, marked, "diamond")], left, top + header,
                       CARD_WIDTH - PAD["right"] - left, panel, axis, _every_nth(len(days)), x_axis=last)
        top += header + panel + (0 if last else 16)
    return Chart(data, canvas.svg(CARD_WIDTH, top + below + PAD["bottom"], "per day"))


RUN_LABELS = 8  # dated ticks of a chart over runs


def _run_positions(runs: Iterable[str]) -> tuple[list[str], set[int]]:
    """The runs, oldest first, by their start; at most RUN_LABELS of them labelled, evenly spaced back from the
    last run."""
    starts = list(dict.fromkeys(runs))
    step = -(-len(starts) // RUN_LABELS)
    return starts, set(range(len(starts) - 1, -1, -step))


def _over_runs(runs: Rows, series: list[tuple[str, str, str]], title: str, height: float,
               fmt: Callable[[float], str] | None = None) -> Chart:
    """Lines over the runs, one per (column, name, colour) of `series`, every run a point."""
    positions, shown = _run_positions(r["run"] for r in runs)
    index = {run: i for i, run in enumerate(positions)}
    data = [{"run": r["run"], "measure": name, "value": float(r[column])}
            for r in runs for column, name, _ in series if r.get(column) is not None]
    lines = []
    for _, name, colour in series:
        values: list[float | None] = [None] * len(positions)
        for d in data:
            if d["measure"] == name:
                values[index[d["run"]]] = d["value"]
        lines.append(_Series(name, colour, values, set(range(len(positions)))))
    most = max((d["value"] for d in data), default=0)
    axis = _quantity(most, height, 4)
    if fmt is not None:
        axis = (axis[0], axis[1], fmt)
    left = _left_room([axis[2](t) for t in axis[1]], title)
    canvas, top = Canvas(), PAD["top"] + svg.LEGEND_HEIGHT
    svg.legend(canvas, left, PAD["top"] + 8, [(name, colour) for _, name, colour in series])
    below = _lines(canvas, positions, lines, left, top, CARD_WIDTH - PAD["right"] - left, height, axis, shown,
                   title, "run (UTC start)")
    return Chart(data, canvas.svg(CARD_WIDTH, top + height + below + PAD["bottom"], title))


def rates_over_runs(runs: Rows) -> Chart | None:
    """The quarantine and duplicate rates of each run that judged rows, oldest first."""
    if not has(runs, "run", "quarantine_rate", "duplicate_rate"):
        return None
    return _over_runs(runs, [("quarantine_rate", "quarantined", ACCENT), ("duplicate_rate", "duplicates", PALETTE[2])],
                      "share of the run's bronze rows", 180, svg.percent)


def runs_over_time(runs: Rows, series: dict[str, str], axis_title: str) -> Chart | None:
    """Figures of each recorded run, oldest first: one line per column of `series` (column -> name)."""
    if not runs or not has(runs, "run", *series):
        return None
    colours = [PALETTE[0], ACCENT]
    return _over_runs(runs, [(column, name, colours[i % 2]) for i, (column, name) in enumerate(series.items())],
                      axis_title, 160)


# ---- the retention heatmap

RETENTION_SHOWN = 26  # cohorts, and periods of each, in the retention heatmap (half a year of weeks)


def retention_cells(rows: Rows) -> tuple[list[str], Rows, bool]:
    """The retention heatmap's cohorts, the last RETENTION_SHOWN with a known rate (daily cohorts over months are
    thousands of cells); their cells of a known rate in the first RETENTION_SHOWN periods; and whether a cell of
    a known rate was left out."""
    known = [r for r in rows if r["retention_rate"] is not None]
    cohorts = sorted({str(r["cohort_start"]) for r in known})[-RETENTION_SHOWN:]
    shown = set(cohorts)
    data = [{"cohort": str(r["cohort_start"]), "period": int(r["period"]), "rate": float(r["retention_rate"])}
            for r in known if str(r["cohort_start"]) in shown and int(r["period"]) < RETENTION_SHOWN]
    return cohorts, data, len(data) < len(known)


def _blue(rate: float) -> str:
    """The cell's colour: the scheme's stop nearest the share (0 to 1)."""
    return BLUES[round(min(1.0, max(0.0, rate)) * (len(BLUES) - 1))]


def retention(rows: Rows, period: str = "week") -> Chart | None:
    """Cohort by period heatmap: the share of each cohort back in each later period; a period not over yet at the
    data's last event (NULL rate) is left blank; the cells of `retention_cells`."""
    if not has(rows, "cohort_start", "period", "retention_rate"):
        return None
    cohorts, data, _ = retention_cells(rows)
    if not data:
        return None
    periods = list(range(max(d["period"] for d in data) + 1))
    title = f"cohort (first {period}, UTC)"
    left, top, row = _left_room(cohorts, title), float(PAD["top"]), 18.0
    width = CARD_WIDTH - PAD["right"] - left
    column = width / len(periods)
    place = {cohort: i for i, cohort in enumerate(cohorts)}
    canvas = Canvas()
    canvas.open("mark")
    for d in data:
        canvas.rect(left + column * d["period"], top + row * place[d["cohort"]], column, row, _blue(d["rate"]),
                    f"cohort {d['cohort']}, {period} {d['period']}: {d['rate']:.0%}")
    canvas.close()
    canvas.open("mark-text")
    for d in data:
        canvas.text(left + column * (d["period"] + 0.5), top + row * (place[d["cohort"]] + 0.5), f"{d['rate']:.0%}",
                    anchor="middle", size=9, colour="white" if d["rate"] > 0.5 else svg.TEXT)
    canvas.close()
    bottom = top + row * len(cohorts)
    svg.left_axis(canvas, left, [(top + row * (i + 0.5), c) for i, c in enumerate(cohorts)], top, bottom, title)
    below = svg.bottom_axis(canvas, bottom, [(left + column * (p + 0.5), str(p)) for p in periods], left,
                            left + width, f"{period}s after the cohort's {period}")
    return Chart(data, canvas.svg(CARD_WIDTH, bottom + below + PAD["bottom"], "retention by cohort"))
