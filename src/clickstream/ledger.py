"""The whole ledger: every data line of every raw file's current version, accounted for exactly once.

Each silver run proves its own batch (silver.py); this proves the whole data directory at once, after any
number of runs, appends, replaced versions and re-deliveries: per raw file, the rows bronze holds of its current
version (from the manifest) against the rows of that version in silver, quarantine and duplicates, and no row
left there of a version that was replaced. `clickstream verify` prints it, after checking bronze itself against
the manifest (`bronze_problems`): the ledger counts bronze's rows from the manifest, so a lost bronze file would
not show in it. It also counts each file's rows again from its bytes in raw/ now (those of the version ingested),
so rows bronze holds that the file does not show.
"""
from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

from clickstream import bronze, silver, storage
from clickstream.config import Source
from clickstream.context import RunContext
from clickstream.raw_files import scan, scan_options, split_raw_file
from clickstream.schema import Schema
from clickstream.sql import render

_KINDS = ("silver", "quarantine", "duplicates")


def whole_ledger(ctx: RunContext, count_raw_files: bool = False) -> list[dict]:
    """One row per raw file ingested: its current version's rows and where each went.

    `pending_rows` are rows of bronze batches no silver run has processed yet (a failed gate keeps them
    there); `stale_rows` are rows still held of a version that was replaced (always 0 when all is well).
    A file balances when bronze rows = silver + quarantine + duplicates + re-delivered + pending, with no
    stale row. With `count_raw_files`, `file_rows` are the rows the raw file's bytes of that version hold now
    (None when the file is gone or changed since: nothing to count them against), and must equal bronze rows.
    """
    manifest = bronze.load_manifest(ctx)
    state = silver.load_state(ctx)
    processed = silver.processed_bronze_batches(state)
    current: dict[tuple[str, str], int] = {}
    for path, entry in manifest["files"].items():
        for part in bronze.parts_of(entry):
            current[(path, part["batch_id"])] = part["rows"]
    counts = published_rows(ctx)
    files: dict[str, dict] = {}
    for key in sorted(set(current) | set(counts)):
        source_file, batch_id = key
        row = files.setdefault(source_file, {"source_file": source_file, "bronze_rows": 0, "silver_rows": 0,
                                             "quarantine_rows": 0, "duplicate_rows": 0, "redelivered_rows": 0,
                                             "pending_rows": 0, "stale_rows": 0})
        found = counts.get(key, {})
        if key not in current:
            row["stale_rows"] += sum(found.values())
            continue
        row["bronze_rows"] += current[key]
        if batch_id not in processed:
            row["pending_rows"] += current[key]
        row["silver_rows"] += found.get("silver", 0)
        row["quarantine_rows"] += found.get("quarantine", 0)
        row["duplicate_rows"] += found.get("duplicates", 0)
        row["redelivered_rows"] += found.get("redelivered", 0)
    for row in files.values():
        row["balanced"] = row["stale_rows"] == 0 and row["bronze_rows"] == (
            row["silver_rows"] + row["quarantine_rows"] + row["duplicate_rows"] + row["redelivered_rows"]
            + row["pending_rows"])
        if count_raw_files:
            entry = manifest["files"].get(row["source_file"])
            row["file_rows"] = None if entry is None else _file_rows(ctx, entry, row["bronze_rows"])
            row["balanced"] = row["balanced"] and row["file_rows"] in (None, row["bronze_rows"])
    return list(files.values())


def published_rows(ctx: RunContext) -> dict[tuple[str, str], dict[str, int]]:
    """Per (raw file, bronze batch): its rows in silver, quarantine, duplicates and re-delivered."""
    engine = ctx.engine
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for kind, (folder, schema) in silver.tables(ctx).items():
        engine.read_parquet(f"ledger_{kind}", silver.current_files(ctx, kind), schema, partitioned=True)
        label = "case when duplicate_kind = 'redelivered' then 'redelivered' else 'duplicates' end" \
            if kind == "duplicates" else engine.quote_literal(kind)
        _, rows = engine.fetch(f"select source_file, batch_id, {label}, count(*) from ledger_{kind} "
                               f"group by source_file, batch_id, {label}")
        for source_file, batch_id, label_value, count in rows:
            counts[(source_file, batch_id)][label_value] += int(count)
        engine.drop(f"ledger_{kind}")
    return counts


BRONZE_KEYS: Schema = [("source_name", "string"), ("source_file", "string"), ("batch_id", "string"),
                       ("ingestion_timestamp", "timestamp")]


