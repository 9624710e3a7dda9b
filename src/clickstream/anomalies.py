"""Anomaly checks over the run history: what passes every gate and still looks wrong.

- volume: the rows a run ingested per source against the median of the last `alerts.volume.runs` runs that
  ingested files of that source (a run with no new file is not judged);
- freshness: the data's latest event older than `alerts.freshness` (off by default);
- silence: a source with no new file for `alerts.silence` (off by default);
- rates: the quarantine and duplicate rates above `alerts.rates.factor` times their median over the last runs
  that judged rows.

Each check says what it judged (`judged`, a key per check and subject) and what it found (`found`): a check
judged and not found is one that passes, which the alerts read as a recovery.
"""
from __future__ import annotations

import datetime as dt
import logging
import statistics
from dataclasses import dataclass, field
from typing import Any

from clickstream import storage
from clickstream.config import Alerts, duration_seconds
from clickstream.context import Layout
from clickstream.report import history

log = logging.getLogger(__name__)

# The run records read back: enough for the windows, without reading a long history whole.
HISTORY_SCAN = 200
RATE_CHECKS = ("quarantine_rate", "duplicate_rate")


@dataclass
class Checked:
    found: list[dict[str, Any]] = field(default_factory=list)
    judged: list[str] = field(default_factory=list)

    def judge(self, check: str, subject: str, problem: dict[str, Any] | None) -> None:
        self.judged.append(f"{check}:{subject}")
        if problem is not None:
            self.found.append({"check": check, "subject": subject, "status": "warn", **problem})


def rows_per_source(run: dict[str, Any]) -> dict[str, int] | None:
    """The raw rows a run's bronze batch ingested per source, or None for a run that ingested no file."""
    bronze = run.get("bronze") or {}
    batch = bronze.get("batch_id")
    if not batch or not bronze.get("files"):
        return None
    found: dict[str, int] = {}
    for entry in bronze["files"]:
        parts = [part for part in entry.get("parts") or [] if part.get("batch_id") == batch]
        rows = sum(part.get("rows", 0) for part in parts) if parts else entry.get("rows", 0)
        source = entry.get("source_name", "")
        found[source] = found.get(source, 0) + rows
    return found


def check(run: dict[str, Any], history: list[dict[str, Any]], current_files: list[dict[str, Any]],
          latest_event: dt.datetime | None, settings: Alerts, now: dt.datetime) -> Checked:
    """Every anomaly check of `run` (its record as the quality report keeps it) against `history` (the earlier
    runs' records, oldest first); `current_files` are the files bronze holds now, `latest_event` the data's
    latest event (UTC), `now` the time of the run (UTC, naive)."""
    checked = Checked()
    earlier = [record for record in history if record.get("outcome") != "failed"]
    _volume(checked, run, earlier, settings)
    _rates(checked, run, earlier, settings)
    if settings.freshness is not None and latest_event is not None:
        age = (now - latest_event).total_seconds()
        limit = duration_seconds(settings.freshness)
        checked.judge("freshness", "data", None if age <= limit else {
            "value": round(age / 3600, 2), "threshold": settings.freshness,
            "message": f"the latest event ({latest_event:%Y-%m-%d %H:%M} UTC) is {_age(age)} old, more than "
                       f"alerts.freshness ({settings.freshness})"})
    if settings.silence is not None:
        _silence(checked, current_files, settings.silence, now)
    return checked


def _volume(checked: Checked, run: dict[str, Any], earlier: list[dict[str, Any]], settings: Alerts) -> None:
    rows = rows_per_source(run)
    if rows is None:
        return
    volume = settings.volume
    past: dict[str, list[int]] = {}
    for record in reversed(earlier):
        for source, count in (rows_per_source(record) or {}).items():
            past.setdefault(source, []).append(count)
    for source, count in sorted(rows.items()):
        values = past.get(source, [])[:volume.runs]
        if len(values) < volume.min_runs:
            continue
        median = statistics.median(values)
        ratio = count / median if median else float("inf") if count else 1.0
        problem = None
        if not volume.low <= ratio <= volume.high:
            side = f"below {volume.low:.0%}" if ratio < volume.low else f"above {volume.high:.0%}"
            problem = {"value": count, "baseline": median, "ratio": round(ratio, 4),
                       "threshold": [volume.low, volume.high],
                       "message": f"source {source}: {count:,} rows ingested, {ratio:.0%} of the median "
                                  f"{median:,.0f} of its last {len(values)} runs with new files ({side}: "
                                  f"alerts.volume)"}
        checked.judge("volume", source, problem)


def _rates(checked: Checked, run: dict[str, Any], earlier: list[dict[str, Any]], settings: Alerts) -> None:
    rates = settings.rates
    now = {c["name"]: c for c in (run.get("silver") or {}).get("checks") or [] if c["name"] in RATE_CHECKS}
    for name, current in sorted(now.items()):
        values = [c["value"] for record in reversed(earlier) for c in (record.get("silver") or {}).get("checks") or []
                  if c["name"] == name][:rates.runs]
        if len(values) < rates.min_runs:
            continue
        median = statistics.median(values)
        if median <= 0:
            continue
        problem = None
        if current["value"] > rates.factor * median:
            problem = {"value": current["value"], "baseline": median, "threshold": rates.factor,
                       "message": f"{name} {current['value']:.2%} is {current['value'] / median:.1f} times its "
                                  f"median {median:.2%} over the last {len(values)} runs (above "
                                  f"{rates.factor:g} times: alerts.rates)"}
        checked.judge("rate", name, problem)


def _silence(checked: Checked, files: list[dict[str, Any]], silence: str, now: dt.datetime) -> None:
    latest: dict[str, dt.datetime] = {}
    for entry in files:
        try:
            when = dt.datetime.fromisoformat(str(entry["ingested_at"]))
        except (KeyError, ValueError):
            continue
        source = entry.get("source_name", "")
        latest[source] = max(latest.get(source, when), when)
    limit = duration_seconds(silence)
    for source, when in sorted(latest.items()):
        quiet = (now - when).total_seconds()
        checked.judge("silence", source, None if quiet <= limit else {
            "value": round(quiet / 3600, 2), "threshold": silence,
            "message": f"source {source}: no new file for {_age(quiet)} (the last ingested at {when:%Y-%m-%d %H:%M} "
                       f"UTC), more than alerts.silence ({silence})"})


def _age(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.0f} minutes"


def run_checks(run: dict[str, Any], layout: Layout, settings: Alerts, now: dt.datetime) -> Checked:
    """`check` for a run about to be recorded: the earlier runs from reports/history/, the files bronze holds
    from the quality report as the earlier runs left it and this run's, the latest event from gold's fact."""
    files = {entry["path"]: entry for entry in
             (storage.read_json(layout.reports / "quality_report.json", {}).get("bronze") or {}).get("files", [])}
    files.update({entry["path"]: entry for entry in (run.get("bronze") or {}).get("files", [])})
    latest = storage.column_range(layout.gold / "fct_events", "event_ts")[1] if settings.freshness else None
    checked = check(run, history.records(layout, HISTORY_SCAN), list(files.values()), latest, settings, now)
    for anomaly in checked.found:
        log.warning("anomaly %s %s: %s", anomaly["check"], anomaly["subject"], anomaly["message"])
    return checked
