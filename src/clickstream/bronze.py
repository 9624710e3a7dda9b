"""Bronze: land new raw files (CSV, JSON lines) unchanged (every value as text, the fields no canonical column
maps in `extra`) with ingestion metadata, as Parquet.

Each file is read once per version, as an exact path: the pipeline lists raw/ itself and copies each file it
reads into a snapshot with a plain name, which is all that is hashed, counted, and read by the engines and
csv_lines. So no file name is ever read as a pattern or reaches SQL, and the bytes hashed are the bytes counted
and parsed, whatever is appended to or rewritten in the raw file meanwhile. A file that is not text CSV, whose
header does not fit its source, or that cannot be read (removed meanwhile, permission denied) is refused alone;
the others proceed. What is not a regular file (a FIFO, a device, a dangling link) is named and never opened.
A line that cannot be split into the header's fields is kept with its line number and raw text (`csv_lines`)
and goes to quarantine in silver; so is a JSON-lines line that is no JSON object (`json_lines`, which reads every
JSON-lines file for both engines). A file changed since it was ingested follows its source's `on_change`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shlex
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from clickstream import remap, storage
from clickstream.config import CsvOptions, Source
from clickstream.context import PipelineError, RunContext
from clickstream.report.escape import shorten
from clickstream.csv_lines import CANONICAL_CSV, Malformed, Split
from clickstream.engines.base import Engine, InputError
from clickstream.profile import Profile
from clickstream.json_lines import canonical_header
from clickstream.raw_files import (Scan, header_line, list_files, match_sources, read_header, scan, scan_options,
                                  split_raw_file)
from clickstream.sql import render
from clickstream.schema import BRONZE, CANONICAL_RAW_COLUMNS, EXTRA, PARTITION_COLUMN, PROFILED_RAW_COLUMNS

log = logging.getLogger(__name__)

MANIFEST = "bronze_manifest.json"
_MANIFEST_KEYS = ("files", "batches", "copies", "refused")
INPUTS = "bronze_inputs"  # each staged input (input_file) with the raw file and source it stands for
MALFORMED = "bronze_malformed"  # the lines csv_lines refused, with their staged input
_INPUTS_SCHEMA = [("input_file", "string"), ("source_name", "string"), ("source_file", "string")]
_MALFORMED_SCHEMA = [("input_file", "string"), ("source_line", "bigint"), ("parse_error", "string"),
                     ("raw_line", "string")]
_SHOWN = 20  # file names listed in one log line
# Parts read line by line (JSON lines, CSV with malformed lines or another escape) are split in parallel, one
# process per core, when there is more than one and they hold at least this much: below, starting the processes
# costs more than it saves.
PARALLEL_SPLIT_BYTES = 32 << 20


@dataclass
class Unit:
    """What this batch ingests of one raw file: all of it, or the lines appended since its last version."""

    relative: str
    path: Path  # the snapshot of the version read (raw_files.scan), never the raw file itself
    source: Source
    scan: Scan
    header: list[str]
    offset: int = 0  # bytes before the part read: an appended file's earlier version
    first_line: int = 2  # line number of the part's first data line (the header is line 1)
    retracts: list[str] = field(default_factory=list)  # batches whose rows of this file the new version replaces
    is_split: bool = False  # read through csv_lines (some line is malformed) rather than by the engine directly
    malformed: list[Malformed] = field(default_factory=list)
    ends_cleanly: bool = True
    input_file: str = ""  # the staged input's name, as the engine reports it
    input_path: Path | None = None
    earlier_records: int | None = None  # an appended file's records before (its manifest entry)
    split_records: int | None = None  # records of the part read as csv_lines counted them, malformed ones included
    unit_separator: bool = False  # a value read holds chr(31) that the raw bytes do not (a JSON escape)

    def __post_init__(self) -> None:
        if self.is_json:
            self.is_split = True  # every JSON line is read by json_lines
        if (self.is_json or not self.source.csv.header) and not self.is_tail:  # no header: the first line is data
            self.first_line = 1

    @property
    def is_json(self) -> bool:
        return self.source.format_of(self.relative) == "ndjson"

    @property
    def is_tail(self) -> bool:
        return self.offset > 0

    @property
    def records(self) -> int | None:
        """The file's data records, counted apart from the engine: by the scan, else by csv_lines (None: unknown)."""
        if self.scan.records is not None or self.split_records is None:
            return self.scan.records
        if self.is_tail:
            return None if self.earlier_records is None else self.earlier_records + self.split_records
        return self.split_records

    @property
    def expected_rows(self) -> int | None:
        """The data records of the part read, counted apart from the engine (None where they cannot be)."""
        if self.scan.records is None:
            return None
        if self.is_tail:
            return None if self.earlier_records is None else self.scan.records - self.earlier_records
        return self.scan.records


@dataclass
class Discovery:
    units: list[Unit] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # refused by this run: path -> reason
    unmatched: list[str] = field(default_factory=list)
    not_regular: dict[str, str] = field(default_factory=dict)  # path -> what it is (a FIFO, a dangling link...)
    copies: dict[str, str] = field(default_factory=dict)  # new path -> the ingested file holding the same content
    ignored: list[str] = field(default_factory=list)  # changed files whose earlier version stays (on_change: ignore)


