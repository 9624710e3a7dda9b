"""Rebuilding bronze's manifest from bronze's own files: `clickstream repair-manifest`.

A run refuses to touch bronze when its manifest is lost (bronze.load_committed); this puts a manifest back.
Bronze's rows carry their raw file, source, batch and ingestion time: from them come the batches and, per raw
file, the batches holding its rows. Which of those hold the file's current version, silver tells (a replaced
version's rows left silver, quarantine and duplicates). What bronze does not carry, the facts of the raw file's
version (SHA-256, size, lines, records), is taken from raw/ where the file there still holds what bronze holds:
its records are bronze's rows of it, and it was last modified before it was ingested. Elsewhere they stay
unknown, and the next run ingests that file again as a new version (its earlier rows replaced, none counted
twice). Copies and refusals are found again by the next run; a file with no data line leaves no row in bronze
and is recorded again by the next run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from clickstream import bronze, ledger, silver, storage
from clickstream.context import RunContext
from clickstream.raw_files import Scan, match_sources, scan, scan_options

log = logging.getLogger(__name__)

_INGESTED_AT = "%Y-%m-%d %H:%M:%S.%f"  # as bronze records it


@dataclass
class Repair:
    """What `rebuild_manifest` did."""

    manifest: Path
    rebuilt: bool  # False: the manifest already agreed with bronze, and nothing was written
    batches: int = 0
    parquet_files: int = 0
    rows: int = 0
    recovered: list[str] = field(default_factory=list)  # raw files whose version facts came from raw/
    unrecovered: dict[str, str] = field(default_factory=dict)  # raw file -> why its version facts are unknown
    kept_aside: Path | None = None  # the manifest replaced, under another name (never deleted)


def rebuild_manifest(ctx: RunContext) -> Repair:
    """Write a manifest rebuilt from bronze, unless the one there agrees with bronze (ledger.bronze_problems)."""
    path = bronze.manifest_path(ctx)
    problems = ledger.bronze_problems(ctx)
    if path.exists() and not problems:
        return Repair(path, rebuilt=False)
    held = ledger.bronze_rows(ctx)
    files = storage.parquet_files(ctx.layout.bronze)
    repair = Repair(path, rebuilt=True, parquet_files=len(files), rows=sum(rows for _, rows in held.values()))
    batches = _batches(ctx, held, files)
    manifest = {"files": _files(ctx, held, batches, repair), "batches": batches, "copies": {}, "refused": {}}
    repair.batches = len(batches)
    if path.exists():
        repair.kept_aside = path.with_name(f"{path.name}.before-repair-{ctx.run_id}")
        path.rename(repair.kept_aside)
    storage.write_json(path, manifest)
    log.info("repair-manifest: %s rebuilt from %d bronze file(s): %d batch(es), %d row(s)", path, len(files),
             len(batches), repair.rows, extra={"on_terminal": False})
    return repair


def _batches(ctx: RunContext, held: dict[tuple[str, str], tuple[str, int]], files: list[Path]) -> dict[str, dict]:
    batches: dict[str, dict] = {}
    for file in files:
        batch = batches.setdefault(storage.batch_of(file), {"files": [], "rows": 0, "retracts": [], "parquet": []})
        batch["parquet"].append(file.relative_to(ctx.layout.bronze).as_posix())
    for (source_file, batch_id), (_, rows) in sorted(held.items()):
        batches[batch_id]["files"].append(source_file)
        batches[batch_id]["rows"] += rows
    for batch_id, batch in batches.items():
        batch["ingested_at"] = _ingested_at(batch_id)
    return batches


def _ingested_at(batch_id: str) -> str:
    """A batch's id is its run's id, which begins with the run's start: the time bronze records as ingested."""
    return datetime.strptime(batch_id[:21], "%Y%m%dT%H%M%S%f").strftime(_INGESTED_AT)


