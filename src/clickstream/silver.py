"""Silver: the quality gate. Typed, validated, de-duplicated events; every other row kept and accounted for.

Every bronze row of a file's current version ends in exactly one of: silver (a valid event, once per event id),
quarantine (with every rule it broke), or duplicates (a repeat within the batch, or an event silver already
held, delivered again). When a batch holds a new version of a file (bronze's `on_change: replace`), the earlier
version's rows leave all three first (a retraction), and where the copy silver kept leaves, the next copy among
the duplicates takes its place, so no event that another file still holds is lost.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path

from clickstream import bronze, catalog, remap, storage
from clickstream.context import PipelineError, QualityGateError, RunContext
from clickstream.quality import check_threshold
from clickstream.schema import BRONZE, CANONICAL_RAW_COLUMNS, PARTITION_COLUMN, Schema
from clickstream.sql import render

log = logging.getLogger(__name__)

STATE = catalog.SILVER_STATE
STATE_FORMAT = 2  # runs may record `superseded` files and a `retraction` (format 1 never did)
CHANGES = "silver_changes"  # under _state/: per run, the events a retraction removed from or promoted into silver
CHANGES_SCHEMA: Schema = [("user_id", "string"), ("event_ts", "timestamp"), ("event_id", "string"),
                           ("change", "string")]
_PARTS_SCHEMA: Schema = [("source_file", "string"), ("batch_id", "string")]
_FILES_SCHEMA: Schema = [("file_path", "string")]
CONFLICT_EXAMPLES = 5  # copies of conflicting supplied event ids listed in the quality report
# The keys of a source that decide what its bronze rows become in silver: a change rebuilds silver from bronze.
MAPPING_KEYS = ("columns", "attributes", "event_types", "identity_columns")


class LedgerError(PipelineError):
    """Bronze rows did not add up to silver + quarantine + duplicates."""


def state_path(ctx: RunContext) -> Path:
    return ctx.layout.state / STATE


def tables(ctx: RunContext) -> dict[str, tuple[Path, Schema]]:
    """The tables silver writes, each with its folder and schema."""
    return {table.name: (table.path(ctx.layout.data_dir), table.schema or [])
            for table in catalog.silver_tables(ctx.config.attribute_names)}


def silver_schema(ctx: RunContext) -> Schema:
    """Silver's columns under this config: its own, then one per attribute the sources keep."""
    return tables(ctx)["silver"][1]


def identity_context(ctx: RunContext) -> dict:
    """What the silver models need to know of event identity and attributes (sql/silver/_identity.sql)."""
    names = ctx.config.attribute_names
    identified = any(source.columns["EventID"] is not None for source in ctx.config.sources)
    return {"attribute_names": names, "identified": identified, "with_content": identified or bool(names),
            "columns": column_list(ctx.engine, silver_schema(ctx), names)}


def column_list(engine, schema: Schema, attribute_names: list[str]) -> list[str]:
    """A schema's columns as SQL names them: an attribute's name quoted (it may be a keyword of SQL)."""
    return [engine.quote_identifier(c) if c in attribute_names else c for c, _ in schema]


def changes_dir(ctx: RunContext) -> Path:
    return ctx.layout.state / CHANGES


def load_state(ctx: RunContext) -> dict:
    return storage.read_json(state_path(ctx), {"format": STATE_FORMAT, "runs": {}})


def processed_bronze_batches(state: dict) -> set[str]:
    return {batch for run in state["runs"].values() for batch in run["bronze_batches"]}


def recover(ctx: RunContext, state: dict) -> None:
    """Undo what an interrupted silver run left: files of runs never committed, files a committed run replaced."""
    for table, (folder, _) in tables(ctx).items():
        removed = storage.remove_orphan_batches(folder, set(state["runs"]))
        if removed:
            log.warning("removed %d file(s) under %s left by an interrupted run", len(removed), folder)
    storage.remove_orphan_batches(changes_dir(ctx), set(state["runs"]))
    for run in state["runs"].values():
        for relative in run.get("superseded", []):
            path = ctx.layout.data_dir / relative
            if path.exists():
                path.unlink()
                log.warning("removed %s, replaced by a committed run that was interrupted before removing it", path)


