"""Watching raw/: the incremental pipeline in micro-batches, run as soon as new or changed files are complete.

`clickstream watch` looks at raw/ every `interval` seconds, and at once when a file or folder is created or moved
in there (raw_changes.py, on Linux). A file is *pending* when bronze would read it: a
source's glob matches it, and its size and modification time are not those the bronze manifest recorded for
it. A pending file is *complete* when

- it was moved in: it was not at this path (as this file) at the previous look, and its last change was not a
  write: its change time, which a rename or a link sets, is later than its modification time, or its
  modification time is older than the previous look (it was written before it came here); or
- its size and modification time have not changed for one interval.

Files still named `*.tmp`, `*.part`, `*.partial` or `*.crdownload`, and hidden files, are never pending
(raw_files.is_listed): write under such a name, then rename. Bronze reads every file of raw/, so a batch runs
only when every pending file is complete: a file still being written under its final name holds it back.

A batch is `pipeline.run_layers` (every layer, incremental), which holds the data directory's writer lock for
the batch alone: `clickstream run` or `verify` can take it between batches, and a batch that finds it taken
waits for the next look. SIGINT and SIGTERM let the current batch finish, then the watch stops (exit 0); a
second signal stops it at once (the next run recovers what the batch left, as after a crash).

Each batch logs, and adds to its quality report (`watch`), its files, how each was found complete, its counts,
and its latency: from each file's arrival (when it was last written or moved in, at the latest when first
seen) to analytics updated.
"""
from __future__ import annotations

import logging
import os
import signal
import stat
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clickstream import bronze, incremental, storage
from clickstream.config import Config, Source
from clickstream.context import Layout, PipelineError
from clickstream.engines import InputError, create_engine
from clickstream.lock import DataDirectoryInUse
from clickstream.logs import job_log
from clickstream.pipeline import LAYERS, run_layers
from clickstream.raw_changes import RawChanges
from clickstream.raw_files import match_sources
from clickstream.report.escape import shorten

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 2.0
# File systems keep modification times coarsely (a clock tick; whole seconds on some, two on FAT), so a file
# written just after a look may carry a time just before it: only a file older than the previous look by this
# much was surely written before it.
CLOCK_SLACK_SECONDS = 2.0
MOVED_IN = "moved in"
STABLE = "unchanged for an interval"
_SHOWN = 5  # file names in one log line
_SIGNAL_STEP_SECONDS = 0.05  # how often a sleeping watch checks whether it was asked to stop


@dataclass(frozen=True)
class Sighting:
    """One look at a file of raw/: which file it is, its content's size and time, and its last change."""

    inode: tuple[int, int]  # device and inode: a file renamed over another one is another file
    size: int
    mtime_ns: int  # last write (of the file a symbolic link names)
    ctime_ns: int  # last change of the entry in raw/: a write, a rename, a link (a symbolic link's own)

    @property
    def content(self) -> tuple[tuple[int, int], int, int]:
        return self.inode, self.size, self.mtime_ns

    @property
    def arrived_ns(self) -> int:
        """When it was last written or moved in (a symbolic link made before its file was written: the write)."""
        return max(self.ctime_ns, self.mtime_ns)


def sight(path: Path) -> Sighting | None:
    """The file at `path` now, or None if it is gone."""
    try:
        entry = os.lstat(path)
        target = os.stat(path) if stat.S_ISLNK(entry.st_mode) else entry
    except (FileNotFoundError, NotADirectoryError):
        return None
    return Sighting((target.st_dev, target.st_ino), target.st_size, target.st_mtime_ns, entry.st_ctime_ns)


def completeness(now: Sighting, before: Sighting | None, unchanged_for: float, previous_look: float | None,
                 interval: float) -> str | None:
    """How a pending file is known to be complete (MOVED_IN or STABLE), or None while it may still be written.

    `before` is the same path at the previous look (None if absent then), `unchanged_for` how long its content
    has been as it is now, `previous_look` the wall-clock time of the previous look (None at the first).
    """
    if before is None or before.inode != now.inode:  # new at this path since the previous look
        if now.ctime_ns > now.mtime_ns:
            return MOVED_IN  # renamed or linked after its last write
        if previous_look is not None and now.mtime_ns < (previous_look - CLOCK_SLACK_SECONDS) * 1e9:
            return MOVED_IN  # written before the previous look, yet not here then
        return None
    if before.content == now.content and unchanged_for >= interval:
        return STABLE
    return None