def manifest_path(ctx: RunContext) -> Path:
    return ctx.layout.state / MANIFEST


def load_manifest(ctx: RunContext) -> dict:
    manifest = storage.read_json(manifest_path(ctx), {})
    for key in ("files", "batches", "copies", "refused"):
        manifest.setdefault(key, {})
    return manifest


class ManifestLost(PipelineError):
    """Bronze holds data its manifest does not account for: nothing is changed until the manifest is rebuilt."""


def repair_command(ctx: RunContext) -> str:
    return f"clickstream repair-manifest --data-dir {shlex.quote(str(ctx.layout.data_dir))}"


def load_committed(ctx: RunContext) -> dict:
    """The manifest, refused (ManifestLost) where it cannot prove what bronze holds: missing while bronze holds
    data, or unreadable. A run never deletes published data on a guess."""
    path = manifest_path(ctx)
    fix = f"nothing was changed; rebuild it from bronze's own files with: {repair_command(ctx)}"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    except (ValueError, OSError) as exc:  # not JSON, not UTF-8, not a file
        raise ManifestLost(f"bronze: the manifest {path} cannot be read ({shorten(str(exc), 200)}); {fix}") from exc
    if manifest is not None and not (isinstance(manifest, dict)
                                     and all(isinstance(manifest.get(k, {}), dict) for k in _MANIFEST_KEYS)):
        raise ManifestLost(f"bronze: the manifest {path} is not a bronze manifest (a JSON object of "
                           f"{', '.join(_MANIFEST_KEYS)}); {fix}")
    if manifest is None:
        held = storage.parquet_files(ctx.layout.bronze)
        if held:
            raise ManifestLost(f"bronze: the manifest {path} is missing, yet {ctx.layout.bronze} holds "
                               f"{len(held)} Parquet file(s); {fix}")
        manifest = {}
    for key in _MANIFEST_KEYS:
        manifest.setdefault(key, {})
    return manifest


def remove_interrupted_batch(ctx: RunContext, manifest: dict) -> list[Path]:
    """Delete what a run interrupted while publishing left in bronze (the batch its manifest names as
    `publishing`); refuse (ManifestLost) if bronze holds a batch the manifest neither records nor names."""
    try:
        return storage.remove_interrupted_batch(ctx.layout.bronze, set(manifest["batches"]),
                                                manifest.get("publishing"))
    except storage.UnrecordedBatches as exc:
        files = sorted(f for found in exc.batches.values() for f in found)
        raise ManifestLost(f"bronze: {ctx.layout.bronze} holds {len(files)} Parquet file(s) of {len(exc.batches)} "
                           f"batch(es) that the manifest {manifest_path(ctx)} does not record, e.g. {files[0]} (an "
                           f"older copy of the manifest?); nothing was changed; rebuild it from bronze's own files "
                           f"with: {repair_command(ctx)}") from exc


def may_hold_unit_separator(manifest: dict, batches: set[str] | None = None) -> bool:
    """Whether a file (of `batches`, or any ever ingested) holds chr(31), or is not known not to (sql.key_of)."""
    for entry in manifest["files"].values():
        for version in [entry, *entry.get("previous", [])]:
            if batches is None or any(part["batch_id"] in batches for part in parts_of(version)):
                if version.get("unit_separator", True):
                    return True
    return False


def parts_of(entry: dict) -> list[dict]:
    """The batches holding a file's current version: one, or one per appended part."""
    return entry.get("parts") or [{"batch_id": entry["batch_id"], "rows": entry["rows"], "offset": 0}]


def run(ctx: RunContext) -> dict | None:
    """Ingest the raw files not seen before (and new versions of changed ones) as one batch.

    Returns the batch record, or None when there was nothing to ingest.
    """
    started = time.perf_counter()
    layout = ctx.layout
    manifest = load_committed(ctx)
    removed = remove_interrupted_batch(ctx, manifest)
    manifest.pop("publishing", None)
    if removed:
        log.warning("removed %d bronze file(s) left by an interrupted run", len(removed))
    inputs = storage.staging_path(layout.data_dir, "bronze-inputs")
    inputs.mkdir()
    found = discover(ctx, manifest, inputs)
    report = {"batch_id": None, "files": [], "refused": _current_refusals(manifest, found),
              "unmatched": found.unmatched, "not_regular": found.not_regular, "copies": found.copies,
              "ignored_changes": found.ignored}
    ctx.record.bronze = report
    if found.refused and ctx.config.quality.refused_files == "fail":
        first = next(iter(found.refused.items()))
        raise InputError(f"bronze: {len(found.refused)} raw file(s) refused, e.g. {first[0]}: {first[1]} "
                         f"(quality.refused_files: fail; nothing ingested)")
    if not found.units:
        shutil.rmtree(inputs, ignore_errors=True)
        storage.write_json(manifest_path(ctx), manifest)  # touched files, copies, refusals
        log.info("bronze: no new raw files in %s", layout.raw)
        return None

    batch_id = ctx.run_id
    ingested_at = ctx.started_at.strftime("%Y-%m-%d %H:%M:%S.%f")
    with ctx.profile.step("stage inputs", "bronze"):
        _stage_inputs(found.units, inputs)
    with ctx.profile.step("write", "bronze"):
        staged, profile = _write_batch(ctx, found.units, batch_id, ingested_at)
    with ctx.profile.step("publish", "bronze"):
        manifest["publishing"] = batch_id  # recorded before a file moves: a later run deletes only what is named so
        storage.write_json(manifest_path(ctx), manifest)
        published = storage.publish_batch(staged, layout.bronze, batch_id)
        files_record = _commit(ctx, manifest, found.units, profile, batch_id, ingested_at, published)
    total = sum(f["part_rows"] for f in files_record)
    elapsed = time.perf_counter() - started
    log.info("bronze: batch %s, %d file(s), %d rows in %.2f s", batch_id, len(found.units), total, elapsed)
    report.update({"batch_id": batch_id, "rows": total, "files": files_record, "seconds": round(elapsed, 3)})
    return manifest["batches"][batch_id]


