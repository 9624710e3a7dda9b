"""What a job needs to run: the config, the engine, where every table lives, and the run's quality record."""
from __future__ import annotations

import errno
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clickstream import catalog
from clickstream.config import Config, duckdb_memory_bytes, duckdb_memory_size
from clickstream.engines.base import Engine
from clickstream.profile import Profile
from clickstream.report.escape import shorten


class PipelineError(Exception):
    """A run that must stop: the message is the one-line reason shown to the user."""


class QualityGateError(PipelineError):
    """A quality threshold set to fail was crossed; nothing of the failing step was published."""


class ResourceError(PipelineError):
    """The machine refused a read or a write: no space, no permission, a read-only file system, no memory.

    Raised by the engines for their own I/O and memory failures, and made by the CLI from an OSError: one line
    naming the path where it is known, saying what to do. (Declared here beside PipelineError: the engine
    package cannot import this module, which imports it.)
    """

    @classmethod
    def from_errno(cls, code: int | None, path: str | os.PathLike[str] | None = None,
                   scratch: str = "duckdb.temp_directory", reason: str = "") -> ResourceError:
        """The failure errno `code` stands for at `path`; `scratch` is the setting of the engine's spill space."""
        shown = shorten(os.fsdecode(path)) if path else ""
        if code in (errno.ENOSPC, errno.EDQUOT):
            what = "no space left on device" if code == errno.ENOSPC else "disk quota exceeded"
            return cls(f"{what}{' writing ' + shown if shown else ''}: free space or point paths.data_dir "
                       f"(or {scratch}) elsewhere")
        if code in (errno.EACCES, errno.EPERM):
            return cls(f"permission denied: {shown or '(no path given)'}: let the user running clickstream read "
                       f"and write it, or point paths.data_dir (or paths.logs_dir) elsewhere")
        if code == errno.EROFS:
            return cls(f"read-only file system{': cannot write ' + shown if shown else ''}: point paths.data_dir "
                       f"(or paths.logs_dir) at a writable directory")
        if code in (errno.EEXIST, errno.ENOTDIR) and path:
            blocking = cls._file_in_the_way(Path(os.fsdecode(path)))
            if blocking is not None:
                needed = "" if blocking == Path(os.fsdecode(path)) else f" (in the way of {shown})"
                return cls(f"{shorten(str(blocking))} is a file, not a directory{needed}: remove or rename it, or "
                           f"use another path")
        if code == errno.EISDIR:
            return cls(f"{shown or 'a path'} is a directory, not a file: give the path of a file")
        if code == errno.ENOENT:
            return cls(f"no such file or directory: {shown or '(no path given)'}: check the path")
        if code in (errno.EMFILE, errno.ENFILE):
            return cls("too many open files: raise the limit (ulimit -n), or run with fewer input files")
        if code == errno.ENOMEM:
            return cls.out_of_memory(reason)
        name = errno.errorcode.get(code, "no errno") if code else "no errno"
        text = shorten(reason or (os.strerror(code) if code else "input/output error"))
        return cls(f"{text} ({name}){': ' + shown if shown else ''} (run again with --verbose for the traceback)")

    @classmethod
    def out_of_memory(cls, reason: str = "", memory_limit: str | None = None) -> ResourceError:
        """No memory left; `memory_limit`, DuckDB's configured limit, is named with a value twice as large."""
        size = duckdb_memory_bytes(memory_limit) if memory_limit else None
        limit = f" (now {memory_limit!r}; try {duckdb_memory_size(2 * size)!r})" if size else ""
        return cls(f"out of memory{': ' + shorten(reason) if reason else ''}: raise duckdb.memory_limit{limit} or "
                   f"lower duckdb.threads, and keep duckdb.temp_directory on a disk with room to spill")

    @staticmethod
    def _file_in_the_way(path: Path) -> Path | None:
        """The path itself or its nearest existing ancestor, if that is not a directory."""
        for candidate in (path, *path.parents):
            if candidate.exists() or candidate.is_symlink():
                return None if candidate.is_dir() else candidate
        return None


