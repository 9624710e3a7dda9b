"""Sending one message to every target of `alerts.urls` through Apprise, bounded in time, secrets kept out.

A URL's `${NAME}` references are replaced by environment variables only here, when sending. Targets are named
by their place in the list and their scheme (`target 1 (json)`), never by the URL, which may hold a secret;
Apprise's own log lines are kept off the logs (their text, with every expanded secret masked, becomes the
reason of a failed delivery). Each target is tried in its own thread, with up to `retries` attempts after a
failed one, all within `timeout_seconds`: a target that cannot be reached costs at most that long, and never
fails the run.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from clickstream.config import ENV_REFERENCE, Alerts
from clickstream.report.escape import shorten

log = logging.getLogger(__name__)

MASK = "***"
_PAUSE_SECONDS = 0.5  # between two attempts at one target
_KIND_TYPES = {"fail": "failure", "warn": "warning", "anomaly": "warning", "recovered": "success", "test": "info"}


@dataclass
class Delivery:
    target: str
    ok: bool
    attempts: int
    seconds: float
    error: str | None = None

    def record(self) -> dict[str, Any]:
        return asdict(self)


class MissingVariable(Exception):
    pass


def target_name(index: int, url: str) -> str:
    return f"target {index + 1} ({url.split('://', 1)[0].lower()})"


def expand(url: str) -> tuple[str, list[str]]:
    """The URL with `${NAME}` replaced by environment variable NAME, and the values put in (to be masked)."""
    secrets: list[str] = []

    def value(match: Any) -> str:
        found = os.environ.get(match.group(1))
        if found is None:
            raise MissingVariable(f"environment variable {match.group(1)} is not set")
        secrets.append(found)
        return found

    return ENV_REFERENCE.sub(value, url), secrets


class _Collected(logging.Handler):
    """Apprise's log lines, per sending thread, kept off every other handler."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: dict[int, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.lines.setdefault(threading.get_ident(), []).append(record.getMessage())


_COLLECTED = _Collected()


def _quiet_apprise() -> None:
    logger = logging.getLogger("apprise")
    logger.propagate = False
    if _COLLECTED not in logger.handlers:
        logger.addHandler(_COLLECTED)


def _mask(text: str, secrets: list[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _prepared(url: str, out: dict[str, Any]) -> Any:
    """The Apprise plugin of a target's URL with its secrets put in (noted in `out`, to be masked), or None with
    the reason in `out`. Done before the target's time starts: Apprise loads its plugins on first use."""
    import apprise

    try:
        expanded, secrets = expand(url)
    except MissingVariable as exc:
        out["error"] = str(exc)
        return None
    out["secrets"] = secrets + [expanded]
    try:
        plugin = apprise.Apprise.instantiate(expanded)
    except Exception as exc:  # noqa: BLE001 - a target's failure is its delivery's, never the run's
        out["error"] = f"{type(exc).__name__}: {exc}"
        return None
    if plugin is None:
        out["error"] = "not a URL Apprise can send to (see `clickstream alert-test`)"
    return plugin


def _attempts(plugin: Any, title: str, body: str, kind: str, settings: Alerts, out: dict[str, Any]) -> None:
    """Try one target until it takes the message, the retries are spent or the time is up; results in `out`."""
    started = time.monotonic()
    deadline = started + settings.timeout_seconds
    try:
        for attempt in range(1, settings.retries + 2):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            plugin.socket_connect_timeout = plugin.socket_read_timeout = max(left, 0.1)
            out["attempts"] = attempt
            if plugin.notify(body=body, title=title, notify_type=_KIND_TYPES.get(kind, "info")):
                out.update(ok=True, error=None)
                return
            lines = _COLLECTED.lines.pop(threading.get_ident(), [])
            out["error"] = lines[-1] if lines else "the service refused the message"
            if deadline - time.monotonic() > _PAUSE_SECONDS:
                time.sleep(_PAUSE_SECONDS)
    except Exception as exc:  # noqa: BLE001 - a target's failure is its delivery's, never the run's
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        out["seconds"] = round(time.monotonic() - started, 3)


def send(urls: list[str], title: str, body: str, kind: str, settings: Alerts) -> list[Delivery]:
    """Send the message to every target at once; each target's delivery, in the order of `urls`."""
    _quiet_apprise()
    outcomes: list[dict[str, Any]] = [{"ok": False, "attempts": 0, "error": None, "secrets": []} for _ in urls]
    plugins = [_prepared(url, out) for url, out in zip(urls, outcomes)]
    threads = [threading.Thread(target=_attempts, args=(plugin, title, body, kind, settings, out), daemon=True,
                                name=f"alert-{index + 1}")
               for index, (plugin, out) in enumerate(zip(plugins, outcomes)) if plugin is not None]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    deliveries = []
    running = iter(threads)
    for index, (url, plugin, out) in enumerate(zip(urls, plugins, outcomes)):
        thread = next(running) if plugin is not None else None
        if thread is not None:
            thread.join(max(settings.timeout_seconds + 1.0 - (time.monotonic() - started), 0.0))
        if thread is not None and thread.is_alive():
            out.update(ok=False, error=f"no answer within {settings.timeout_seconds:g} s (alerts.timeout_seconds)",
                       seconds=round(time.monotonic() - started, 3))
        error = shorten(_mask(str(out["error"]), out["secrets"]), 300) if out["error"] and not out["ok"] else None
        delivery = Delivery(target_name(index, url), bool(out["ok"]), out["attempts"],
                            out.get("seconds", 0.0), error)
        if delivery.ok:
            log.info("alert: %s: sent (%d attempt(s))", delivery.target, delivery.attempts)
        else:
            log.warning("alert: %s: not sent after %d attempt(s): %s", delivery.target, delivery.attempts, error)
        deliveries.append(delivery)
    return deliveries
