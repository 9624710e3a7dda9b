"""Plain-text tables for the terminal and the Markdown report: numbers right-aligned, rates as percentages.

Every value, column name and title is escaped for where it is shown (clickstream.report.escape).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Iterable

from clickstream.report.escape import escape_markdown, escape_terminal

if TYPE_CHECKING:
    from clickstream.analytics import QueryResult


def is_rate(column: str) -> bool:
    """A column holding a share of 1, shown as a percentage wherever it is shown (conversion_from_first too)."""
    return column.endswith(("_rate", "_conversion")) or column.startswith(("share_", "conversion_"))


def format_value(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (float, Decimal)) and is_rate(column):
        return f"{value:.2%}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}" if not column.endswith(("_key", "_number", "_rank")) else str(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_numeric(values: Iterable[Any]) -> bool:
    return all(isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in values if v is not None)


def text_table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    names = [escape_terminal(c) for c in columns]
    cells = [[escape_terminal(format_value(c, v)) for c, v in zip(columns, row)] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    numeric = [_is_numeric(row[i] for row in rows) and rows != [] for i in range(len(columns))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(names), line(["-" * w for w in widths])] + [line(r) for r in cells])


def render_results(results: list[QueryResult]) -> str:
    blocks = []
    for result in results:
        shown = len(result.rows)
        more = f" (first {shown} of {result.total_rows:,} rows)" if result.total_rows > shown else ""
        blocks.append(f"{escape_terminal(result.title)}{more}\n{text_table(result.columns, result.rows)}")
    return "\n\n".join(blocks)


NO_EVENTS = ("No events: silver holds none (every line so far was refused, quarantined, a duplicate or replaced by a "
             "version without it), so the star and every answer are empty.")


def prices_note(metrics: dict[str, Any] | None) -> str | None:
    """What the report says when purchases carry no amount (revenue_metrics' one row), or None when all do."""
    metrics = metrics or {}
    orders, unpriced = metrics.get("total_orders") or 0, metrics.get("orders_without_amount") or 0
    if orders and metrics.get("total_revenue") is None:
        return (f"This feed carries no prices: none of its {orders:,} orders has an amount, so revenue, average "
                "order value, spend and the RFM monetary score are unknown (shown as -), not 0.")
    if unpriced:
        return (f"{unpriced:,} of the {orders:,} orders carry no amount: revenue and spend sum the known amounts, "
                "and the average order value is over the orders that have one.")
    return None


# Which conversion each table holds: the three answer different questions and differ by design.
CONVERSIONS = ("Three conversions, each its own question: conversion_funnel's conversion_from_first is the ordered "
               "funnel's (users who did the steps in order within the window, over the users decided, those still "
               "in progress left out; the report's headline figure); funnel_any_order's overall_conversion is the "
               "share who did every step at any time, order and window ignored; day_type_behavior's "
               "session_conversion_rate is visit conversion, the share of visits with a purchase.")


def abandoned_value_note(rows: list[dict[str, Any]] | None) -> str | None:
    """Why abandoned_value shows "-" (cart_abandonment's rule: unknown when no add_to_cart carries an amount), or
    None when it is known."""
    rows = rows or []
    if rows and "abandoned_value" in rows[0] and all(r["abandoned_value"] is None for r in rows):
        return ("abandoned_value is unknown (-), not 0: no add_to_cart event of this feed carries an amount, so the "
                "value left in abandoned carts cannot be known.")
    return None


def _result_notes(result: QueryResult) -> list[str]:
    if result.name == "conversion_funnel":
        return [CONVERSIONS]
    if result.name.startswith("cart_abandonment"):
        note = abandoned_value_note([dict(zip(result.columns, row)) for row in result.rows])
        return [note] if note else []
    return []


def markdown_report(results: list[QueryResult], run_id: str, events: int | None = None) -> str:
    """The answers as Markdown; with `events` 0 (the fact is empty), it says so first."""
    parts = [f"# Clickstream analytics\n\nRun {escape_markdown(run_id)}. Full results are the Parquet tables (and CSV "
             f"files) beside this report.\n"]
    if events == 0:
        parts.append(f"**{NO_EVENTS}**\n")
    metrics = next((dict(zip(r.columns, r.rows[0])) for r in results if r.name == "revenue_metrics" and r.rows), None)
    note = prices_note(metrics)
    if note:
        parts.append(f"**{escape_markdown(note)}**\n")
    for result in results:
        parts.append(f"## {escape_markdown(result.title)}\n\n{escape_markdown(result.description)}. "
                     f"{result.total_rows:,} row{'' if result.total_rows == 1 else 's'}"
                     + (f", first {len(result.rows)} shown" if result.total_rows > len(result.rows) else "") + ".\n")
        if result.columns:
            header = "| " + " | ".join(escape_markdown(c) for c in result.columns) + " |"
            rule = "| " + " | ".join("---" for _ in result.columns) + " |"
            body = ["| " + " | ".join(escape_markdown(format_value(c, v)) for c, v in zip(result.columns, row))
                    + " |" for row in result.rows]
            parts.append("\n".join([header, rule, *body]) + "\n")
        parts.extend(f"{escape_markdown(note)}\n" for note in _result_notes(result))
    return "\n".join(parts)


def formatted(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> str:
    """Rows for the terminal as `table` (aligned), `csv` (a header line, values as text) or `json` (one object
    per line). Every value is escaped for the terminal: control characters as escapes in the table and the
    CSV, JSON escapes (ASCII only) in JSON, so no output can move the cursor or forge a line."""
    if fmt == "table":
        return text_table(columns, rows) + "\n"
    if fmt == "json":
        return "".join(json.dumps(dict(zip(columns, row)), ensure_ascii=True, default=_json_value) + "\n"
                       for row in rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([escape_terminal(c) for c in columns])
    for row in rows:
        writer.writerow(["" if v is None else escape_terminal(_csv_value(v)) for v in row])
    return out.getvalue()


def _csv_value(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    return str(value)