def _commit(ctx: RunContext, manifest: dict, units: list[Unit], profile: dict, batch_id: str,
            ingested_at: str, published: list[Path]) -> list[dict]:
    """Record the batch and each file's new entry in the manifest (the commit); returns the files' records for
    the quality report."""
    files_record = []
    retracts = []
    for unit in units:
        stats = profile.get(unit.relative) or {"rows": 0, "malformed_rows": 0,
                                               "null_counts": {c: 0 for c in PROFILED_RAW_COLUMNS}}
        record = _record(manifest, unit, stats, batch_id, ingested_at)
        if unit.retracts:
            retracts.append({"source_file": unit.relative, "batch_ids": unit.retracts})
        completeness = _completeness(stats)
        log.info("bronze: %s rows=%d malformed=%d completeness=%.4f%s", unit.relative, stats["rows"],
                 stats["malformed_rows"], completeness,
                 " (appended lines)" if unit.is_tail else " (new version)" if unit.retracts else "")
        files_record.append({**record, "part_rows": stats["rows"], "malformed_rows": stats["malformed_rows"],
                             "null_counts": stats["null_counts"], "completeness": completeness,
                             "appended": unit.is_tail, "replaces_batches": unit.retracts})
    manifest["batches"][batch_id] = {"ingested_at": ingested_at, "files": [u.relative for u in units],
                                     "rows": sum(f["part_rows"] for f in files_record), "retracts": retracts,
                                     "parquet": [f.relative_to(ctx.layout.bronze).as_posix() for f in published],
                                     **_mappings(units)}
    manifest.pop("publishing", None)
    storage.write_json(manifest_path(ctx), manifest)
    return files_record


def _mappings(units: list[Unit]) -> dict:
    """What the batch was written with, so that silver can read it under a later mapping (remap.py): each
    source's `columns`, and each CSV file's header."""
    columns, headers = {}, {}
    for unit in units:
        columns[unit.source.name] = remap.columns_of(unit.source)
        if unit.header and not unit.is_json:
            headers.setdefault(unit.source.name, {})[unit.relative] = unit.header
    return {"columns": columns, "headers": headers}


# ---- what to ingest

def discover(ctx: RunContext, manifest: dict, snapshots: Path) -> Discovery:
    """What this batch ingests, and what it refuses, skips or warns about; updates `manifest` for the files it
    only looked at (touched, copies, refusals), never for what it ingests (that waits for the publish). Each
    file read is first copied under `snapshots` and hashed from there; a unit reads its snapshot."""
    raw_dir = ctx.layout.raw
    if not raw_dir.is_dir():
        raise PipelineError(f"raw input directory not found: {raw_dir} (create it and put CSV files in it)")
    found = Discovery()
    listed, found.not_regular = list_files(raw_dir)
    owners, ambiguous = match_sources(raw_dir, ctx.config.sources, listed)
    for relative, what in found.not_regular.items():
        log.warning("bronze: %s is %s", relative, what)
    found.unmatched = [f for f in listed if f not in owners and f not in ambiguous]
    if found.unmatched:
        shown = ", ".join(repr(f) for f in found.unmatched[:_SHOWN])
        more = f" and {len(found.unmatched) - _SHOWN} more" if len(found.unmatched) > _SHOWN else ""
        log.warning("bronze: %d file(s) in %s match no source glob (%s) and are not ingested: %s%s",
                    len(found.unmatched), raw_dir, _globs(ctx), shown, more)
    if not owners and not ambiguous and not manifest["files"]:
        hint = f"; it holds {len(found.unmatched)} other file(s), e.g. {found.unmatched[0]!r}" if found.unmatched \
            else ""
        raise PipelineError(f"no raw files matched {_globs(ctx)} in {raw_dir}{hint}")
    for kind in ("refused", "copies"):  # files gone from raw/ are no longer refused or copies of anything
        for relative in [r for r in manifest[kind] if r not in owners and r not in ambiguous]:
            del manifest[kind][relative]
    for relative, reason in ambiguous.items():
        _refuse(manifest, found, relative, raw_dir / relative, None, reason)
    _forget_refusals_under_other_config(manifest, owners)

    current = {entry["sha256"]: path for path, entry in manifest["files"].items()}
    replaced: dict[str, str] = {}  # files this batch replaces: path -> new sha256
    changed = [(relative, source) for relative, source in owners.items() if not _unchanged(manifest, raw_dir, relative)]
    scans = _scan_all(manifest, raw_dir, changed, snapshots, ctx.profile)
    # Files ingested before come first: a new file holding what one of them now holds is then a copy of it.
    for relative, source in sorted(changed, key=lambda item: (item[0] not in manifest["files"], item[0])):
        facts, snapshot = scans[relative]
        if isinstance(facts, str):
            _refuse(manifest, found, relative, raw_dir / relative, None, facts, unreadable=True)
            continue
        unit = _consider(ctx, manifest, found, relative, snapshot, source, manifest["files"].get(relative),
                         current, facts)
        if unit is None:
            snapshot.unlink()
        else:
            found.units.append(unit)
            current.setdefault(unit.scan.sha256, relative)
            if unit.retracts:
                replaced[relative] = unit.scan.sha256
    _ingest_orphaned_copies(ctx, manifest, found, owners, replaced, snapshots)
    return found