def bronze_rows(ctx: RunContext) -> dict[tuple[str, str], tuple[str, int]]:
    """Per (raw file, batch): the rows bronze's Parquet files hold, and the source they were read as."""
    engine = ctx.engine
    engine.read_parquet("ledger_bronze", storage.parquet_files(ctx.layout.bronze), BRONZE_KEYS, partitioned=True)
    _, rows = engine.fetch(render("quality/bronze_rows_per_file", engine))
    engine.drop("ledger_bronze")
    return {(source_file, batch_id): (source_name, int(count)) for source_file, batch_id, source_name, count in rows}


def bronze_problems(ctx: RunContext) -> list[str]:
    """What bronze does not hold of what its manifest records, one line each (none when all is well).

    Every Parquet file a batch records exists; every file bronze holds belongs to a recorded batch; bronze's
    rows per raw file and batch are the rows the manifest records of that file's versions (which the ledger
    counts), per batch the batch's rows. (Not its records: a line split apart by a stray quote is one row each.)
    """
    try:
        manifest = bronze.load_committed(ctx)
    except bronze.ManifestLost as exc:
        return [str(exc)]
    folder = ctx.layout.bronze
    problems = []
    for batch_id, batch in sorted(manifest["batches"].items()):
        for relative in batch.get("parquet", []):
            if not (folder / relative).is_file():
                problems.append(f"bronze file {folder / relative} of batch {batch_id} is missing")
    for batch_id, files in sorted(storage.unrecorded_batches(folder, set(manifest["batches"])).items()):
        problems.append(f"bronze file {files[0]} belongs to batch {batch_id}, which the manifest does not record")
    held = {key: rows for key, (_, rows) in bronze_rows(ctx).items()}
    recorded: dict[tuple[str, str], int] = defaultdict(int)
    for path, entry in sorted(manifest["files"].items()):
        for version in [entry, *entry.get("previous", [])]:
            for part in bronze.parts_of(version):
                recorded[(path, part["batch_id"])] += part["rows"]
    for source_file, batch_id in sorted(set(held) | set(recorded)):
        if batch_id in manifest["batches"] and held.get((source_file, batch_id), 0) != recorded.get(
                (source_file, batch_id), 0):
            problems.append(f"bronze holds {held.get((source_file, batch_id), 0):,} row(s) of {source_file} in "
                            f"batch {batch_id}; the manifest records {recorded.get((source_file, batch_id), 0):,}")
    by_batch: dict[str, int] = defaultdict(int)
    for (_, batch_id), rows in held.items():
        by_batch[batch_id] += rows
    for batch_id, batch in sorted(manifest["batches"].items()):
        if by_batch.get(batch_id, 0) != batch["rows"]:
            problems.append(f"bronze holds {by_batch.get(batch_id, 0):,} row(s) of batch {batch_id}; the manifest "
                            f"records {batch['rows']:,}")
    return problems


class _Discard:
    def write(self, text: str) -> int:
        return len(text)


def _file_rows(ctx: RunContext, entry: dict, bronze_rows: int) -> int | None:
    """The rows a file's version ingested holds, counted from raw/ now: its first `size` bytes (it may have grown
    since), if they still hash as then; None if it is gone or they do not.

    The records counted while hashing (bronze's own check) stand when they equal bronze's rows; otherwise, or
    where they are not counted, the bytes are split by csv_lines as bronze splits a file (records and malformed
    lines), from a snapshot of those bytes."""
    path = ctx.layout.raw / entry["path"]
    source = next((s for s in ctx.config.sources if s.name == entry["source_name"]), None)
    is_gzip = path.name.lower().endswith(".gz")
    if source is None:
        return None
    try:
        if is_gzip and path.stat().st_size != entry["size"]:
            return None  # a gzip file is never appended to: another size is another version
        facts = scan(path, limit=entry["size"], **scan_options(source, entry["path"]))
        if facts.sha256 != entry["sha256"]:
            return None
        if facts.records == bronze_rows:
            return facts.records
        snapshots = storage.staging_path(ctx.layout.data_dir, "verify")
        snapshots.mkdir()
        try:
            snapshot = snapshots / ("raw.csv.gz" if is_gzip else "raw.csv")
            if scan(path, limit=entry["size"], snapshot=snapshot,
                    **scan_options(source, entry["path"])).sha256 != entry["sha256"]:
                return None
            return _split_rows(snapshot, source, entry["path"])
        finally:
            shutil.rmtree(snapshots, ignore_errors=True)
    except OSError:
        return None


def _split_rows(snapshot: Path, source: Source, relative: str) -> int | None:
    """Rows as bronze holds them of a file split by csv_lines (or json_lines): its well-formed records and its
    malformed lines."""
    header, _ = bronze.fields_of(relative, snapshot, source)  # the fields bronze read the file as
    if header is None:
        return None  # a refused header: such a version is never ingested
    if not header:
        return 0
    split = split_raw_file(snapshot, relative, source, header, _Discard())
    return split.records + len(split.malformed)
