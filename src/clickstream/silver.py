"""Silver: the quality gate. Typed, validated, de-duplicated events; every rejected row kept in quarantine."""
from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

from clickstream import bronze, storage
from clickstream.context import PipelineError, QualityGateError, RunContext
from clickstream.quality import check_threshold
from clickstream.schema import BRONZE, PARTITION_COLUMN, QUARANTINE, SILVER
from clickstream.sql import render

log = logging.getLogger(__name__)

STATE = "silver_state.json"


class LedgerError(PipelineError):
    """Bronze rows did not add up to silver + quarantine + duplicates."""


def state_path(ctx: RunContext) -> Path:
    return ctx.layout.state / STATE


def load_state(ctx: RunContext) -> dict:
    return storage.read_json(state_path(ctx), {"runs": {}})


def processed_bronze_batches(state: dict) -> set[str]:
    return {batch for run in state["runs"].values() for batch in run["bronze_batches"]}


def run(ctx: RunContext) -> dict | None:
    """Validate every bronze batch not yet in silver; returns the run's ledger, or None if there was none."""
    started = time.perf_counter()
    engine, layout = ctx.engine, ctx.layout
    state = load_state(ctx)
    for table in (layout.silver, layout.quarantine):
        removed = storage.remove_orphan_batches(table, set(state["runs"]))
        if removed:
            log.warning("removed %d file(s) under %s left by an interrupted run", len(removed), table)
    manifest = bronze.load_manifest(ctx)
    pending = sorted(set(manifest["batches"]) - processed_bronze_batches(state))
    if not pending:
        log.info("silver: no new bronze batches")
        ctx.quality["silver"] = {"bronze_batches": [], "ledger": []}
        return None

    engine.read_parquet("bronze_batch", storage.batch_files(layout.bronze, set(pending)), BRONZE, partitioned=True)
    engine.read_parquet("silver_existing", storage.parquet_files(layout.silver), SILVER, partitioned=True)
    rules = ctx.config.silver
    # Parsed once, read three times (repeats, silver, quarantine). Only the rows whose event repeats are
    # ranked; every other clean row goes straight from the typed table to the silver write.
    engine.materialize("silver_typed", render("silver/silver_typed", engine, sources=ctx.config.sources,
                                              rules=rules))
    engine.create_view("silver_clean", render("silver/silver_clean", engine))
    engine.materialize("silver_repeats", render("silver/silver_repeats", engine))
    engine.create_view("silver_new", render("silver/silver_events", engine))
    engine.create_view("quarantine_new", render("silver/quarantine_events", engine))

    silver_staged = storage.staging_path(layout.data_dir, "silver")
    quarantine_staged = storage.staging_path(layout.data_dir, "quarantine")
    engine.write_parquet("silver_new", silver_staged, partition_by=[PARTITION_COLUMN])
    engine.write_parquet("quarantine_new", quarantine_staged, partition_by=[PARTITION_COLUMN])
    # The ledger counts what was actually written, so a lost row anywhere above shows up here.
    engine.read_parquet("silver_written", storage.parquet_files(silver_staged), SILVER, partitioned=True)
    engine.read_parquet("quarantine_written", storage.parquet_files(quarantine_staged), QUARANTINE, partitioned=True)
    ledger = _ledger(ctx)
    reasons = _reasons(ctx)
    totals = {key: sum(row[key] for row in ledger) for key in ("bronze_rows", "silver_rows", "quarantine_rows",
                                                               "duplicate_rows")}
    checks = [
        check_threshold("quarantine_rate", totals["quarantine_rows"], totals["bronze_rows"],
                        ctx.config.quality.quarantine_rate),
        check_threshold("duplicate_rate", totals["duplicate_rows"], totals["bronze_rows"],
                        ctx.config.quality.duplicate_rate),
    ]
    ctx.quality["silver"] = {"bronze_batches": pending, "ledger": ledger, "totals": totals,
                             "rejection_reasons": reasons, "checks": checks}
    for name in ("silver_typed", "silver_clean", "silver_repeats", "silver_new", "quarantine_new",
                 "silver_written", "quarantine_written"):
        engine.drop(name)
    failed = [c for c in checks if c["status"] == "fail"]
    if failed:
        storage.clear_staging(layout.data_dir)
        raise QualityGateError(
            "silver: " + "; ".join(f"{c['name']} {c['value']:.2%} is above the fail threshold {c['fail']:.2%}"
                                   for c in failed) + " (nothing published; see the quality report)"
        )

    storage.publish_batch(silver_staged, layout.silver, ctx.run_id)
    storage.publish_batch(quarantine_staged, layout.quarantine, ctx.run_id)
    state["runs"][ctx.run_id] = {"bronze_batches": pending, "ledger": ledger, "totals": totals}
    storage.write_json(state_path(ctx), state)
    elapsed = time.perf_counter() - started
    ctx.quality["silver"]["seconds"] = round(elapsed, 3)
    log.info("silver: %d bronze rows -> %d silver, %d quarantined, %d duplicates removed in %.2f s",
             totals["bronze_rows"], totals["silver_rows"], totals["quarantine_rows"], totals["duplicate_rows"], elapsed)
    return state["runs"][ctx.run_id]


def _ledger(ctx: RunContext) -> list[dict]:
    columns, rows = ctx.engine.fetch(render("silver/ledger", ctx.engine))
    ledger = [dict(zip(columns, (v if isinstance(v, str) else int(v) for v in row))) for row in rows]
    broken = [r for r in ledger if r["bronze_rows"] != r["silver_rows"] + r["quarantine_rows"] + r["duplicate_rows"]]
    for row in ledger:
        log.info("silver ledger: %s bronze=%d silver=%d quarantine=%d duplicates=%d", row["source_file"],
                 row["bronze_rows"], row["silver_rows"], row["quarantine_rows"], row["duplicate_rows"])
    if broken:
        storage.clear_staging(ctx.layout.data_dir)
        raise LedgerError(f"silver: row ledger does not add up for {broken} (nothing published)")
    return ledger


def _reasons(ctx: RunContext) -> dict:
    """Rows rejected per rule, overall and per file (a row breaking two rules counts for both)."""
    columns, rows = ctx.engine.fetch(render("silver/quarantine_reasons", ctx.engine))
    overall: Counter[str] = Counter()
    per_file: dict[str, Counter[str]] = {}
    for source_file, reasons, count in rows:
        for reason in reasons.split(";"):
            overall[reason] += int(count)
            per_file.setdefault(source_file, Counter())[reason] += int(count)
    for reason, count in sorted(overall.items()):
        log.info("silver quarantine: %s rows=%d", reason, count)
    return {"overall": dict(sorted(overall.items())), "per_file": {f: dict(c) for f, c in sorted(per_file.items())}}
