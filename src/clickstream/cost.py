"""What a run costs: CPU, memory, bytes read and written, wall time per layer, and (with prices) money.

The figures are those of this process and of its children: the waited-for ones (getrusage RUSAGE_CHILDREN;
Linux also adds their I/O to this process's /proc/self/io once waited for) and those the engine keeps running
beside the process (Spark's Java process, read from /proc/<pid>/: `Engine.outside_pids`). Such a process already
running when the run starts (a watch's session, started by an earlier run in the same process) counts from that
moment only; one started during the run counts whole.

- `cpu_seconds`: user and system CPU (the first run of a process counts from the process's start, imports
  included; a later run in the same process, such as a watch's next batch, from its own start);
- `peak_rss_bytes`: the largest resident size this process reached so far (in a watch, since the watch began),
  or a waited-for child if larger, plus the Java process's own peak;
- `bytes_read`, `bytes_written`: `read_bytes` and `write_bytes` of /proc/<pid>/io, the bytes the process made
  the storage layer fetch or dirtied (a read the page cache answers costs none);
- `layer_seconds`: wall seconds per layer (the steps are in the record's `profile`);
- on Spark, `spark`: executor run and CPU time and shuffle bytes of the stages the run completed, from Spark's
  own status store (which keeps the last `spark.ui.retainedStages` stages, 1000 by default).
"""
from __future__ import annotations

import logging
import os
import resource
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clickstream.config import Cost
from clickstream.engines.base import Engine
from clickstream.profile import process_cpu_seconds

log = logging.getLogger(__name__)

IO_FIELDS = ("read_bytes", "write_bytes")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_GB = 1e9


def proc_io(pid: int | str = "self") -> dict[str, int]:
    """`read_bytes` and `write_bytes` of a process (zeros where /proc cannot be read)."""
    try:
        lines = Path(f"/proc/{pid}/io").read_text().splitlines()
    except OSError:
        return dict.fromkeys(IO_FIELDS, 0)
    found = dict(line.split(": ", 1) for line in lines if ": " in line)
    return {name: int(found.get(name, 0)) for name in IO_FIELDS}


@dataclass(frozen=True)
class Outside:
    """A process the engine runs beside this one, as read from /proc: CPU seconds, peak resident bytes, I/O."""

    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0
    io: dict[str, int] = field(default_factory=lambda: dict.fromkeys(IO_FIELDS, 0))
    started_seconds: float = 0.0  # after boot

    @classmethod
    def read(cls, pid: int) -> Outside | None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        # after the name in parentheses: state (field 3) ... utime stime cutime cstime (14-17), starttime (22)
        fields = stat[stat.rindex(")") + 2:].split()
        peak = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:")), 0)
        return cls(sum(int(v) for v in fields[11:15]) / _TICK, peak, proc_io(pid), int(fields[19]) / _TICK)


def _uptime() -> float:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def _peak_rss_bytes() -> int:
    # ru_maxrss is in kilobytes on Linux
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) * 1024


_PROCESS_COUNTED = False  # whether a Meter of this process has started: the next one counts from its own start


class Meter:
    """Started before the run's engine is created; `engine_done` once the engine has done its work (before it
    closes); `record` at the end of the run."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.started_uptime = _uptime()
        # The first run of a process counts the process from its start (the interpreter, the imports): what the
        # run cost whoever started it. A later run in the same process (a watch's next batch) counts from its own.
        global _PROCESS_COUNTED
        self.cpu, self.io = (process_cpu_seconds(), proc_io()) if _PROCESS_COUNTED else (0.0, dict.fromkeys(IO_FIELDS, 0))
        _PROCESS_COUNTED = True
        self.baselines: dict[int, Outside] = {}
        self.latest: dict[int, Outside] = {}
        self.spark_before: dict[str, tuple[int, ...]] | None = None
        self.spark: dict[str, int] | None = None

    def engine_started(self, engine: Engine) -> None:
        """Note the engine's outside processes and stages as they are now (a process started since the meter did
        counts whole). Never raises: the cost describes the run, it is not its outcome."""
        try:
            self._read_outside(engine.outside_pids())
            self.spark_before = engine.stage_metrics()
        except Exception as exc:  # noqa: BLE001
            log.debug("cost: the engine's processes not read at its start: %s", exc)

    def engine_done(self, engine: Engine) -> None:
        """Read what the engine's processes and stages did, while the engine is still open. Never raises."""
        try:
            self._engine_done(engine)
        except Exception as exc:  # noqa: BLE001
            log.debug("cost: the engine's processes not read at its end: %s", exc)

    def _engine_done(self, engine: Engine) -> None:
        self._read_outside(engine.outside_pids())
        if self.spark_before is not None:
            after = engine.stage_metrics() or {}
            new = [values for key, values in after.items() if key not in self.spark_before]
            names = ("executor_run_ms", "executor_cpu_ns", "shuffle_read_bytes", "shuffle_write_bytes")
            self.spark = {"stages": len(new), **{name: sum(v[i] for v in new) for i, name in enumerate(names)}}

    def _read_outside(self, pids: list[int]) -> None:
        for pid in pids:
            seen = Outside.read(pid)
            if seen is not None:
                self.latest[pid] = seen
                self.baselines.setdefault(pid, Outside() if seen.started_seconds >= self.started_uptime else seen)

    def record(self, layer_seconds: dict[str, float], data_dir: Path, prices: Cost,
               engine: Engine | None = None) -> dict[str, Any]:
        """The run's cost as its history record keeps it."""
        if engine is not None:
            self._read_outside(engine.outside_pids())
        io = proc_io()
        cpu = process_cpu_seconds() - self.cpu
        written, read = io["write_bytes"] - self.io["write_bytes"], io["read_bytes"] - self.io["read_bytes"]
        outside_peak = 0
        for pid, latest in self.latest.items():
            base = self.baselines.get(pid, Outside())
            cpu += max(latest.cpu_seconds - base.cpu_seconds, 0.0)
            read += max(latest.io["read_bytes"] - base.io["read_bytes"], 0)
            written += max(latest.io["write_bytes"] - base.io["write_bytes"], 0)
            outside_peak += latest.peak_rss_bytes
        record: dict[str, Any] = {
            "wall_seconds": round(time.perf_counter() - self.started, 3), "cpu_seconds": round(cpu, 3),
            "peak_rss_bytes": _peak_rss_bytes() + outside_peak, "bytes_read": max(read, 0),
            "bytes_written": max(written, 0), "io_counters": "read_bytes/write_bytes of /proc/<pid>/io",
            "layer_seconds": dict(layer_seconds)}
        if self.spark is not None:
            record["spark"] = self.spark
        record.update(estimate(record["cpu_seconds"], data_dir, prices))
        return record


def estimate(cpu_seconds: float, data_dir: Path, prices: Cost) -> dict[str, Any]:
    """The estimated cost of the run's CPU (`cost.core_hour`) and of storing the data directory for a month
    (`cost.gb_month`), each only when its price is set."""
    found: dict[str, Any] = {}
    if prices.core_hour is not None:
        found["estimated_run_cost"] = round(cpu_seconds / 3600 * prices.core_hour, 6)
    if prices.gb_month is not None:
        size = directory_bytes(data_dir)
        found["data_dir_bytes"] = size
        found["estimated_storage_cost_per_month"] = round(size / _GB * prices.gb_month, 6)
    return found


def directory_bytes(folder: Path) -> int:
    """The bytes of every regular file under `folder` (links not followed)."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                info = os.lstat(os.path.join(parent, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total