def _unchanged(manifest: dict, raw_dir: Path, relative: str) -> bool:
    """Whether a file has the size and modification time it had when last looked at (then it is not read)."""
    try:
        stat = (raw_dir / relative).stat()
    except OSError:
        return False  # gone since it was listed: the read says why
    entry = manifest["files"].get(relative)
    return any(known and known["size"] == stat.st_size and known["mtime_ns"] == stat.st_mtime_ns
               for known in (entry, manifest["copies"].get(relative), manifest["refused"].get(relative),
                             (entry or {}).get("ignored")))


def _appendable(entry: dict | None, relative: str) -> bool:
    """Whether a file's next version may be its lines appended: its last one ended cleanly, and it is not gzip."""
    return bool(entry and entry.get("ends_cleanly") and not relative.lower().endswith(".gz"))


def _scan_all(manifest: dict, raw_dir: Path, files: list[tuple[str, Source]], snapshots: Path,
              profile: Profile) -> dict[str, tuple[Scan | str, Path]]:
    """Scan the files, several at once (hashing and counting let go of the interpreter for each block), each
    into its snapshot; a file that cannot be read gets why instead of its scan."""
    def one(numbered: tuple[int, tuple[str, Source]]) -> tuple[Scan | str, Path]:
        number, (relative, source) = numbered
        entry = manifest["files"].get(relative)
        snapshot = _snapshot_path(snapshots, relative, number)
        with profile.step(f"scan {relative}", "bronze", own_thread=len(files) >= 2):
            try:
                return scan(raw_dir / relative, prefix_size=entry["size"] if _appendable(entry, relative) else None,
                            snapshot=snapshot, **scan_options(source, relative)), snapshot
            except OSError as exc:
                snapshot.unlink(missing_ok=True)
                return _unreadable(exc), snapshot

    numbered = list(enumerate(files, start=1))
    if len(files) < 2:
        return {relative: one((number, (relative, source))) for number, (relative, source) in numbered}
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return dict(zip((relative for relative, _ in files), pool.map(one, numbered)))


def _snapshot_path(snapshots: Path, relative: str, number: int) -> Path:
    """A plain name for a file's snapshot, keeping `.gz` (read decompressed)."""
    return snapshots / (f"raw-{number:06d}" + (".csv.gz" if relative.lower().endswith(".gz") else ".csv"))


def _unreadable(exc: OSError) -> str:
    """Why a file listed in raw/ could not be read, in one line."""
    if isinstance(exc, FileNotFoundError):
        return "removed from raw/ while the run read it"
    what = (exc.strerror or str(exc)).lower()
    if isinstance(exc, IsADirectoryError):
        what = "not a regular file any more"
    return f"cannot be read ({what}); it is tried again at the next run"