def current_files(ctx: RunContext, table: str = "silver") -> list[Path]:
    """The files of a silver table as its state commits them (recover() has removed every other)."""
    return storage.parquet_files(tables(ctx)[table][0])


def run(ctx: RunContext) -> dict | None:
    """Validate every bronze batch not yet in silver; returns the run's record, or None if there was none."""
    started = time.perf_counter()
    state = load_state(ctx)
    recover(ctx, state)
    manifest = bronze.load_manifest(ctx)
    rebuild = _rebuild_reason(ctx, state) if manifest["batches"] else None
    processed = set() if rebuild else processed_bronze_batches(state)
    pending = sorted(set(manifest["batches"]) - processed)
    if not pending:
        log.info("silver: no new bronze batches")
        ctx.record.silver = {"bronze_batches": [], "ledger": []}
        if state["runs"] and "mappings" not in state:  # written before mappings were recorded: they are now
            state["mappings"] = mapping_digests(ctx)
            storage.write_json(state_path(ctx), state)
        return None
    if rebuild:
        log.warning("silver: rebuilding silver, quarantine and duplicates from bronze's %d batch(es): %s",
                    len(pending), rebuild)
        ctx.full_refresh = True  # gold and analytics are built again from the new silver
    parts = _replaced_parts(manifest, pending)
    remaps = remap.plan(manifest, pending, ctx.config.sources)
    for group in remaps:
        log.warning("silver: %d batch(es) of source '%s' were ingested under another columns mapping: read from "
                    "bronze under the current one", len(group["batch_ids"]), group["source_name"])
    with ctx.profile.step("read inputs", "silver"):
        retraction = _read_inputs(ctx, pending, parts, processed, rebuild is not None, remaps)
    staged = _classify_and_write(ctx, manifest, pending, retraction)
    with ctx.profile.step("ledger and gates", "silver"):
        record = _prove(ctx, manifest, pending, parts, retraction, staged)
        record["rebuilt"] = rebuild
    failed = [c for c in record["checks"] if c["status"] == "fail"]
    if failed:
        storage.clear_staging(ctx.layout.data_dir)
        raise QualityGateError(
            "silver: " + "; ".join(f"{c['name']} {c['value']:.2%} is above the fail threshold {c['fail']:.2%}"
                                   for c in failed) + " (nothing published; see the quality report)"
        )
    with ctx.profile.step("publish", "silver"):
        run_record = _commit(ctx, {"runs": {}} if rebuild else state, pending, staged, record, retraction)
    elapsed = time.perf_counter() - started
    record["seconds"] = round(elapsed, 3)
    totals = record["totals"]
    log.info("silver: %d bronze rows -> %d silver, %d quarantined, %d duplicates, %d re-delivered in %.2f s",
             totals["bronze_rows"], totals["silver_rows"], totals["quarantine_rows"], totals["duplicate_rows"],
             totals["redelivered_rows"], elapsed)
    return run_record


def mapping_digests(ctx: RunContext) -> dict[str, str]:
    """Per source, a digest of its MAPPING_KEYS (an empty one left out, as a key its config does not have)."""
    digests = {}
    for source in ctx.config.sources:
        settings = source.model_dump(mode="json")
        # a canonical column left unmapped is as one the config does not know (EventID, added later, rebuilds nothing)
        settings["columns"] = {key: value for key, value in settings["columns"].items() if value is not None}
        text = json.dumps({key: settings[key] for key in MAPPING_KEYS if settings.get(key)}, sort_keys=True)
        digests[source.name] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return digests


