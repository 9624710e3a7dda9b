"""The runs recorded under `reports/history/`, one line each: what `clickstream history` lists."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from clickstream.context import Layout

log = logging.getLogger(__name__)

COST_COLUMNS = ["cpu_seconds", "peak_rss_bytes", "bytes_read", "bytes_written", "estimated_run_cost"]
COLUMNS = ["run_id", "started_at", "seconds", "engine", "layers", "rows_in", "rows_out", *COST_COLUMNS, "outcome",
           "gates"]


def records(layout: Layout, last: int | None = None) -> list[dict[str, Any]]:
    """Every run's record (or the `last` ones), oldest first (run ids sort by start time)."""
    folder = layout.reports / "history"
    found = []
    paths = sorted(folder.glob("quality_*.json")) if folder.is_dir() else []
    for path in paths[-last:] if last else paths:
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("history: skipped %s (%s)", path, exc)
    return found


def _gates(record: dict[str, Any]) -> str:
    parts = []
    for check in (record.get("silver") or {}).get("checks") or []:
        parts.append(f"{check['name']} {check['status']}")
    tests = (record.get("gold") or {}).get("tests") or []
    if tests:
        passed = sum(t["status"] == "pass" for t in tests)
        parts.append(f"gold tests {passed}/{len(tests)} passed")
    return "; ".join(parts) or "-"


def _outcome(record: dict[str, Any]) -> str:
    if "outcome" in record:
        return record["outcome"]
    # records written before outcomes were: a run that finished every layer it asked for succeeded
    return "succeeded" if set(record.get("layers", [])) <= set(record.get("timings_seconds", {})) else "failed"


def row(record: dict[str, Any]) -> dict[str, Any]:
    """One run: rows in are the raw rows bronze ingested, rows out the events silver added; its cost (none for a
    run recorded before costs were)."""
    timings = record.get("timings_seconds") or {}
    bronze = record.get("bronze") or {}
    silver_totals = (record.get("silver") or {}).get("totals") or {}
    return {"run_id": record.get("run_id", ""), "started_at": str(record.get("started_at", ""))[:19].replace("T", " "),
            "seconds": round(sum(timings.values()), 2), "engine": record.get("engine", ""),
            "layers": ",".join(record.get("layers", [])), "rows_in": bronze.get("rows", 0) if bronze else None,
            "rows_out": silver_totals.get("silver_rows") if silver_totals else (0 if "silver" in record else None),
            **{column: (record.get("cost") or {}).get(column) for column in COST_COLUMNS},
            "outcome": _outcome(record) + (f": {record['error']}" if record.get("error") else ""),
            "gates": _gates(record)}


def rows(data_dir: Path, last: int | None = None) -> list[dict[str, Any]]:
    found = [row(r) for r in records(Layout(Path(data_dir)))]
    return found[-last:] if last else found


PROFILE_COLUMNS = ["layer", "step", "wall_seconds", "cpu_seconds"]


def profile(data_dir: Path, run_id: str | None = None) -> tuple[str, list[dict[str, Any]]] | None:
    """The profile of run `run_id` (default: the latest run that recorded one): its id and its steps; None if
    there is none."""
    for record in reversed(records(Layout(Path(data_dir)))):
        if (run_id is None or record.get("run_id") == run_id) and "profile" in record:
            return record["run_id"], record["profile"]
    return None