@dataclass(frozen=True)
class Track:
    """What the watch knows of one path of raw/ between looks."""

    sighting: Sighting
    first_seen: float  # wall-clock time this file was first seen at this path
    since: float  # wall-clock time its content was first seen as it is
    how: str | None = None  # how its content as it is was found complete (it stays so), or None
    found_complete: float = 0.0


@dataclass(frozen=True)
class Ready:
    """A pending file found complete, waiting for its batch."""

    path: str  # relative to raw/
    sighting: Sighting
    how: str
    first_seen: float
    found_complete: float

    @property
    def arrived_at(self) -> float:
        return min(self.sighting.arrived_ns / 1e9, self.first_seen)  # another host's clock may be ahead


@dataclass
class BatchOutcome:
    ran: bool  # False: another run held the data directory
    error: str | None = None


def _recorded(manifest: dict, relative: str, seen: Sighting, source: Source | None = None) -> bool:
    """Whether bronze has looked at this file as it is now (its rule: the size and modification time it
    recorded for the path as an ingested file, a copy, a refusal under its source's config as it is now, or an
    ignored change)."""
    entry = manifest["files"].get(relative)
    refused = manifest["refused"].get(relative)
    if refused and source is not None and refused.get("config") != bronze.reading_fingerprint(source):
        refused = None
    return any(known and known["size"] == seen.size and known["mtime_ns"] == seen.mtime_ns
               for known in (entry, manifest["copies"].get(relative), refused, (entry or {}).get("ignored")))


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _names(paths: list[str]) -> str:
    shown = ", ".join(shorten(p, 80) for p in paths[:_SHOWN])
    return shown + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