def _rebuild_reason(ctx: RunContext, state: dict) -> str | None:
    """Why silver is built again from all of bronze, or None: asked for, or a source's mapping changed since."""
    if ctx.rebuild_silver:
        return "asked for (--rebuild-silver)"
    recorded = state.get("mappings")
    if not state["runs"] or recorded is None:
        return None
    changed = sorted(name for name, digest in mapping_digests(ctx).items() if recorded.get(name, digest) != digest)
    if not changed:
        return None
    return (f"the {', '.join(MAPPING_KEYS)} mapping of source(s) {', '.join(repr(n) for n in changed)} changed since "
            f"silver was built")


def _replaced_parts(manifest: dict, pending: list[str]) -> list[tuple[str, str]]:
    """(file, batch) of the earlier versions of files the pending batches replace: their rows leave silver,
    quarantine and duplicates (if an earlier run put them there) or never enter (if they are pending too)."""
    return sorted({(r["source_file"], b) for batch in pending for r in manifest["batches"][batch].get("retracts", [])
                   for b in r["batch_ids"]})


def _read_inputs(ctx: RunContext, pending: list[str], parts: list[tuple[str, str]],
                 processed: set[str], rebuild: bool, remaps: list[dict]) -> dict | None:
    """`bronze_batch` (the pending rows silver takes in) and `silver_existing` (what they are de-duplicated
    against: nothing when silver is rebuilt); with replaced versions already in silver, the retraction's views.
    Returns the retraction."""
    engine, layout = ctx.engine, ctx.layout
    engine.register_rows("retracted_parts", _PARTS_SCHEMA, parts)
    engine.read_parquet("bronze_pending", storage.batch_files(layout.bronze, set(pending)), BRONZE, partitioned=True)
    engine.create_view("bronze_batch", render("silver/pending_rows", engine, replaced_parts=bool(parts), remaps=remaps,
                                              bronze_columns=BRONZE, canonical_columns=CANONICAL_RAW_COLUMNS))
    retraction = _retract(ctx, parts, processed) if parts else None
    if retraction is None:
        engine.read_parquet("silver_existing", [] if rebuild else current_files(ctx), silver_schema(ctx),
                            partitioned=True)
    return retraction


def _classify_and_write(ctx: RunContext, manifest: dict, pending: list[str], retraction: dict | None) -> dict[str, Path]:
    """Type and judge every row, rank the repeats, and write silver, quarantine and duplicates to staging."""
    engine = ctx.engine
    # Parsed once, read three times (repeats, silver, quarantine). Only the rows whose event repeats are
    # ranked; every other clean row goes straight from the typed table to the silver write.
    identity = identity_context(ctx)
    with ctx.profile.step("silver_typed", "silver"):
        engine.materialize("silver_typed", render(
            "silver/silver_typed", engine, sources=ctx.config.sources, rules=ctx.config.silver,
            attribute_names=identity["attribute_names"],
            may_hold_unit_separator=bronze.may_hold_unit_separator(manifest, set(pending))))
    engine.create_view("silver_clean", render("silver/silver_clean", engine, **identity))
    with ctx.profile.step("silver_repeats", "silver"):
        engine.materialize("silver_repeats", render("silver/silver_repeats", engine, **identity))
    models = {"silver": "silver/silver_events", "quarantine": "silver/quarantine_events",
              "duplicates": "silver/duplicate_events"}
    staged: dict[str, Path] = {}
    for table, (_, schema) in tables(ctx).items():
        engine.create_view(f"{table}_new", render(models[table], engine, **identity))
        engine.create_view(f"{table}_out", render("silver/output_rows", engine, table=table,
                                                  columns=column_list(engine, schema, identity["attribute_names"]),
                                                  retraction=retraction is not None))
        staged[table] = storage.staging_path(ctx.layout.data_dir, table)
        with ctx.profile.step(f"write {table}", "silver"):
            engine.write_parquet(f"{table}_out", staged[table], partition_by=[PARTITION_COLUMN])
    return staged


