"""Bronze: land new raw CSV files unchanged (every value as text) with ingestion metadata, as Parquet."""
from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from clickstream import storage
from clickstream.config import Source
from clickstream.context import PipelineError, RunContext
from clickstream.engines.base import Engine, InputError
from clickstream.schema import BRONZE, CANONICAL_RAW_COLUMNS, PARTITION_COLUMN

log = logging.getLogger(__name__)

MANIFEST = "bronze_manifest.json"


@dataclass(frozen=True)
class RawFile:
    path: Path
    relative: str
    source: Source
    size: int
    mtime_ns: int
    sha256: str


def manifest_path(ctx: RunContext) -> Path:
    return ctx.layout.state / MANIFEST


def load_manifest(ctx: RunContext) -> dict:
    return storage.read_json(manifest_path(ctx), {"files": {}, "batches": {}})


def _discover(ctx: RunContext, manifest: dict) -> list[RawFile]:
    """Raw files not ingested before. A file is known by its content (sha256), whatever its name."""
    raw_dir = ctx.layout.raw
    if not raw_dir.is_dir():
        raise PipelineError(f"raw input directory not found: {raw_dir}")
    known_by_path = manifest["files"]
    known_checksums = {entry["sha256"] for entry in known_by_path.values()}
    known_checksums |= {old["sha256"] for entry in known_by_path.values() for old in entry.get("previous", [])}
    owner: dict[Path, str] = {}
    found: list[RawFile] = []
    for source in ctx.config.sources:
        for path in sorted(p for p in raw_dir.glob(source.glob) if p.is_file()):
            if path in owner:
                raise PipelineError(f"raw file {path} matches the globs of sources '{owner[path]}' and '{source.name}'")
            owner[path] = source.name
            relative = path.relative_to(raw_dir).as_posix()
            stat = path.stat()
            entry = known_by_path.get(relative)
            if entry and entry["size"] == stat.st_size and entry["mtime_ns"] == stat.st_mtime_ns:
                continue  # unchanged since it was ingested: no need to read it again
            checksum = storage.file_checksum(path)
            if entry and entry["sha256"] == checksum:
                entry["mtime_ns"] = stat.st_mtime_ns  # touched, not changed: remember, so it is not hashed again
                continue
            if checksum in known_checksums:
                log.info("skipping %s: same content as a file already ingested", relative)
                continue
            if entry:
                log.warning("%s changed since it was ingested; ingesting the new content as a new file", relative)
            found.append(RawFile(path, relative, source, stat.st_size, stat.st_mtime_ns, checksum))
    return found


def read_header(raw: RawFile) -> list[str]:
    """The file's header, checked against the source's column mapping; [] for an empty (0-byte) file."""
    if raw.size == 0:
        return []
    opts = raw.source.csv
    with raw.path.open("rb") as handle:
        first_line = handle.readline()
    try:
        text = first_line.decode("utf-8-sig")
        header = next(csv.reader([text], delimiter=opts.delimiter, quotechar=opts.quote), [])
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InputError(f"{raw.path}: unreadable header line ({exc})") from exc
    header = [column.strip() for column in header]
    if not any(header):
        raise InputError(f"{raw.path}: the first line is blank; expected a header naming the columns")
    if len(set(header)) != len(header):
        raise InputError(f"{raw.path}: duplicate column names in header {header}")
    expected = {col for col in raw.source.columns.values() if col}
    missing = sorted(expected - set(header))
    if missing:
        raise InputError(
            f"{raw.path}: missing column(s) {missing} required by source '{raw.source.name}' "
            f"(header has {header})"
        )
    extra = sorted(set(header) - expected)
    if extra:
        log.warning("%s: column(s) %s are not mapped by source '%s' and are not kept", raw.relative, extra,
                    raw.source.name)
    return header


def _select_canonical(engine: Engine, view: str, source: Source, batch_id: str, ingested_at: str) -> str:
    columns = []
    for canonical in CANONICAL_RAW_COLUMNS:
        file_column = source.columns[canonical]
        columns.append(f'"{file_column}" as {canonical}' if file_column else f"cast(null as string) as {canonical}")
    return (
        f"select {', '.join(columns)}, {engine.quote_literal(source.name)} as source_name, source_file, "
        f"{engine.quote_literal(batch_id)} as batch_id, timestamp '{ingested_at}' as ingestion_timestamp, "
        f"cast(timestamp '{ingested_at}' as date) as {PARTITION_COLUMN} from {view}"
    )


