"""Running layers in order: one engine, one run id, a log file per job, the quality report at the end."""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from clickstream import alerts, analytics, anomalies, bronze, cost, gold, ledger, repair, silver, storage, warehouse
from clickstream.config import Config
from clickstream.context import Layout, RunContext
from clickstream.engines import InputError, create_engine
from clickstream.lock import WriterLock
from clickstream.logs import job_log
from clickstream.quality import changed_nothing, record_end, write_report
from clickstream.report import REPORT_HTML
from clickstream.report.escape import shorten

log = logging.getLogger(__name__)

LAYERS = ("bronze", "silver", "gold", "analytics")
_JOBS = {"bronze": bronze.run, "silver": silver.run, "gold": gold.run, "analytics": analytics.run}


def run_layers(config: Config, layers: tuple[str, ...] = LAYERS, analytics_group: str = "all",
               full_refresh: bool = False, wait_seconds: float = 0.0, show_results: bool = False,
               rebuild_silver: bool = False, progress: Callable[[str, str], None] | None = None,
               report_extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
               models_later: bool = False) -> dict[str, Any]:
    """Run the given layers in order and return each layer's result; the quality report is written either way.

    At the end: the quality report, the warehouse's views, and (after analytics) `analytics/report.html`.
    `progress(layer, event)` hears of each layer's start, done and failed.

    The whole run holds the data directory's writer lock (waiting up to `wait_seconds` for another run to
    finish) and starts by undoing what an interrupted run left. `report_extra`, given the layers' results once
    they have run (or failed), returns entries for the quality report (`clickstream watch` adds its batch).
    With `models_later`, predictive models that no changed event reaches are kept even when the models' time
    moved on, and left due (`incremental.models_due`).
    """
    layout = Layout(Path(config.paths.data_dir))
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    with WriterLock(layout.data_dir, wait_seconds=wait_seconds) as lock:
        recovered = storage.recover(layout.data_dir)
        for action in recovered:
            log.info("recovery: %s", action)
        meter = cost.Meter()
        ctx = RunContext(config=config, engine=create_engine(config), layout=layout, analytics_group=analytics_group,
                         full_refresh=full_refresh, show_results=show_results, rebuild_silver=rebuild_silver,
                         models_later=models_later)
        meter.engine_started(ctx.engine)
        ctx.record.layers = list(layers)
        ctx.record.recovery = ([lock.takeover_note] if lock.takeover_note else []) + recovered
        run = _Run(ctx, layers, progress or (lambda layer, event: None), report_extra, meter)
        with run.ending():
            run.layers_in_order()
        if run.answered():
            run.page()
        run.finish()
    run.results["timings"] = run.timings
    run.results["layout"] = layout
    return run.results