def _prove(ctx: RunContext, manifest: dict, pending: list[str], parts: list[tuple[str, str]],
           retraction: dict | None, staged: dict[str, Path]) -> dict:
    """The ledger and the rejection reasons from what was written, the retraction's proof, the gates: the run's
    record in the quality report (a broken ledger stops the run here)."""
    engine = ctx.engine
    # The ledger counts what was actually written, so a lost row anywhere above shows up here.
    for table, (_, schema) in tables(ctx).items():
        engine.read_parquet(f"{table}_written", storage.parquet_files(staged[table]), schema, partitioned=True)
    ledger = _ledger(ctx, pending)
    totals = {key: sum(row[key] for row in ledger) for key in ("bronze_rows", "silver_rows", "quarantine_rows",
                                                               "duplicate_rows", "redelivered_rows")}
    record = {"bronze_batches": pending, "ledger": ledger, "totals": totals,
              "rejection_reasons": _reasons(ctx, pending), "local_time_adjustments": _local_time_adjustments(ctx),
              "retraction": _check_retraction(ctx, retraction, manifest, parts) if parts else None,
              "checks": _gates(ctx, totals)}
    if identity_context(ctx)["identified"]:
        record["conflicting_event_ids"] = _conflicting_ids(ctx)
    ctx.record.silver = record
    for name in ("silver_typed", "silver_clean", "silver_repeats", *(f"{t}_{s}" for t in tables(ctx)
                                                                     for s in ("new", "out", "written"))):
        engine.drop(name)
    return record


def _commit(ctx: RunContext, state: dict, pending: list[str], staged: dict[str, Path], record: dict,
            retraction: dict | None) -> dict:
    """Publish the staged files, then record the run in the state file: the commit. A retraction's superseded
    files go once it is committed (or at the next run's recovery, if this one is interrupted first)."""
    for table, (folder, _) in tables(ctx).items():
        storage.publish_batch(staged[table], folder, ctx.run_id)
    run_record = {"bronze_batches": pending, "ledger": record["ledger"], "totals": record["totals"]}
    if retraction is not None:
        storage.publish_batch(retraction["changes"], changes_dir(ctx), ctx.run_id)
        run_record.update(superseded=retraction["superseded"], retraction=record["retraction"])
    state["format"] = STATE_FORMAT
    state["runs"][ctx.run_id] = run_record
    state["mappings"] = mapping_digests(ctx)
    storage.write_json(state_path(ctx), state)  # the commit: from here on, this run's files are silver
    for folder in [*(folder for folder, _ in tables(ctx).values()), changes_dir(ctx)]:
        storage.remove_orphan_batches(folder, set(state["runs"]))  # a rebuild's: the runs before it
    for relative in run_record.get("superseded", []):
        (ctx.layout.data_dir / relative).unlink(missing_ok=True)
    _drop_retraction_views(ctx)
    return run_record


def _retract(ctx: RunContext, parts: list[tuple[str, str]], in_silver: set[str]) -> dict | None:
    """Take the rows of replaced file versions out of the published silver tables (as views to write).

    For each table, the files holding such rows are written again without them (`<table>_rewritten_rows`)
    and listed as superseded; silver's copy of an event that leaves is replaced by the first remaining copy
    among the duplicates (`promoted_copies`). Returns None when no published row is affected (the replaced
    versions were still pending).
    """
    engine, layout = ctx.engine, ctx.layout
    if not any(batch in in_silver for _, batch in parts):
        return None
    superseded: list[str] = []
    for table, (folder, schema) in tables(ctx).items():
        engine.read_parquet(f"{table}_current", storage.parquet_files(folder), schema, partitioned=True,
                            file_column="file_path")
    identity = identity_context(ctx)
    engine.materialize("promoted_copies", render("silver/promoted_copies", engine, **identity))
    for table, (folder, schema) in tables(ctx).items():
        # duplicates: also the files holding a copy of a promoted event
        _, rows = engine.fetch(render("silver/retracted_files", engine, table=table, promotes=table == "duplicates"))
        files = sorted(row[0] for row in rows)
        engine.register_rows(f"{table}_rewritten", _FILES_SCHEMA, [(f,) for f in files])
        superseded += [Path(os.path.relpath(os.path.abspath(f), os.path.abspath(layout.data_dir))).as_posix()
                       for f in files]
        engine.create_view(f"{table}_rewritten_rows", render(
            "silver/rewritten_rows", engine, **{**identity, "columns": column_list(
                engine, schema, identity["attribute_names"])}, table=table, promotes=table == "duplicates"))
    engine.create_view("silver_existing", render("silver/existing_after_retraction", engine,
                                                 columns=identity["columns"]))
    engine.create_view("silver_changes", render("silver/retraction_changes", engine))
    changes = storage.staging_path(layout.data_dir, CHANGES)
    engine.write_parquet("silver_changes", changes)
    return {"superseded": superseded, "changes": changes}