def _consider(ctx: RunContext, manifest: dict, found: Discovery, relative: str, path: Path, source: Source,
              entry: dict | None, current: dict[str, str], facts: Scan) -> Unit | None:
    """The unit to ingest for a file that is new or changed since it was last looked at, or None."""
    appendable = _appendable(entry, relative)
    if entry is not None and facts.sha256 == entry["sha256"]:
        entry["mtime_ns"] = facts.mtime_ns  # touched, not changed: remember, so it is not read again
        return None
    if entry is not None and (entry.get("ignored") or {}).get("sha256") == facts.sha256:
        entry["ignored"]["mtime_ns"] = facts.mtime_ns
        return None
    refused = manifest["refused"].get(relative)
    if refused and refused.get("sha256") == facts.sha256:
        refused["mtime_ns"] = facts.mtime_ns  # touched, still the content refused before
        return None
    if facts.refusal:
        _refuse(manifest, found, relative, path, facts, facts.refusal, source)
        return None
    if entry is None:
        if facts.sha256 in current:
            same_as = current[facts.sha256]
            log.info("bronze: skipping %s: same content as %s, already ingested", relative, same_as)
            manifest["copies"][relative] = {"sha256": facts.sha256, "size": facts.size, "mtime_ns": facts.mtime_ns,
                                            "same_as": same_as}
            found.copies[relative] = same_as
            return None
        header, reason = _header(relative, path, source)
        if reason:
            _refuse(manifest, found, relative, path, facts, reason, source)
            return None
        manifest["refused"].pop(relative, None)
        manifest["copies"].pop(relative, None)
        return Unit(relative, path, source, facts, header or [], is_split=facts.needs_splitting)
    # a file ingested before, with other content now
    if source.on_change == "fail":
        raise InputError(f"bronze: {relative} changed since it was ingested in batch {entry['batch_id']} "
                         f"(sources[{source.name}].on_change: fail): restore it, or deliver the new content "
                         f"under a new name")
    if source.on_change == "ignore":
        log.warning("bronze: %s changed since it was ingested; its earlier version stays (on_change: ignore)",
                    relative)
        entry["ignored"] = {"sha256": facts.sha256, "size": facts.size, "mtime_ns": facts.mtime_ns}
        found.ignored.append(relative)
        return None
    header, reason = _header(relative, path, source)
    if reason:
        _refuse(manifest, found, relative, path, facts, reason + "; its earlier version stays", source)
        return None
    manifest["refused"].pop(relative, None)
    if appendable and facts.prefix_sha256 == entry["sha256"]:
        log.info("bronze: %s grew since it was ingested: ingesting the lines after its first %d bytes",
                 relative, entry["size"])
        return Unit(relative, path, source, facts, header or [], offset=entry["size"],
                    first_line=entry.get("lines", 0) + 1, is_split=facts.needs_splitting,
                    earlier_records=entry.get("records"))
    batches = [part["batch_id"] for part in parts_of(entry)]
    log.warning("bronze: %s changed since it was ingested: its rows of batch(es) %s are replaced by the new "
                "version (on_change: replace)", relative, ", ".join(batches))
    return Unit(relative, path, source, facts, header or [], retracts=batches, is_split=facts.needs_splitting)


def _header(relative: str, path: Path, source: Source) -> tuple[list[str] | None, str | None]:
    """The file's header (or why it is refused); columns the source does not map are named, kept in `extra`."""
    header, reason = fields_of(relative, path, source)
    unmapped = [column for column in header or [] if column not in _mapped(source)]
    if unmapped and source.format_of(relative) == "csv":
        log.info("bronze: %s: %s %s not mapped by source '%s' are kept as text in `extra`", relative,
                 "column(s)" if source.csv.header else "field position(s)", shorten(str(unmapped)), source.name)
    return header, reason


def fields_of(relative: str, path: Path, source: Source) -> tuple[list[str] | None, str | None]:
    """A CSV file's header (headerless: its positions), or the fields json_lines writes of a JSON-lines file; or
    None and why the file is refused."""
    if source.format_of(relative) == "csv":
        return read_header(path, source)
    positions = sorted(key for key, column in source.columns.items() if isinstance(column, int))
    if positions:
        return None, (f"a JSON-lines file (by its name), but source '{source.name}' maps {positions} to positions "
                      f"(csv.header: false); set sources[].format, or map dotted paths")
    return canonical_header(list(remap.columns_of(source).values())), None


def _ingest_orphaned_copies(ctx: RunContext, manifest: dict, found: Discovery, owners: dict[str, Source],
                            replaced: dict[str, str], snapshots: Path) -> None:
    """A file skipped as a copy of one this batch replaces holds content no other file holds any more."""
    for number, (relative, copy) in enumerate(list(manifest["copies"].items()), start=1):
        if copy["same_as"] in replaced and replaced[copy["same_as"]] != copy["sha256"] and relative in owners:
            path = snapshots / f"copy-{_snapshot_path(snapshots, relative, number).name}"
            try:
                facts = scan(ctx.layout.raw / relative, snapshot=path, **scan_options(owners[relative], relative))
            except OSError:
                continue  # gone or unreadable: it stays a copy, and its next change is read again
            header, reason = fields_of(relative, path, owners[relative])
            if facts.refusal or reason:
                continue
            log.info("bronze: ingesting %s: the file it copied (%s) changed", relative, copy["same_as"])
            del manifest["copies"][relative]
            found.copies.pop(relative, None)
            found.units.append(Unit(relative, path, owners[relative], facts, header or [],
                                    is_split=facts.needs_splitting))


def _refuse(manifest: dict, found: Discovery, relative: str, path: Path, facts: Scan | None, reason: str,
            source: Source | None = None, unreadable: bool = False) -> None:
    """Refuse one file: named in the log and the quality report; retried when it changes, or at every run when
    it could not be read (no size is kept, so it is never taken as looked at)."""
    log.warning("bronze: refused %s: %s%s", relative, reason, "" if unreadable else
                " (it is retried when its content or its source's config changes)")
    if unreadable:
        size = mtime_ns = None
    elif facts is not None:
        size, mtime_ns = facts.size, facts.mtime_ns
    else:
        try:
            stat = path.stat()
            size, mtime_ns = stat.st_size, stat.st_mtime_ns
        except OSError:
            size = mtime_ns = None
    manifest["refused"][relative] = {"sha256": facts.sha256 if facts else None, "size": size,
                                     "mtime_ns": mtime_ns, "reason": reason,
                                     "config": reading_fingerprint(source) if source else None}
    found.refused[relative] = reason