@dataclass
class _Run:
    """One run of layers under the writer lock: what they returned, their times, and the failure that stopped them."""
    ctx: RunContext
    layers: tuple[str, ...]
    tell: Callable[[str, str], None]
    report_extra: Callable[[dict[str, Any]], dict[str, Any]] | None
    meter: cost.Meter
    results: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def html_report(self) -> bool:
        return "analytics" in self.layers and self.ctx.config.analytics.html_report

    def _new_data_reached(self, layer: str) -> bool:
        """Whether `layer` may have something new to build: not when silver ran in this run and found no new
        batch (a run with nothing new draws no page, so it loads nothing for one)."""
        return layer != "gold" or "silver" not in self.layers or self.results.get("silver") is not None

    def layers_in_order(self) -> None:
        config = self.ctx.config
        # The page's modules and template load while the layers run, with gold (or analytics): that holds Python's
        # lock, which stalls bronze's Python work but hardly the engine's queries that follow
        warm_up_with = next((name for name in ("gold", "analytics") if name in self.layers), None) \
            if self.html_report else None
        # a run whose raw files were all refused fails once silver (or bronze, run alone) shows no event, before
        # an empty star is built from nothing
        stranded_after = "silver" if "silver" in self.layers else "bronze"
        layer = self.layers[0]
        try:
            for layer in self.layers:
                with job_log(config.logs_dir, layer, config.logs.format):
                    if layer == warm_up_with and self._new_data_reached(layer):
                        threading.Thread(target=_warm_up_report, name="report-warm-up", daemon=True).start()
                    self.tell(layer, "start")
                    started = time.perf_counter()
                    self.results[layer] = _JOBS[layer](self.ctx)
                    self.timings[layer] = round(time.perf_counter() - started, 3)
                    self.tell(layer, "done")
                if layer == stranded_after:
                    _fail_if_stranded(self.ctx, self.layers)
        except BaseException as exc:
            self.error = "interrupted (SIGINT)" if isinstance(exc, KeyboardInterrupt) else (
                shorten(str(exc)) or type(exc).__name__)
            if layer not in self.timings:
                self.tell(layer, "failed")
            raise

    @contextlib.contextmanager
    def ending(self) -> Iterator[None]:
        """The end of a run: each step runs whatever the others do, in this order (the report reads through the
        engine); the first error stands, whether the layers' own or a cleanup's, and a later one is logged. The
        cost, alerts and profile are recorded last after a failure (else once the page is written too)."""
        ctx = self.ctx
        with contextlib.ExitStack() as cleanups:
            cleanups.push(lambda failed, exc, traceback: bool(failed is not None and self.finish()))
            for step, what, name in reversed([
                    (self.quality_report, "writing the quality report", "quality report"),
                    (lambda: storage.clear_staging(ctx.layout.data_dir), "clearing staging", "clear staging"),
                    (ctx.engine.close, "closing the engine", "close engine"),
                    (self.warehouse_views, "rebuilding the warehouse", "warehouse")]):
                cleanups.push(_cleanup(step, what, lambda name=name: ctx.profile.step(name, "run")))
            yield

    def quality_report(self) -> None:
        self.ctx.record.timings_seconds = self.timings
        if self.report_extra is not None:
            self.ctx.record.extra.update(self.report_extra(self.results))
        self.meter.engine_done(self.ctx.engine)
        _check_anomalies(self.ctx)
        self.results["quality"] = write_report(self.ctx, ledger.whole_ledger, finished=list(self.timings),
                                               error=self.error)

    def finish(self) -> None:
        """The run's cost, its alert, and its whole profile into its record; a failure of any is logged, the run
        stands (they describe the run, they are not its outcome)."""
        ctx = self.ctx
        extra: dict[str, Any] = {}
        try:
            extra["cost"] = self.meter.record({**self.timings}, ctx.layout.data_dir, ctx.config.cost, ctx.engine)
        except Exception as exc:  # noqa: BLE001
            _not_recorded("cost", exc)
        run = (self.results.get("quality") or {}).get("last_run")
        if run is not None:
            try:
                sent = alerts.alert_run({**run, **extra}, ctx.config, ctx.layout, _utc_now())
                if sent is not None:
                    extra["alerts"] = sent
            except Exception as exc:  # noqa: BLE001
                _not_recorded("alert", exc)
            run.update(extra)
        try:
            record_end(ctx, extra)
        except Exception as exc:  # noqa: BLE001
            _not_recorded("profile", exc)

    def warehouse_views(self) -> None:
        standing = self.ctx.layout.data_dir / warehouse.WAREHOUSE
        if (self.error is None and changed_nothing(self.ctx.record.as_dict()) and standing.is_file()
                and not standing.with_name(standing.name + ".wal").exists()):
            self.results["warehouse"] = standing  # its views read the tables as they stand
            return
        self.results["warehouse"] = _rebuild_warehouse(self.ctx.layout, failed=self.error is not None)

    def answered(self) -> bool:
        """Whether analytics answered anew in this run (not a run that found its results standing)."""
        return ("analytics" in self.timings and bool(self.results.get("analytics"))
                and (self.ctx.record.analytics or {}).get("mode") != "current")

    def page(self) -> None:
        """The page of what analytics just answered (or, with analytics.html_report false, no page)."""
        ctx = self.ctx
        if not self.html_report:
            _remove_stale_report(ctx.layout)
            return
        from clickstream.report import html  # the page's modules and Jinja load only for a run that needs them

        with job_log(ctx.config.logs_dir, "report", ctx.config.logs.format):
            self.tell("report", "start")
            started = time.perf_counter()
            with ctx.profile.step("html report", "report"):
                self.results["report"] = html.write(ctx.layout, ctx.config, self.results["quality"])
            self.timings["report"] = round(time.perf_counter() - started, 3)
            self.tell("report", "done")


_NAMED = 3  # refused files named in the one line of a run that ingested nothing


def _fail_if_stranded(ctx: RunContext, layers: tuple[str, ...]) -> None:
    """Raw files refused and no event to show for the run (silver empty; bronze empty for a bronze-only run): the
    run fails, naming the files and why, instead of succeeding with nothing built."""
    refused = (ctx.record.bronze or {}).get("refused") or []
    if not refused:
        return
    holds_events = bool(silver.current_files(ctx)) if "silver" in layers else bool(bronze.load_manifest(ctx)["files"])
    if holds_events:
        return
    named = "; ".join(f"{entry['path']}: {entry['reason']}" for entry in refused[:_NAMED])
    more = f"; and {len(refused) - _NAMED} more" if len(refused) > _NAMED else ""
    where = "silver" if "silver" in layers else "bronze"
    raise InputError(f"{len(refused)} raw file(s) refused and {where} holds no events: {named}{more} (fix the file "
                     f"or its source in the config: a refused file is tried again when either changes)")