def _check_retraction(ctx: RunContext, retraction: dict | None, manifest: dict,
                      parts: list[tuple[str, str]]) -> dict:
    """What left each table per replaced file, proved against bronze: a replaced version's rows, all of them."""
    engine = ctx.engine
    expected: Counter[str] = Counter()
    for source_file, batch_id in parts:
        entry = manifest["files"].get(source_file)
        versions = [entry, *entry.get("previous", [])] if entry else []
        expected[source_file] += sum(part["rows"] for version in versions for part in bronze.parts_of(version)
                                     if part["batch_id"] == batch_id)
    removed: dict[str, Counter[str]] = {}
    pending_rows = 0
    _, rows = engine.fetch(render("silver/retracted_rows_per_file", engine, table="bronze_pending"))
    for source_file, count in rows:
        removed.setdefault(source_file, Counter())["never_published"] += int(count)
        pending_rows += int(count)
    promoted = 0
    if retraction is not None:
        for table in tables(ctx):
            _, rows = engine.fetch(render("silver/retracted_rows_per_file", engine, table=f"{table}_current"))
            for source_file, count in rows:
                removed.setdefault(source_file, Counter())[table] += int(count)
        promoted = engine.row_counts(["promoted_copies"])["promoted_copies"]
    files = []
    for source_file in sorted(expected):
        counts = removed.get(source_file, Counter())
        files.append({"source_file": source_file, "replaced_rows": expected[source_file],
                      "silver_rows": counts["silver"], "quarantine_rows": counts["quarantine"],
                      "duplicate_rows": counts["duplicates"], "never_published_rows": counts["never_published"]})
    broken = [f for f in files if f["replaced_rows"] != f["silver_rows"] + f["quarantine_rows"]
              + f["duplicate_rows"] + f["never_published_rows"]]
    for entry in files:
        log.info("silver: replaced version of %s: %d rows out (silver %d, quarantine %d, duplicates %d, "
                 "never published %d)", entry["source_file"], entry["replaced_rows"], entry["silver_rows"],
                 entry["quarantine_rows"], entry["duplicate_rows"], entry["never_published_rows"])
    if promoted:
        log.info("silver: %d event(s) kept by another copy, promoted from the duplicates", promoted)
    if broken:
        storage.clear_staging(ctx.layout.data_dir)
        raise LedgerError(f"silver: the rows taken out for replaced file versions do not add up to their bronze "
                          f"rows: {broken} (nothing published)")
    return {"files": files, "promoted_rows": promoted, "superseded_files": len((retraction or {}).get(
        "superseded", []))}


def _drop_retraction_views(ctx: RunContext) -> None:
    for name in ("retracted_parts", "bronze_pending", "bronze_batch", "silver_existing", "promoted_copies",
                 "silver_changes", *(f"{t}_{s}" for t in tables(ctx) for s in ("current", "rewritten",
                                                                               "rewritten_rows"))):
        ctx.engine.drop(name)


