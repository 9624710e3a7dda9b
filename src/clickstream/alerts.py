"""Alerts: one message per run that has something to say, sent to `alerts.urls` (notify.py).

A run's *findings* are read from its record: the run failed, a gate or a gold test failed or warned, an
analytics result misleads, a raw file was refused, an anomaly (anomalies.py). Each has a key (the check, and
what it is about) and a kind: `fail`, `warn` or `anomaly`. `_state/alerts.json` (written under the writer lock)
holds the findings still open and when each was last sent: a finding is sent when new, when its kind changed,
or again once `alerts.repeat_after` has passed; an open finding whose check this run judged and passed is
`recovered`, said once, and closed. `alerts.on` says which kinds are sent. Nothing is written when no target
is configured.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clickstream import notify, storage
from clickstream.config import Config, duration_seconds
from clickstream.context import Layout
from clickstream.report.escape import escape_terminal, shorten

log = logging.getLogger(__name__)

STATE = "alerts.json"
TITLE_LIMIT = 60  # a phone notification shows about this much
_WORDS = {"fail": "FAILED", "warn": "warning", "anomaly": "anomaly", "recovered": "recovered"}
_HEADINGS = {"fail": "Failed", "warn": "Warnings", "anomaly": "Anomalies"}


@dataclass(frozen=True)
class Finding:
    key: str
    kind: str  # fail | warn | anomaly
    text: str


def findings(run: dict[str, Any]) -> list[Finding]:
    """What a run's record says is wrong, worst kinds first."""
    found = []
    if run.get("outcome") == "failed":
        found.append(Finding("run", "fail", f"the run failed: {run.get('error', 'unknown error')}"))
    for check in (run.get("silver") or {}).get("checks") or []:
        if check["status"] in ("warn", "fail"):
            level = check["fail"] if check["status"] == "fail" else check["warn"]
            found.append(Finding(f"gate:{check['name']}", check["status"],
                                 f"{check['name']} {check['value']:.2%} ({check['count']:,} of {check['total']:,} "
                                 f"rows), above the {check['status']} level {level:.2%}"))
    for test in (run.get("gold") or {}).get("tests") or []:
        if test["status"] in ("warn", "fail"):
            found.append(Finding(f"test:{test['test']}", test["status"],
                                 f"gold test {test['test']}: {test['failures']:,} failing rows"))
    for flag in (run.get("analytics") or {}).get("flags") or []:
        found.append(Finding(f"flag:{flag['flag']}", "warn", flag["message"]))
    for entry in (run.get("bronze") or {}).get("refused") or []:
        found.append(Finding(f"refused:{entry['path']}", "warn", f"raw file {entry['path']} refused: {entry['reason']}"))
    for anomaly in run.get("anomalies") or []:
        found.append(Finding(f"anomaly:{anomaly['check']}:{anomaly['subject']}", "anomaly", anomaly["message"]))
    order = {"fail": 0, "warn": 1, "anomaly": 2}
    # the run's failure after the checks that name its cause
    return sorted(found, key=lambda finding: (order[finding.kind], finding.key == "run"))


def judged(key: str, run: dict[str, Any]) -> bool:
    """Whether the run judged the check of `key` (a check not judged, say on a run with no new data, neither
    fails nor passes)."""
    kind, _, rest = key.partition(":")
    if kind == "run":
        return True
    if kind == "gate":
        return bool((run.get("silver") or {}).get("checks"))
    if kind == "test":
        return bool((run.get("gold") or {}).get("tests"))
    if kind == "flag":
        return (run.get("analytics") or {}).get("mode", "current") != "current"
    if kind == "refused":
        return "bronze" in run
    return rest in (run.get("anomaly_checks") or [])


@dataclass
class Plan:
    """What this run sends, and the state to keep once it is sent."""

    send: list[Finding]
    recovered: list[dict[str, Any]]
    still_open: int
    state: dict[str, Any]
    previous: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.send[0].kind if self.send else "recovered"


