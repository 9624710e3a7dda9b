"""The whole ledger: every data line of every raw file's current version, accounted for exactly once.

Each silver run proves its own batch (silver.py); this proves the whole data directory at once, after any
number of runs, appends, replaced versions and re-deliveries: per raw file, the rows bronze holds of its current
version (from the manifest) against the rows of that version in silver, quarantine and duplicates, and no row
left there of a version that was replaced. `clickstream verify` prints it.
"""
from __future__ import annotations

from collections import defaultdict

from clickstream import bronze, silver
from clickstream.context import RunContext

_KINDS = ("silver", "quarantine", "duplicates")


def whole_ledger(ctx: RunContext) -> list[dict]:
    """One row per raw file ingested: its current version's rows and where each went.

    `pending_rows` are rows of bronze batches no silver run has processed yet (a failed gate keeps them
    there); `stale_rows` are rows still held of a version that was replaced (always 0 when all is well).
    A file balances when bronze rows = silver + quarantine + duplicates + re-delivered + pending, with no
    stale row.
    """
    engine = ctx.engine
    manifest = bronze.load_manifest(ctx)
    state = silver.load_state(ctx)
    processed = silver.processed_bronze_batches(state)
    current: dict[tuple[str, str], int] = {}
    for path, entry in manifest["files"].items():
        for part in bronze.parts_of(entry):
            current[(path, part["batch_id"])] = part["rows"]
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
    return list(files.values())
