"""Running layers in order: one engine, one run id, a log file per job, the quality report at the end."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from clickstream import analytics, bronze, gold, ledger, silver, storage
from clickstream.config import Config
from clickstream.context import Layout, RunContext
from clickstream.engines import create_engine
from clickstream.lock import WriterLock
from clickstream.logs import job_log
from clickstream.quality import write_report

log = logging.getLogger(__name__)

LAYERS = ("bronze", "silver", "gold", "analytics")
_JOBS = {"bronze": bronze.run, "silver": silver.run, "gold": gold.run, "analytics": analytics.run}


def run_layers(config: Config, layers: tuple[str, ...] = LAYERS, analytics_group: str = "all",
               full_refresh: bool = False, wait_seconds: float = 0.0,
               report_extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run the given layers in order and return each layer's result; the quality report is written either way.

    The whole run holds the data directory's writer lock (waiting up to `wait_seconds` for another run to
    finish) and starts by undoing what an interrupted run left. `report_extra`, given the layers' results once
    they have run (or failed), returns entries for the quality report (`clickstream watch` adds its batch).
    """
    layout = Layout(Path(config.paths.data_dir))
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    with WriterLock(layout.data_dir, wait_seconds=wait_seconds) as lock:
        recovered = storage.recover(layout.data_dir)
        for action in recovered:
            log.info("recovery: %s", action)
        engine = create_engine(config)
        ctx = RunContext(config=config, engine=engine, layout=layout, analytics_group=analytics_group,
                         full_refresh=full_refresh)
        ctx.quality["layers"] = list(layers)
        ctx.quality["recovery"] = ([lock.takeover_note] if lock.takeover_note else []) + recovered
        results: dict[str, Any] = {}
        timings: dict[str, float] = {}
        try:
            for layer in layers:
                with job_log(Path(config.paths.logs_dir), layer):
                    started = time.perf_counter()
                    results[layer] = _JOBS[layer](ctx)
                    timings[layer] = round(time.perf_counter() - started, 3)
        finally:
            ctx.quality["timings_seconds"] = timings
            if report_extra is not None:
                ctx.quality.update(report_extra(results))
            write_report(ctx)
            storage.clear_staging(layout.data_dir)
            engine.close()
    results["timings"] = timings
    results["layout"] = layout
    return results


def verify(config: Config, wait_seconds: float = 0.0) -> list[dict]:
    """The whole ledger of the data directory (ledger.py), read under the writer lock so no run changes it
    meanwhile."""
    layout = Layout(Path(config.paths.data_dir))
    if not layout.state.is_dir():
        return []
    with WriterLock(layout.data_dir, wait_seconds=wait_seconds):
        engine = create_engine(config)
        try:
            return ledger.whole_ledger(RunContext(config=config, engine=engine, layout=layout))
        finally:
            engine.close()