def run(ctx: RunContext) -> dict | None:
    """Ingest the raw files not seen before as one batch; returns the batch record, or None if none were new."""
    started = time.perf_counter()
    engine, layout = ctx.engine, ctx.layout
    manifest = load_manifest(ctx)
    removed = storage.remove_orphan_batches(layout.bronze, set(manifest["batches"]))
    if removed:
        log.warning("removed %d bronze file(s) left by an interrupted run", len(removed))
    new_files = _discover(ctx, manifest)
    if not new_files:
        storage.write_json(manifest_path(ctx), manifest)  # keeps the mtimes of touched files
        log.info("bronze: no new raw files in %s", layout.raw)
        ctx.quality["bronze"] = {"batch_id": None, "files": []}
        return None

    batch_id = ctx.run_id
    ingested_at = ctx.started_at.strftime("%Y-%m-%d %H:%M:%S.%f")
    groups: dict[tuple[str, tuple[str, ...]], list[RawFile]] = {}
    empty: list[RawFile] = []
    for raw in new_files:
        header = read_header(raw)
        if header:
            groups.setdefault((raw.source.name, tuple(header)), []).append(raw)
        else:
            empty.append(raw)
            log.warning("%s is empty (no header, no rows): recorded as ingested with 0 rows", raw.relative)

    selects = []
    for index, ((_, header), files) in enumerate(groups.items()):
        view = f"raw_csv_{index}"
        engine.read_csv(view, [f.path for f in files], list(header), files[0].source.csv, layout.raw)
        selects.append(_select_canonical(engine, view, files[0].source, batch_id, ingested_at))
    engine.create_view("bronze_batch", " union all ".join(selects) if selects else engine.empty_select(BRONZE))

    staged = storage.staging_path(layout.data_dir, "bronze")
    names = ", ".join(f.relative for f in new_files)
    try:
        engine.write_parquet("bronze_batch", staged, partition_by=[PARTITION_COLUMN])
    except InputError as exc:
        raise InputError(f"bronze: cannot read raw file(s) [{names}]: {exc}") from exc
    # Profile what was written, not the CSV again: rows and nulls per column per file.
    engine.read_parquet("bronze_staged", storage.parquet_files(staged), BRONZE, partitioned=True)
    profile = _profile(ctx, "bronze_staged")
    expected = {raw.relative for files in groups.values() for raw in files}
    if set(profile) - expected:
        raise PipelineError(f"bronze: rows attributed to unexpected source files {sorted(set(profile) - expected)}")
    storage.publish_batch(staged, layout.bronze, batch_id)

    files_record = []
    for raw in new_files:
        # a file with a header and no rows has no profile row
        stats = profile.get(raw.relative, {"rows": 0, "null_counts": {c: 0 for c in CANONICAL_RAW_COLUMNS}})
        record = {"path": raw.relative, "source_name": raw.source.name, "size": raw.size, "mtime_ns": raw.mtime_ns,
                  "sha256": raw.sha256, "rows": stats["rows"], "batch_id": batch_id, "ingested_at": ingested_at}
        earlier = manifest["files"].get(raw.relative)
        if earlier:  # a changed file: its earlier content stays known, so it is never ingested twice
            record["previous"] = earlier.pop("previous", []) + [earlier]
        manifest["files"][raw.relative] = record
        completeness = _completeness(stats)
        log.info("bronze: %s rows=%d completeness=%.4f nulls=%s", raw.relative, stats["rows"], completeness,
                 stats["null_counts"])
        files_record.append({**record, "null_counts": stats["null_counts"], "completeness": completeness})
    total = sum(f["rows"] for f in files_record)
    manifest["batches"][batch_id] = {"ingested_at": ingested_at, "files": [f.relative for f in new_files],
                                     "rows": total}
    storage.write_json(manifest_path(ctx), manifest)
    engine.drop("bronze_staged")
    elapsed = time.perf_counter() - started
    log.info("bronze: batch %s, %d file(s), %d rows in %.2f s", batch_id, len(new_files), total, elapsed)
    ctx.quality["bronze"] = {"batch_id": batch_id, "rows": total, "files": files_record, "seconds": round(elapsed, 3)}
    return manifest["batches"][batch_id]


def _profile(ctx: RunContext, view: str) -> dict[str, dict]:
    nulls = ", ".join(f"count(*) - count({c}) as {c}" for c in CANONICAL_RAW_COLUMNS)
    columns, rows = ctx.engine.fetch(
        f"select source_file, count(*) as n_rows, {nulls} from {view} group by source_file")
    profile = {}
    for row in rows:
        values = dict(zip(columns, row))
        profile[values["source_file"]] = {
            "rows": int(values["n_rows"]),
            "null_counts": {c: int(values[c]) for c in CANONICAL_RAW_COLUMNS},
        }
    return profile


def _completeness(stats: dict) -> float:
    cells = stats["rows"] * len(CANONICAL_RAW_COLUMNS)
    return 1.0 if cells == 0 else 1 - sum(stats["null_counts"].values()) / cells