@dataclass(frozen=True)
class Layout:
    """The data directory: raw input, one folder per layer, and the pipeline's own state."""

    data_dir: Path

    @property
    def raw(self) -> Path:
        return self.data_dir / "raw"

    @property
    def bronze(self) -> Path:
        return catalog.BRONZE_TABLE.path(self.data_dir)

    @property
    def silver(self) -> Path:
        return catalog.table("silver").path(self.data_dir)

    @property
    def quarantine(self) -> Path:
        return catalog.table("quarantine").path(self.data_dir)

    @property
    def duplicates(self) -> Path:
        return catalog.table("duplicates").path(self.data_dir)

    @property
    def gold(self) -> Path:
        return self.data_dir / catalog.LAYER_FOLDERS["gold"]

    @property
    def analytics(self) -> Path:
        return self.data_dir / catalog.LAYER_FOLDERS["analytics"]

    @property
    def state(self) -> Path:
        return self.data_dir / catalog.STATE_FOLDER

    @property
    def reports(self) -> Path:
        return self.data_dir / "reports"


def new_run_id(now: datetime) -> str:
    # Sortable by time to the microsecond (silver keeps the copy of the earlier batch), unique even for runs
    # started together; no '-' (it separates batch from file name).
    return now.strftime("%Y%m%dT%H%M%S%f") + "z" + uuid.uuid4().hex[:6]


@dataclass
class RunRecord:
    """What a run did, as the quality report's `last_run` records it: each layer sets its own section once (a
    JSON object, documented in docs/DATA_DICTIONARY.md), the pipeline the rest. A layer that did not run has none."""

    layers: list[str] = field(default_factory=list)  # the layers the run was asked for
    recovery: list[str] = field(default_factory=list)  # what was undone of an interrupted run, the lock taken over
    bronze: dict[str, Any] | None = None
    silver: dict[str, Any] | None = None
    gold: dict[str, Any] | None = None
    analytics: dict[str, Any] | None = None
    timings_seconds: dict[str, float] | None = None  # per layer that finished
    extra: dict[str, Any] = field(default_factory=dict)  # what the caller adds (watch: its batch)
    anomalies: list[dict[str, Any]] | None = None
    anomaly_checks: list[dict[str, Any]] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON, its sections in this order, those a run did not reach left out."""
        record: dict[str, Any] = {"layers": self.layers, "recovery": self.recovery}
        for name in ("bronze", "silver", "gold", "analytics", "timings_seconds"):
            if getattr(self, name) is not None:
                record[name] = getattr(self, name)
        record.update(self.extra)
        for name in ("anomalies", "anomaly_checks"):
            if getattr(self, name) is not None:
                record[name] = getattr(self, name)
        return record


@dataclass
class RunContext:
    config: Config
    engine: Engine
    layout: Layout
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc).replace(tzinfo=None))
    run_id: str = ""
    record: RunRecord = field(default_factory=RunRecord)  # what the run did, for the quality report
    analytics_group: str = "all"  # basic | advanced | all: which analytics queries to run
    full_refresh: bool = False  # rebuild gold and analytics from all of silver, even where nothing changed
    rebuild_silver: bool = False  # rebuild silver, quarantine and duplicates from all of bronze
    show_results: bool = False  # the caller shows every analytics result's first rows, also of results that stand
    # keep the predictive models fitted up to an earlier models' time when no event they see changed, and leave
    # fitting them up to the new one for later (`clickstream watch`, when no batch waits)
    models_later: bool = False
    profile: Profile = field(default_factory=Profile)  # each step's wall and CPU seconds (profile.py)

    def __post_init__(self) -> None:
        if not self.run_id:
            self.run_id = new_run_id(self.started_at)
        self.profile.outside_cpu = self.engine.outside_cpu_seconds
