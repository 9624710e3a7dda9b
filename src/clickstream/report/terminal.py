"""What a run shows on the terminal: progress per layer while it runs, and the end summary.

On a terminal, each layer gets a line with a spinner, the step it is on (its latest log message) and its time;
when stderr is piped or redirected, the plain log lines are the progress instead. Colours follow NO_COLOR and
rich's own terminal detection. Every value shown goes through `escape_terminal` (and rich's markup escaping).
"""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from clickstream.report import REPORT_HTML
from clickstream.report.escape import escape_terminal, shorten

_ROOT = "clickstream"
# What a layer is doing until its first log message says more.
_STARTING = {"bronze": "reading the new raw files", "silver": "validating and de-duplicating",
             "gold": "building and testing the star", "analytics": "answering the queries",
             "report": "drawing the charts of report.html"}


class _StepHandler(logging.Handler):
    """Shows each INFO message of the running layer as the step its progress line is on."""

    def __init__(self, progress: LayerProgress) -> None:
        super().__init__(logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.progress.step(record.getMessage())
        except Exception:  # noqa: BLE001 - a display problem must never stop a run
            self.handleError(record)


class LayerProgress:
    """A progress line per layer on a terminal (rich), or nothing where stderr is not one.

    Used as `progress(layer, event)` by the pipeline, `event` being start, done or failed. While it runs, the
    terminal log handler shows only warnings and errors (printed above the progress lines); the log files
    get everything as usual.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._current: str | None = None
        self._handler: _StepHandler | None = None
        self._terminal_levels: list[tuple[logging.Handler, int]] = []

    def __enter__(self) -> LayerProgress:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(SpinnerColumn(finished_text="[green]done"), TextColumn("{task.fields[layer]:<9}"),
                                  TimeElapsedColumn(), TextColumn("{task.description}"),
                                  console=Console(stderr=True), transient=False, redirect_stderr=True)
        self._progress.start()
        logger = logging.getLogger(_ROOT)
        for handler in logger.handlers:
            if getattr(handler, "_clickstream_terminal", False):
                self._terminal_levels.append((handler, handler.level))
                handler.setLevel(max(handler.level, logging.WARNING))
        self._handler = _StepHandler(self)
        logger.addHandler(self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.enabled:
            return
        logger = logging.getLogger(_ROOT)
        if self._handler is not None:
            logger.removeHandler(self._handler)
        for handler, level in self._terminal_levels:
            handler.setLevel(level)
        self._progress.stop()

    def __call__(self, layer: str, event: str) -> None:
        if not self.enabled:
            return
        if event == "start":
            self._current = layer
            self._tasks[layer] = self._progress.add_task(_STARTING.get(layer, "starting"), total=1, layer=layer)
        elif layer in self._tasks:
            task = self._tasks[layer]
            if event == "done":
                self._progress.update(task, completed=1, description="")
            else:
                self._progress.update(task, description="[red]failed")
                self._progress.stop_task(task)
            self._current = None

    def step(self, message: str) -> None:
        if self._current is None or self._progress is None:
            return
        from rich.markup import escape

        width = max(20, self._progress.console.width - 30)
        self._progress.update(self._tasks[self._current], description=escape(shorten(escape_terminal(message), width)))


def _number(value: Any, money: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if money else f"{value:,}"


def command_name() -> str:
    """How to call clickstream again from where the user stands: its bare name when the shell finds this same
    program on PATH, else the path of the one running (relative to the working directory when under it), so a
    printed hint works as printed, also straight after `make run` without an activated virtual environment."""
    running = Path(sys.argv[0])
    if running.name != "clickstream" or not running.is_file():
        running = Path(sys.executable).with_name("clickstream")
        if not running.is_file():
            return "clickstream"
    found = shutil.which("clickstream")
    if found and Path(found).resolve() == running.resolve():
        return "clickstream"
    absolute = running.absolute()
    try:
        shown = str(absolute.relative_to(Path.cwd()))
        shown = shown if os.sep in shown else f".{os.sep}{shown}"
    except ValueError:
        shown = str(absolute)
    return shlex.quote(shown)


_ANOMALIES_SHOWN = 5


def _attention_lines(run: dict[str, Any]) -> list[str]:
    """The run's anomalies and its alert, if any: what looked wrong, and who was told."""
    lines = []
    found = run.get("anomalies") or []
    if found:
        lines.append(f"Anomalies ({len(found)}):")
        lines += [f"  {escape_terminal(shorten(a['message']))}" for a in found[:_ANOMALIES_SHOWN]]
        if len(found) > _ANOMALIES_SHOWN:
            lines.append(f"  and {len(found) - _ANOMALIES_SHOWN} more (reports/quality_report.json, anomalies)")
    sent = run.get("alerts") or {}
    if sent.get("targets"):
        took = [t["target"] for t in sent["targets"] if t["ok"]]
        missed = [f"{t['target']}: {t['error']}" for t in sent["targets"] if not t["ok"]]
        lines.append(f"Alert: {escape_terminal(sent['title'])}: sent to {len(took)} of {len(sent['targets'])} "
                     f"target(s)" + (f"; not sent to {escape_terminal(shorten('; '.join(missed)))}" if missed else ""))
    return lines


def _predictions(layout: Any) -> list[str]:
    """The churn model's verdict and the clusters, in words."""
    from clickstream.report.html import prediction_notes

    notes = prediction_notes(layout) if layout.analytics.is_dir() else []
    return ["Predictions:", *[f"  {escape_terminal(note)}" for note in notes]] if notes else []


def summary(results: dict[str, Any], logs_dir: Path, funnel_window: str) -> str:
    """The end of a run: the headline answers, the quality headline, where the report and the outputs are.
    `funnel_window` is the ordered funnel's conversion window, as configured (`analytics.funnel.window`)."""
    from clickstream.report.html import headline_figures

    layout = results["layout"]
    quality, lines = results.get("quality") or {}, [""]
    figures = headline_figures(layout) if (layout.gold / "fct_events").is_dir() else None
    if figures:
        lines.append("Answers" + (f" ({escape_terminal(figures['range'])})" if figures.get("range") else "") + ":")
        lines.append(f"  events      {_number(figures['events'])}    users {_number(figures['users'])}    "
                     f"visits {_number(figures['visits'])}")
        if figures.get("revenue") is not None:
            lines.append(f"  revenue     {_number(figures['revenue'], money=True)} in {_number(figures['orders'])} "
                         f"orders")
        elif figures.get("orders"):
            lines.append(f"  revenue     unknown in {_number(figures['orders'])} orders")
        if figures.get("prices_note"):
            lines.append(f"  prices      {escape_terminal(figures['prices_note'])}")
        if figures.get("conversion") is not None:
            lines.append(f"  conversion  {figures['conversion']:.2%} of the users reaching "
                         f"{escape_terminal(figures['first_step'])} reached {escape_terminal(figures['last_step'])} in "
                         f"order within {escape_terminal(funnel_window)} (users still in progress left out)")
        if figures.get("partial_days"):
            lines.append(f"  partial     {', '.join(figures['partial_days'])} (UTC days the data covers in part)")
    lines += _predictions(layout)
    totals = (quality.get("silver") or {}).get("totals")
    tests = (quality.get("gold") or {}).get("tests")
    if totals or tests:
        lines.append("Quality:")
        if totals:
            lines.append(f"  ledger      {_number(totals.get('bronze_rows', 0))} bronze rows = "
                         f"{_number(totals.get('silver_rows', 0))} silver + "
                         f"{_number(totals.get('quarantine_rows', 0))} quarantined + "
                         f"{_number(totals.get('duplicate_rows', 0))} duplicates + "
                         f"{_number(totals.get('redelivered_rows', 0))} re-delivered"
                         + (f" + {_number(totals['pending_rows'])} pending" if totals.get("pending_rows") else ""))
        if tests:
            passed = sum(t["status"] == "pass" for t in tests)
            failed = sum(t["status"] == "fail" for t in tests)
            lines.append(f"  gold tests  {passed} passed, {failed} failed"
                         + (f", {len(tests) - passed - failed} warned" if len(tests) - passed - failed else ""))
    lines += _attention_lines((quality.get("last_run") or {}))
    lines.append("Outputs:")
    entries = [("bronze", layout.bronze), ("silver", layout.silver), ("quarantine", layout.quarantine),
               ("gold", layout.gold), ("analytics", layout.analytics)]
    page = results.get("report") or layout.analytics / REPORT_HTML  # a run with nothing new leaves the page as it is
    if Path(page).is_file():
        entries.append(("report", page))
    entries += [("markdown", layout.analytics / "REPORT.md"), ("quality", layout.reports / "quality_report.json")]
    if results.get("warehouse"):
        entries.append(("warehouse", results["warehouse"]))
    entries.append(("logs", logs_dir.absolute()))
    lines += [f"  {label:<11} {escape_terminal(str(Path(path).absolute()))}" for label, path in entries]
    if results.get("warehouse"):
        lines.append(f'Query the tables: {escape_terminal(command_name())} sql "select * from daily_activity"'
                     + (f" --data-dir {escape_terminal(shlex.quote(str(layout.data_dir)))}"
                        if str(layout.data_dir) != "data" else ""))
    lines.append("Layer times: " + ", ".join(f"{k} {v:.2f} s" for k, v in results["timings"].items()))
    return "\n".join(lines)