class StopSignals:
    """SIGINT and SIGTERM ask the watch to stop once the current batch is done; a second one stops it at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}
        self._changes: RawChanges | None = None

    def wake_on(self, changes: RawChanges | None) -> None:
        """Let a file created or moved in under raw/ end a sleep too (`changes`; None: only the time and a stop)."""
        self._changes = changes

    def install(self) -> None:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def sleep(self, seconds: float) -> bool:
        """Sleep, but return as soon as a stop is asked for, or a file comes under raw/ (`wake_on`); whether a
        file came."""
        deadline = time.monotonic() + seconds
        if self._changes is not None:
            self._changes.watch_folders()
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            step = min(_SIGNAL_STEP_SECONDS, left)
            if self._changes is None:
                time.sleep(step)
            elif self._changes.woken(step, deadline):
                return True
        return False

    def _handle(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            log.warning("watch: %s again: stopping at once (the next run recovers what the batch left)", name)
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.requested = True  # only a flag: the handler may run in the middle of anything
        log.info("watch: %s received: stopping once the current batch is done (send it again to stop at once)",
                 name)


class Watcher:
    """Looks at raw/ and runs a batch whenever pending files are complete (see the module docstring)."""

    def __init__(self, config: Config, interval: float = DEFAULT_INTERVAL_SECONDS,
                 max_batches: int | None = None) -> None:
        self.config = config
        self.interval = interval
        self.max_batches = max_batches
        self.layout = Layout(Path(config.paths.data_dir))
        self.batches = 0
        self.tracks: dict[str, Track] = {}
        self.previous_look: float | None = None
        self._manifest: tuple[tuple[int, int, int] | None, dict] = (None, {})
        self._last_batch: frozenset | None = None  # the pending files the last batch was run for
        self._held_by: set[str] = set()  # files said to hold the next batch back (said once each)
        self._said_unchanged: frozenset | None = None
        self.models_due: str | None = None  # the models' time a batch left the predictive models to be fitted to

    # ---- looking
    def manifest(self) -> dict:
        """The bronze manifest (read again only when it changed; it is replaced whole, so no lock is needed)."""
        path = self.layout.state / bronze.MANIFEST
        try:
            info = path.stat()
            key: tuple[int, int, int] | None = (info.st_ino, info.st_size, info.st_mtime_ns)
        except FileNotFoundError:
            key = None
        if key != self._manifest[0] or key is None:
            manifest = storage.read_json(path, {})
            for part in ("files", "copies", "refused"):
                manifest.setdefault(part, {})
            self._manifest = (key, manifest)
        return self._manifest[1]

    def look(self) -> tuple[list[Ready], list[tuple[str, float]]]:
        """The pending files found complete, and those still changing (path, seconds since their last change)."""
        now = time.time()
        raw = self.layout.raw
        owners, ambiguous = match_sources(raw, self.config.sources) if raw.is_dir() else ({}, {})
        manifest = self.manifest()
        tracks: dict[str, Track] = {}
        ready: list[Ready] = []
        writing: list[tuple[str, float]] = []
        for relative in sorted(set(owners) | set(ambiguous)):
            seen = sight(raw / relative)
            if seen is None:
                continue
            earlier = self.tracks.get(relative)
            same_file = earlier is not None and earlier.sighting.inode == seen.inode
            if same_file and earlier.sighting.content == seen.content:
                track = earlier
            else:
                track = Track(seen, first_seen=earlier.first_seen if same_file else now, since=now)
            if not _recorded(manifest, relative, seen, owners.get(relative)):
                if track.how is None:
                    how = completeness(seen, earlier.sighting if earlier else None, now - track.since,
                                       self.previous_look, self.interval)
                    if how is not None:
                        track = replace(track, how=how, found_complete=now)
                if track.how is None:
                    writing.append((relative, max(0.0, now - seen.mtime_ns / 1e9)))
                else:
                    ready.append(Ready(relative, seen, track.how, track.first_seen, track.found_complete))
            tracks[relative] = track
        self.tracks = tracks
        self.previous_look = now
        return ready, writing

    # ---- running
    def run(self, stop: StopSignals) -> str | None:
        """Look and run batches until asked to stop or `max_batches` ran; the last batch's error, or None."""
        last_error = None
        while not stop.requested:
            ready, writing = self.look()
            pending = frozenset((r.path, r.sighting.content) for r in ready)
            if ready and writing:
                self._announce_waiting(writing)
            elif ready and pending != self._last_batch:
                outcome = self.run_batch(ready)
                if outcome.ran:
                    self._last_batch = pending
                    self._held_by.clear()
                    last_error = outcome.error
                    if self.max_batches is not None and self.batches >= self.max_batches:
                        log.info("watch: %d batch(es) run: stopping (--max-batches)", self.batches)
                        self.fit_due_models()
                        break
                    continue  # look again at once: files may have come during the batch
            elif not writing and self.models_due:  # nothing to ingest (a file the last batch left is not news)
                if self.fit_due_models():
                    continue  # look again at once: files may have come meanwhile
            elif ready:
                self._announce_unchanged(ready)
            stop.sleep(self.interval)
        return last_error

    def run_batch(self, ready: list[Ready]) -> BatchOutcome:
        number = self.batches + 1
        log.info("watch: batch %d: %d file(s) complete: %s", number, len(ready), _names([r.path for r in ready]))
        started = time.time()
        record: dict[str, Any] = {}

        def report(results: dict[str, Any]) -> dict[str, Any]:
            record.update(self._record(number, ready, results, started, time.time()))
            return {"watch": record}

        try:
            # a batch that starts a new week keeps the models of the week before; they are fitted when no batch
            # waits (fit_due_models), so a batch costs what its files changed
            results = run_layers(self.config, LAYERS, report_extra=report, models_later=True)
        except DataDirectoryInUse as exc:
            log.info("watch: batch %d waits for the next look: %s", number, shorten(str(exc), 300))
            return BatchOutcome(ran=False)
        except (PipelineError, InputError) as exc:
            self.batches = number
            message = shorten(str(exc), 1000)
            log.error("watch: batch %d failed: %s (its files are tried again when one changes or another comes)",
                      number, message)
            return BatchOutcome(ran=True, error=message)
        self.batches = number
        self._log_batch(record, results)
        self.models_due = incremental.models_due(self.layout.analytics)
        return BatchOutcome(ran=True)

    def fit_due_models(self) -> bool:
        """Fit the predictive models a batch left due (an analytics run: every other result stands), once; a
        failure is logged and waits for the next batch. Whether the run took place (not when another run held
        the data directory: then it is tried again at the next look)."""
        due, self.models_due = self.models_due, None
        if not due:
            return False
        log.info("watch: no batch waits: fitting the predictive models up to %s (left due by the last batch)", due)
        try:
            run_layers(self.config, ("analytics",))
        except DataDirectoryInUse as exc:
            self.models_due = due
            log.info("watch: fitting the models waits for the next look: %s", shorten(str(exc), 300))
            return False
        except (PipelineError, InputError) as exc:
            log.error("watch: fitting the models up to %s failed: %s (tried again after the next batch)", due,
                      shorten(str(exc), 1000))
        return True

    def _record(self, number: int, ready: list[Ready], results: dict[str, Any], started: float,
                finished: float) -> dict[str, Any]:
        """The batch as its quality report keeps it: files, how each was found complete, latency, counts."""
        updated = "analytics" in results  # the last layer returned: analytics is published
        files = [{"path": r.path, "complete": r.how, "arrived_at": _iso(r.arrived_at),
                  "found_complete_at": _iso(r.found_complete),
                  "latency_seconds": round(finished - r.arrived_at, 3) if updated else None} for r in ready]
        bronze_batch = results.get("bronze") or {}
        silver_run = results.get("silver") or {}
        return {
            "batch": number, "interval_seconds": self.interval, "files": files,
            "started_at": _iso(started), "analytics_updated_at": _iso(finished) if updated else None,
            "pipeline_seconds": round(finished - started, 3),
            "waited_seconds": round(max(started - r.arrived_at for r in ready), 3),
            "latency_seconds": round(max(finished - r.arrived_at for r in ready), 3) if updated else None,
            "bronze_rows": bronze_batch.get("rows", 0), "silver_totals": silver_run.get("totals"),
        }

    def _log_batch(self, record: dict[str, Any], results: dict[str, Any]) -> None:
        totals = record["silver_totals"] or {}
        counts = (f"{record['bronze_rows']:,} rows -> {totals.get('silver_rows', 0):,} silver, "
                  f"{totals.get('quarantine_rows', 0):,} quarantined, {totals.get('duplicate_rows', 0):,} "
                  f"duplicates, {totals.get('redelivered_rows', 0):,} re-delivered")
        log.info("watch: batch %d done: %d file(s), %s; latency %.2f s from the earliest arrival to analytics "
                 "updated (%.2f s waiting to be complete and seen, %.2f s in the pipeline)", record["batch"],
                 len(record["files"]), counts, record["latency_seconds"], record["waited_seconds"],
                 record["pipeline_seconds"])

    def _announce_waiting(self, writing: list[tuple[str, float]]) -> None:
        new = [(path, ago) for path, ago in writing if path not in self._held_by]
        if new:
            self._held_by.update(path for path, _ in new)
            log.info("watch: the next batch waits for %s, still being written (last change %.1f s ago); a file "
                     "written as *.tmp and renamed when complete never holds a batch back",
                     _names([path for path, _ in new]), min(ago for _, ago in new))

    def _announce_unchanged(self, ready: list[Ready]) -> None:
        if self._said_unchanged != self._last_batch:
            self._said_unchanged = self._last_batch
            log.info("watch: %s not taken by the last batch; the next batch waits for a file to change or come",
                     _names([r.path for r in ready]))


def watch(config: Config, interval: float = DEFAULT_INTERVAL_SECONDS, max_batches: int | None = None) -> str | None:
    """Watch the data directory's raw/ until SIGINT, SIGTERM or `max_batches` batches; the last batch's error
    (None if it succeeded or none ran). Errors that are not about the data (the engine cannot start, the disk)
    stop the watch."""
    layout = Layout(Path(config.paths.data_dir))
    layout.raw.mkdir(parents=True, exist_ok=True)
    # One engine kept open for the whole watch: each batch's engine uses its session (Spark's starts once,
    # not per batch). PySpark sets its own SIGINT handler when its session starts, so ours go in after.
    keeper = create_engine(config)
    keeper.open()
    stop = StopSignals()
    stop.install()
    changes = RawChanges(layout.raw)
    stop.wake_on(changes)
    try:
        with job_log(config.logs_dir, "watch", config.logs.format):
            log.info("watch: watching %s every %g s and as files come (engine %s); stop with Ctrl-C or SIGTERM",
                     layout.raw, interval, config.engine)
            return Watcher(config, interval, max_batches).run(stop)
    finally:
        changes.close()
        stop.restore()
        keeper.close()