def plan(run: dict[str, Any], state: dict[str, Any], config: Config, now: dt.datetime) -> Plan:
    """Which findings to send (new, of another kind, or due again), which open ones recovered."""
    settings = config.alerts
    repeat = duration_seconds(settings.repeat_after)
    stamp = now.isoformat(timespec="seconds")
    previous = state.get("open", {})
    kept: dict[str, Any] = {}
    sending: list[Finding] = []
    for finding in findings(run):
        if finding.kind not in settings.on:
            continue
        before = previous.get(finding.key)
        due = (before is None or before.get("kind") != finding.kind or not before.get("sent_at")
               or (now - dt.datetime.fromisoformat(before["sent_at"])).total_seconds() >= repeat)
        if due:
            sending.append(finding)
        kept[finding.key] = {"kind": finding.kind, "text": finding.text,
                             "since": (before or {}).get("since", stamp),
                             "sent_at": stamp if due else before["sent_at"]}
    recovered = []
    for key, entry in previous.items():
        if key in kept:
            continue
        if judged(key, run):
            recovered.append({"key": key, **entry})
        else:
            kept[key] = entry
    if "recovered" not in settings.on:
        recovered = []
    return Plan(sending, recovered, len(kept) - len(sending), {"open": kept}, previous)


def title(plan: Plan, data_dir: Path) -> str:
    """Short enough for a phone: the kind, the data directory's name, the first thing to say."""
    first = plan.send[0].key if plan.send else plan.recovered[0]["key"]
    more = len(plan.send) + len(plan.recovered) - 1
    text = f"clickstream {_WORDS[plan.kind]} ({data_dir.name}): {first.split(':', 1)[-1]}"
    text += f" +{more}" if more else ""
    return text if len(text) <= TITLE_LIMIT else text[:TITLE_LIMIT - 1] + "\u2026"


def body(plan: Plan, run: dict[str, Any], layout: Layout) -> str:
    """The message: where, which run, what is wrong with its numbers and thresholds, where to look."""
    outcome = run.get("outcome", "")
    lines = [f"Data directory: {layout.data_dir.absolute()}",
             f"Run: {run.get('run_id', '')} on {run.get('engine', '')}, started {run.get('started_at', '')[:19]} "
             f"UTC: {outcome}"]
    for kind in ("fail", "warn", "anomaly"):
        items = [finding.text for finding in plan.send if finding.kind == kind]
        if items:
            lines += ["", f"{_HEADINGS[kind]}:"] + [f"- {shorten(escape_terminal(item), 400)}" for item in items]
    if plan.recovered:
        lines += ["", "Recovered:"] + [f"- {shorten(escape_terminal(entry['text']), 300)} (open since "
                                       f"{entry['since']} UTC)" for entry in plan.recovered]
    if plan.still_open:
        lines += ["", f"{plan.still_open} other open finding(s) already sent (again after alerts.repeat_after)."]
    lines += ["", f"Report: {(layout.analytics / 'report.html').absolute()}",
              f"Quality report: {(layout.reports / 'quality_report.json').absolute()}"]
    return "\n".join(lines)


def alert_run(run: dict[str, Any], config: Config, layout: Layout, now: dt.datetime) -> dict[str, Any] | None:
    """Send the run's message if it has something to say, and keep the state; what was sent and how each target
    took it (for the quality report), or None when no target is configured."""
    if not config.alerts.urls:
        return None
    path = layout.state / STATE
    state = storage.read_json(path, {})
    found = plan(run, state, config, now)
    if not found.send and not found.recovered:
        storage.write_json(path, found.state)
        return {"sent": False, "open": sorted(found.state["open"])}
    subject = title(found, layout.data_dir)
    deliveries = notify.send(config.alerts.urls, subject, body(found, run, layout), found.kind, config.alerts)
    delivered = any(delivery.ok for delivery in deliveries)
    if not delivered:  # no one heard it: send again next run
        for finding in found.send:
            found.state["open"][finding.key]["sent_at"] = (found.previous.get(finding.key) or {}).get("sent_at")
    storage.write_json(path, found.state)
    return {"sent": delivered, "kind": found.kind, "title": subject, "findings": [f.key for f in found.send],
            "recovered": [entry["key"] for entry in found.recovered], "open": sorted(found.state["open"]),
            "targets": [delivery.record() for delivery in deliveries]}


def strict_problems(run: dict[str, Any]) -> list[Finding]:
    """The warnings and anomalies that `--strict` turns into exit status 3."""
    return [finding for finding in findings(run) if finding.kind in ("warn", "anomaly")]