def reading_fingerprint(source: Source) -> str:
    """A digest of how a source's files are read (glob, CSV options, columns, formats, ...): a file refused under
    one is tried again under another, so a fixed config never leaves a file stranded."""
    text = json.dumps(source.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _forget_refusals_under_other_config(manifest: dict, owners: dict[str, Source]) -> None:
    """A refusal recorded under another reading config than its source's now no longer stands: the file is read
    again (a manifest written before refusals named their config counts as another config)."""
    for relative, entry in list(manifest["refused"].items()):
        source = owners.get(relative)
        if source is not None and entry.get("config") != reading_fingerprint(source):
            log.info("bronze: trying %s again: it was refused under another config of source '%s'", relative,
                     source.name)
            del manifest["refused"][relative]


def _current_refusals(manifest: dict, found: Discovery) -> list[dict]:
    """Every file refused and unchanged since, this run's refusals included."""
    return [{"path": path, "reason": entry["reason"], "this_run": path in found.refused}
            for path, entry in sorted(manifest["refused"].items())]


def _globs(ctx: RunContext) -> str:
    return ", ".join(f"`{source.glob}`" for source in ctx.config.sources)


# ---- reading

def _stage_inputs(units: list[Unit], inputs: Path) -> None:
    """Put each part to read under a plain name; the parts read line by line are split last, side by side."""
    to_split = [unit for number, unit in enumerate(units, start=1) if not _stage_input(unit, inputs, number)]
    if len(to_split) > 1 and sum(unit.scan.size - unit.offset for unit in to_split) >= PARALLEL_SPLIT_BYTES:
        # one process per core: splitting is Python's work, one core each (JSON lines are all split)
        with ProcessPoolExecutor(max_workers=min(len(to_split), os.cpu_count() or 1),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            splits = list(pool.map(_split_part, [_split_args(unit) for unit in to_split]))
    else:
        splits = [_split_part(_split_args(unit)) for unit in to_split]
    for unit, split in zip(to_split, splits):
        _took_split(unit, split)


def _stage_input(unit: Unit, inputs: Path, number: int) -> bool:
    """Put the part to read under a plain name: its snapshot, or a copy of its appended lines; False when it is
    to be read line by line instead (its split input named)."""
    suffix = ".csv.gz" if unit.path.name.lower().endswith(".gz") else ".csv"
    unit.input_file = f"{number:06d}{suffix}"
    unit.input_path = inputs / unit.input_file
    if unit.is_split or unit.expected_rows is None:
        # the scan counts records only where the escape is the quote doubled: csv_lines reads and counts the others
        _name_split(unit)
        return False
    if unit.is_tail:
        with unit.path.open("rb") as source, unit.input_path.open("xb") as target:
            if unit.source.csv.header:
                target.write(header_line(unit.path, unit.source.csv))
            source.seek(unit.offset)
            for block in iter(lambda: source.read(1 << 20), b""):
                target.write(block)
        unit.ends_cleanly = unit.scan.ends_with_break
    else:
        unit.path.rename(unit.input_path)  # the snapshot, in the same folder
        unit.path = unit.input_path
        unit.ends_cleanly = unit.scan.ends_with_break
    return True


def _name_split(unit: Unit) -> None:
    unit.is_split = True
    # A new name: the staged input may be the snapshot the split reads.
    unit.input_file = unit.input_file.split(".", 1)[0] + "-split.csv"
    unit.input_path = unit.input_path.with_name(unit.input_file)


def _split_input(unit: Unit) -> None:
    """Read a staged part line by line after all (the engine could not read it whole)."""
    _name_split(unit)
    _took_split(unit, _split_part(_split_args(unit)))


def _split_args(unit: Unit) -> tuple:
    return unit.path, unit.relative, unit.source, unit.header, unit.input_path, unit.offset, unit.first_line


def _split_part(args: tuple) -> Split:
    """Read a part through csv_lines or json_lines into its canonical CSV (in a process of its own, or not)."""
    path, relative, source, header, input_path, offset, first_line = args
    with input_path.open("x", encoding="utf-8", newline="") as canonical:
        canonical.write(",".join(f"c{index}" for index in range(len(header))) + "\n")
        return split_raw_file(path, relative, source, header, canonical, offset=offset, first_line=first_line)


def _took_split(unit: Unit, split: Split) -> None:
    """What the split of a part found: its records, its malformed lines kept aside (or the run stopped)."""
    unit.unit_separator = split.unit_separator
    unit.malformed = split.malformed
    unit.ends_cleanly = split.ends_cleanly
    unit.split_records = split.records + len(split.malformed)
    if split.malformed:
        first = split.malformed[0]
        if unit.source.on_malformed == "fail":
            raise InputError(f"bronze: {unit.relative} line {first.line}: {first.reason} ({shorten(first.raw_text)!r}); "
                             f"{len(split.malformed)} malformed line(s) in all (sources[{unit.source.name}]"
                             f".on_malformed: fail; nothing ingested)")
        log.warning("bronze: %s: %d malformed line(s) kept for quarantine, e.g. line %d (%s)", unit.relative,
                    len(split.malformed), first.line, first.reason)


def _write_batch(ctx: RunContext, units: list[Unit], batch_id: str, ingested_at: str) -> tuple[Path, dict]:
    """Write the batch to staging and profile what was written, per file.

    A file the engine refuses, or reads into another number of rows than its records counted apart
    (`Scan.records`: an engine must never drop a line silently), is split by csv_lines and the batch written
    again.
    """
    engine = ctx.engine
    while True:
        _register_batch(engine, units, batch_id, ingested_at)
        staged = storage.staging_path(ctx.layout.data_dir, "bronze")
        direct = [unit for unit in units if not unit.is_split]
        metrics = _profile_metrics(engine, units)
        try:
            measured = engine.write_parquet("bronze_batch", staged, partition_by=[PARTITION_COLUMN], metrics=metrics)
        except InputError as exc:
            named = [unit for unit in direct if f"/{unit.input_file}" in str(exc)]
            if not direct:
                raise InputError(f"bronze: cannot read raw file(s) {[u.relative for u in units]}: {exc}") from exc
            for unit in named or direct:
                log.info("bronze: %s is not read whole by the engine (%s); splitting out its malformed lines",
                         unit.relative, shorten(str(exc).splitlines()[0] if str(exc) else "", 200))
                _split_input(unit)
            continue
        if metrics:
            profile = _profile_from_metrics(units, measured)
        else:  # too many files for one measure each: a pass over what was written
            engine.read_parquet("bronze_staged", storage.parquet_files(staged), BRONZE, partitioned=True)
            profile = _profile(ctx, "bronze_staged")
            engine.drop("bronze_staged")
            unexpected = sorted(set(profile) - {unit.relative for unit in units})
            if unexpected:
                raise PipelineError(f"bronze: rows attributed to unexpected source files {unexpected}")
        _check_split_rows(units, profile)
        miscounted = [unit for unit in direct if unit.expected_rows is not None
                      and profile.get(unit.relative, {}).get("rows", 0) != unit.expected_rows]
        if not miscounted:
            return staged, profile
        for unit in miscounted:
            log.warning("bronze: the engine read %d row(s) of %s, which holds %d record(s): splitting it line by line "
                        "instead", profile.get(unit.relative, {}).get("rows", 0), unit.relative, unit.expected_rows)
            _split_input(unit)


def _check_split_rows(units: list[Unit], profile: dict) -> None:
    """The rows of a part read line by line must be the records counted there (malformed ones included)."""
    for unit in units:
        rows = profile.get(unit.relative, {}).get("rows", 0)
        if unit.is_split and unit.split_records is not None and rows != unit.split_records:
            raise PipelineError(f"bronze: the engine read {rows} row(s) of {unit.relative}, which holds "
                                f"{unit.split_records} record(s) read line by line; nothing was ingested")


# A group of up to this many files names each row's file with a CASE over their names (literals, quoted by the
# engine); a larger group joins the table of inputs instead (a CASE of thousands of branches per row is slower).
_CASE_AT_MOST = 64


def _register_batch(engine: Engine, units: list[Unit], batch_id: str, ingested_at: str) -> None:
    engine.register_rows(INPUTS, _INPUTS_SCHEMA, [(u.input_file, u.source.name, u.relative) for u in units])
    engine.register_rows(MALFORMED, _MALFORMED_SCHEMA, [(u.input_file, m.line, m.reason, m.raw_text)
                                                        for u in units for m in u.malformed])
    groups: dict[tuple[str, tuple[str, ...], bool, bool], list[Unit]] = {}
    for unit in units:
        if unit.header:  # an empty file has nothing to read
            groups.setdefault((unit.source.name, tuple(unit.header), unit.is_split, unit.is_json), []).append(unit)
    batch = (f"{engine.quote_literal(batch_id)} as batch_id, timestamp '{ingested_at}' as ingestion_timestamp, "
             f"cast(timestamp '{ingested_at}' as date) as {PARTITION_COLUMN}")
    selects = []
    for index, ((source_name, header, is_split, _), members) in enumerate(groups.items()):
        view = f"raw_csv_{index}"
        options: CsvOptions = CANONICAL_CSV if is_split else members[0].source.csv
        engine.read_csv(view, [u.input_path for u in members], len(header), options)
        lineage = (f"{engine.quote_literal(source_name)} as source_name, case raw.input_file "
                   + " ".join(f"when {engine.quote_literal(u.input_file)} then {engine.quote_literal(u.relative)}"
                              for u in members) + " end as source_file")
        source = f"{view} raw"
        if len(members) > _CASE_AT_MOST:
            lineage = "inputs.source_name, inputs.source_file"
            source = f"{view} raw join {INPUTS} inputs on raw.input_file = inputs.input_file"
        selects.append(f"select {_canonical_columns(engine, members[0], list(header))}, "
                       f"cast(null as bigint) as source_line, cast(null as string) as raw_line, "
                       f"cast(null as string) as parse_error, {lineage}, {batch} from {source}")
    nulls = ", ".join(f"cast(null as string) as {c}" for c in [*CANONICAL_RAW_COLUMNS, EXTRA])
    selects.append(f"select {nulls}, malformed.source_line, malformed.raw_line, malformed.parse_error, "
                   f"inputs.source_name, inputs.source_file, {batch} "
                   f"from {MALFORMED} malformed join {INPUTS} inputs on malformed.input_file = inputs.input_file")
    engine.create_view("bronze_batch", " union all ".join(selects))


def _canonical_columns(engine: Engine, unit: Unit, header: list[str]) -> str:
    """The canonical raw columns of a file, taken by position (`c3`) from its header's names, and `extra`: the
    fields no canonical column maps, as a JSON object of their names (JSON lines: the object csv_lines' JSON
    counterpart wrote as the last field)."""
    columns = []
    for canonical in CANONICAL_RAW_COLUMNS:
        file_column = unit.source.columns[canonical]
        # a name is found in the header; a position (csv.header: false) is its own index there ('0', '1', ...)
        columns.append(f"raw.c{header.index(str(file_column))} as {canonical}" if file_column is not None
                       else f"cast(null as string) as {canonical}")
    if unit.is_json:
        columns.append(f"raw.c{len(header) - 1} as {EXTRA}")
    else:
        unmapped = [(engine.quote_literal(name), f"raw.c{index}") for index, name in enumerate(header)
                    if name not in _mapped(unit.source)]
        columns.append(f"{engine.json_object(unmapped) if unmapped else 'cast(null as string)'} as {EXTRA}")
    return ", ".join(columns)


def _mapped(source: Source) -> set[str]:
    """The file's names (or positions, as text) a canonical column maps."""
    return set(remap.columns_of(source).values())


# ---- what was written

def _record(manifest: dict, unit: Unit, stats: dict, batch_id: str, ingested_at: str) -> dict:
    """The manifest entry of a file after this batch."""
    earlier = manifest["files"].get(unit.relative)
    part = {"batch_id": batch_id, "rows": stats["rows"], "offset": unit.offset}
    record = {"path": unit.relative, "source_name": unit.source.name, "size": unit.scan.size,
              "mtime_ns": unit.scan.mtime_ns, "sha256": unit.scan.sha256, "lines": unit.scan.lines,
              "records": unit.records, "unit_separator": unit.scan.unit_separator or unit.unit_separator,
              "ends_cleanly": unit.ends_cleanly, "batch_id": batch_id, "ingested_at": ingested_at}
    if earlier and unit.is_tail:
        parts = parts_of(earlier) + [part]
        record.update(rows=sum(p["rows"] for p in parts), parts=parts, previous=earlier.get("previous", []))
    else:
        record.update(rows=stats["rows"], parts=[part])
        if earlier:  # a new version: the earlier one is kept as history, its rows replaced in silver
            old = {k: v for k, v in earlier.items() if k not in ("previous", "ignored")}
            record["previous"] = earlier.get("previous", []) + [{**old, "replaced_by": batch_id}]
    manifest["files"][unit.relative] = record
    return record


# A batch of up to this many files is profiled by the write itself (a few counts per file); a larger one by a
# pass over what was written, grouped by file.
_MEASURED_AT_MOST = 32


def _profile_metrics(engine: Engine, units: list[Unit]) -> dict[str, str] | None:
    """Per file: rows, malformed rows and NULLs per raw column, as aggregates the write measures."""
    if len(units) > _MEASURED_AT_MOST:
        return None
    metrics = {"all_rows": "count(*)"}
    for index, unit in enumerate(units):
        of_file = f"source_file = {engine.quote_literal(unit.relative)}"
        metrics[f"rows_{index}"] = f"count(case when {of_file} then 1 end)"
        metrics[f"malformed_{index}"] = f"count(case when {of_file} and parse_error is not null then 1 end)"
        for position, column in enumerate(PROFILED_RAW_COLUMNS):
            metrics[f"null_{index}_{position}"] = (f"count(case when {of_file} and parse_error is null and {column} "
                                                   f"is null then 1 end)")
    return metrics


def _profile_from_metrics(units: list[Unit], measured: dict) -> dict[str, dict]:
    profile = {}
    for index, unit in enumerate(units):
        if measured[f"rows_{index}"]:
            profile[unit.relative] = {
                "rows": int(measured[f"rows_{index}"]), "malformed_rows": int(measured[f"malformed_{index}"]),
                "null_counts": {column: int(measured[f"null_{index}_{position}"])
                                for position, column in enumerate(PROFILED_RAW_COLUMNS)}}
    if sum(entry["rows"] for entry in profile.values()) != measured["all_rows"]:
        raise PipelineError(f"bronze: {measured['all_rows']} rows written, of which only "
                            f"{sum(entry['rows'] for entry in profile.values())} belong to the batch's files")
    return profile


def _profile(ctx: RunContext, view: str) -> dict[str, dict]:
    columns, rows = ctx.engine.fetch(render("bronze/profile_per_file", ctx.engine, view=view,
                                            columns=PROFILED_RAW_COLUMNS))
    profile = {}
    for row in rows:
        values = dict(zip(columns, row))
        profile[values["source_file"]] = {
            "rows": int(values["n_rows"]),
            "malformed_rows": int(values["n_malformed"]),
            "null_counts": {c: int(values[c]) for c in PROFILED_RAW_COLUMNS},
        }
    return profile


def _completeness(stats: dict) -> float:
    cells = (stats["rows"] - stats["malformed_rows"]) * len(PROFILED_RAW_COLUMNS)
    return 1.0 if cells == 0 else 1 - sum(stats["null_counts"].values()) / cells