def refused_files(config: Config) -> list[dict]:
    """The raw files bronze refused and that are unchanged since, each with why (`clickstream verify` lists
    them)."""
    manifest = storage.read_json(Layout(Path(config.paths.data_dir)).state / bronze.MANIFEST, {})
    return [{"path": path, "reason": entry["reason"]} for path, entry in sorted(manifest.get("refused", {}).items())]


def _cleanup(step: Callable[[], None], what: str,
             timed: Callable[[], contextlib.AbstractContextManager[None]]) -> Callable[..., bool]:
    """An exit callback running `step` (within `timed()`, its profile step): its error is raised when none is on
    its way already, else logged (the error on its way, the run's own or an earlier cleanup's, is the one to
    report)."""

    def run(exc_type: type[BaseException] | None, exc: BaseException | None, traceback: Any) -> bool:
        try:
            with timed():
                step()
        except Exception as failure:
            if exc is None:
                raise
            log.error("%s failed too: %s", what, shorten(str(failure)) or type(failure).__name__)
            log.debug("%s failed", what, exc_info=failure)
        return False

    return run


def _not_recorded(what: str, exc: Exception) -> None:
    log.warning("the run's %s was not recorded in the quality report: %s", what, shorten(str(exc)) or
                type(exc).__name__)
    log.debug("%s not recorded", what, exc_info=exc)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _check_anomalies(ctx: RunContext) -> None:
    """The anomaly checks of the run into its record (`anomalies`, and `anomaly_checks` judged); a failure to
    check is logged, the run stands."""
    try:
        checked = anomalies.run_checks(ctx.record.as_dict(), ctx.layout, ctx.config.alerts, _utc_now())
    except Exception as exc:  # noqa: BLE001 - anomalies describe the run; they are not its outcome
        _not_recorded("anomaly checks", exc)
        return
    ctx.record.anomalies = checked.found
    ctx.record.anomaly_checks = checked.judged


def _rebuild_warehouse(layout: Layout, failed: bool) -> Path | None:
    """The views of every table as the run left them. After a failure (whose message comes first) a table the
    views cannot read leaves the earlier warehouse in place, said in the log file only."""
    if not failed:
        return warehouse.rebuild(layout)
    try:
        return warehouse.rebuild(layout)
    except Exception as exc:  # noqa: BLE001 - the run's own failure is the one to report
        log.info("warehouse: not rebuilt after the failure (%s)", shorten(str(exc)), extra={"on_terminal": False})
        return None


def _remove_stale_report(layout: Layout) -> None:
    """With analytics.html_report false, an earlier run's page would show numbers this run has changed."""
    stale = layout.analytics / REPORT_HTML
    if stale.exists():
        stale.unlink()
        log.info("report: analytics.html_report is false; removed %s, which showed an earlier run", stale)


def _warm_up_report() -> None:
    try:
        from clickstream.report import html

        html.warm_up()
    except Exception as exc:  # noqa: BLE001 - the report itself will say what is wrong
        log.debug("report: loading the page's modules and template failed: %s", exc)


def verify(config: Config, wait_seconds: float = 0.0) -> list[dict]:
    """The whole ledger of the data directory (ledger.py), each file also counted from raw/, read under the
    writer lock so no run changes it meanwhile."""
    return verify_all(config, wait_seconds)[0]


def verify_all(config: Config, wait_seconds: float = 0.0) -> tuple[list[dict], list[str]]:
    """The whole ledger, and what bronze does not hold of what its manifest records (ledger.bronze_problems),
    read under the writer lock."""
    layout = Layout(Path(config.paths.data_dir))
    if not layout.state.is_dir() and not storage.parquet_files(layout.bronze):
        return [], []
    with WriterLock(layout.data_dir, wait_seconds=wait_seconds):
        engine = create_engine(config)
        try:
            ctx = RunContext(config=config, engine=engine, layout=layout)
            try:
                bronze.load_committed(ctx)
            except bronze.ManifestLost as exc:  # no ledger without the manifest
                return [], [str(exc)]
            return ledger.whole_ledger(ctx, count_raw_files=True), ledger.bronze_problems(ctx)
        finally:
            engine.close()


def repair_manifest(config: Config, wait_seconds: float = 0.0) -> repair.Repair:
    """Rebuild bronze's manifest from bronze's own files (repair.py), under the writer lock, after undoing what
    an interrupted run left."""
    layout = Layout(Path(config.paths.data_dir))
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    with WriterLock(layout.data_dir, wait_seconds=wait_seconds):
        for action in storage.recover(layout.data_dir):
            log.info("recovery: %s", action)
        engine = create_engine(config)
        try:
            return repair.rebuild_manifest(RunContext(config=config, engine=engine, layout=layout))
        finally:
            engine.close()