def _files(ctx: RunContext, held: dict[tuple[str, str], tuple[str, int]], batches: dict[str, dict],
           repair: Repair) -> dict[str, dict]:
    """Each raw file's entry: its current version (the batches silver still holds rows of), the earlier ones."""
    processed = silver.processed_bronze_batches(silver.load_state(ctx))
    published = ledger.published_rows(ctx)
    raw_dir = ctx.layout.raw
    owners = match_sources(raw_dir, ctx.config.sources)[0] if raw_dir.is_dir() else {}
    by_file: dict[str, list[tuple[str, str, int]]] = {}
    for (source_file, batch_id), (source_name, rows) in sorted(held.items()):
        by_file.setdefault(source_file, []).append((batch_id, source_name, rows))
    entries = {}
    for source_file, held_in in by_file.items():
        replaced = [b for b in held_in
                    if b[0] in processed and not sum(published.get((source_file, b[0]), {}).values())]
        current = [b for b in held_in if b not in replaced] or held_in
        if len(current) == len(held_in):
            replaced = []
        facts, why = _raw_facts(raw_dir, owners, source_file, current)
        if facts is None and len(current) > 1 and current[-1][0] not in processed:
            # a pending batch holding all of a new version: it replaces the batches before it
            facts, _ = _raw_facts(raw_dir, owners, source_file, current[-1:])
            if facts is not None:
                batches[current[-1][0]]["retracts"].append({"source_file": source_file,
                                                            "batch_ids": [b[0] for b in current[:-1]]})
                replaced, current = replaced + current[:-1], current[-1:]
        if facts is None:
            repair.unrecovered[source_file] = why
        else:
            repair.recovered.append(source_file)
        previous = [{**_version(source_file, [b], None), "replaced_by": (replaced + current)[index + 1][0]}
                    for index, b in enumerate(replaced)]
        entries[source_file] = {**_version(source_file, current, facts), "previous": previous}
    return entries


def _version(source_file: str, parts: list[tuple[str, str, int]], facts: Scan | None) -> dict:
    """A manifest entry of one version of a file, held by `parts` (batch, source, rows) in bronze."""
    last = parts[-1][0]
    return {"path": source_file, "source_name": parts[-1][1], "batch_id": last, "ingested_at": _ingested_at(last),
            "rows": sum(rows for _, _, rows in parts),
            "parts": [{"batch_id": batch_id, "rows": rows, "offset": 0 if index == 0 else None}
                      for index, (batch_id, _, rows) in enumerate(parts)],
            "size": facts.size if facts else None, "mtime_ns": facts.mtime_ns if facts else None,
            "sha256": facts.sha256 if facts else None, "lines": facts.lines if facts else None,
            "records": facts.records if facts else None,
            "unit_separator": facts.unit_separator if facts else True,  # not known not to: keys stay safe
            "ends_cleanly": facts.ends_with_break if facts else False}  # not known: never read as appended


def _raw_facts(raw_dir: Path, owners: dict, source_file: str,
               parts: list[tuple[str, str, int]]) -> tuple[Scan | None, str]:
    """The raw file's facts if it still holds what bronze holds of it, else None and why not."""
    source = owners.get(source_file)
    if source is None:
        return None, "it is no longer in raw/ (or no source's glob matches it)"
    facts = scan(raw_dir / source_file, **scan_options(source, source_file))
    rows = sum(rows for _, _, rows in parts)
    if facts.records is None:
        return None, "its records are not counted while it is hashed (sources' csv.escape, or JSON lines)"
    if facts.records != rows:
        return None, f"raw/ holds {facts.records:,} record(s) of it, bronze {rows:,} row(s)"
    ingested = datetime.strptime(_ingested_at(parts[-1][0]), _INGESTED_AT).replace(tzinfo=timezone.utc)
    if facts.mtime_ns > int(ingested.timestamp() * 1_000_000) * 1000:
        return None, "it was modified after it was ingested"
    return facts, ""