def _gates(ctx: RunContext, totals: dict[str, int]) -> list[dict]:
    quality = ctx.config.quality
    judged = totals["bronze_rows"]
    return [
        check_threshold("quarantine_rate", totals["quarantine_rows"], judged, quality.quarantine_rate,
                        quality.min_rows),
        check_threshold("duplicate_rate", totals["duplicate_rows"], judged, quality.duplicate_rate, quality.min_rows),
        check_threshold("redelivered_rate", totals["redelivered_rows"], judged, quality.redelivered_rate,
                        quality.min_rows),
    ]


def _ledger(ctx: RunContext, batches: list[str]) -> list[dict]:
    columns, rows = ctx.engine.fetch(render("silver/ledger", ctx.engine, batches=batches))
    ledger = [dict(zip(columns, (v if isinstance(v, str) else int(v) for v in row))) for row in rows]
    broken = [r for r in ledger if r["bronze_rows"] != r["silver_rows"] + r["quarantine_rows"] + r["duplicate_rows"]
              + r["redelivered_rows"]]
    for row in ledger:
        log.info("silver ledger: %s bronze=%d silver=%d quarantine=%d duplicates=%d redelivered=%d",
                 row["source_file"], row["bronze_rows"], row["silver_rows"], row["quarantine_rows"],
                 row["duplicate_rows"], row["redelivered_rows"])
    if broken:
        storage.clear_staging(ctx.layout.data_dir)
        raise LedgerError(f"silver: row ledger does not add up for {broken} (nothing published)")
    return ledger


def _reasons(ctx: RunContext, batches: list[str]) -> dict:
    """Rows rejected per rule, overall and per file (a row breaking two rules counts for both)."""
    columns, rows = ctx.engine.fetch(render("silver/quarantine_reasons", ctx.engine, batches=batches))
    overall: Counter[str] = Counter()
    per_file: dict[str, Counter[str]] = {}
    for source_file, reasons, count in rows:
        for reason in reasons.split(";"):
            overall[reason] += int(count)
            per_file.setdefault(source_file, Counter())[reason] += int(count)
    for reason, count in sorted(overall.items()):
        log.info("silver quarantine: %s rows=%d", reason, count)
    return {"overall": dict(sorted(overall.items())), "per_file": {f: dict(c) for f, c in sorted(per_file.items())}}


def _conflicting_ids(ctx: RunContext) -> dict:
    """Supplied event ids whose copies hold other content than the copy kept: how many such copies, a few of them."""
    columns, rows = ctx.engine.fetch(render("silver/conflicting_ids", ctx.engine, examples=CONFLICT_EXAMPLES))
    examples = [dict(zip(columns, row)) for row in rows]
    count = int(examples[0]["conflicting_rows"]) if examples else 0
    if count:
        log.warning("silver: %d row(s) share a supplied event id with another copy but hold other content; the "
                    "first by file and content is kept (e.g. %s, id %r)", count, examples[0]["source_file"],
                    examples[0]["supplied_event_id"])
    return {"rows": count, "examples": [{key: row[key] for key in ("source_file", "supplied_event_id", "disposition")}
                                        for row in examples]}


def _local_time_adjustments(ctx: RunContext) -> list[dict]:
    """Per file, the valid events whose wall time their zone skips or repeats (only sources not in UTC)."""
    if all(source.timezone.upper() == "UTC" for source in ctx.config.sources):
        return []  # silver_typed has no such flags then
    columns, rows = ctx.engine.fetch(render("silver/local_time_adjustments", ctx.engine))
    adjustments = [dict(zip(columns, (v if isinstance(v, str) else int(v) for v in row))) for row in rows]
    for row in adjustments:
        log.warning("silver: %s: %d wall time(s) the clocks skipped (read with the offset before the change), %d "
                    "they passed twice (read as the later instant)", row["source_file"],
                    row["nonexistent_local_times"], row["ambiguous_local_times"])
    return adjustments
