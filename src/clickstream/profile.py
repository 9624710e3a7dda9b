"""Where a run's time goes: each step's wall and CPU seconds, kept by the run (RunContext.profile).

A step's CPU is that of this process and of its children: the waited-for ones (getrusage RUSAGE_CHILDREN)
and those the engine keeps running beside the process (Spark's Java process, which is never waited for while
the run lasts: `Engine.outside_cpu_seconds`). Steps never overlap: a step opened inside another one is part of
it and is not recorded apart. A step run in a worker thread (bronze scans several files at once) counts that
thread's CPU only; such steps overlap in time.
"""
from __future__ import annotations

import logging
import resource
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)


def process_cpu_seconds() -> float:
    """User and system CPU seconds of this process and of its waited-for children, so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Profile:
    """The steps of one run, in the order they ended."""

    def __init__(self, outside_cpu: Callable[[], float] | None = None) -> None:
        self.steps: list[dict[str, Any]] = []
        self.outside_cpu = outside_cpu or (lambda: 0.0)
        self._lock = threading.Lock()
        self._open = threading.local()  # the step open in each thread, if any

    def cpu_seconds(self) -> float:
        return process_cpu_seconds() + self.outside_cpu()

    @contextmanager
    def step(self, name: str, layer: str, own_thread: bool = False) -> Iterator[None]:
        """Time the block as step `name` of `layer` (kept even when the block fails). With `own_thread`, the
        CPU counted is the calling thread's alone (for steps run side by side in a thread pool)."""
        if getattr(self._open, "step", None) is not None:  # inside another step: part of it
            yield
            return
        self._open.step = name
        cpu = time.thread_time if own_thread else self.cpu_seconds
        wall_start, cpu_start = time.perf_counter(), cpu()
        try:
            yield
        finally:
            wall, used = time.perf_counter() - wall_start, max(cpu() - cpu_start, 0.0)
            self._open.step = None
            entry = {"layer": layer, "step": name, "wall_seconds": round(wall, 3), "cpu_seconds": round(used, 3)}
            with self._lock:
                self.steps.append(entry)
            log.debug("profile: %s %s: %.3f s wall, %.3f s CPU", layer, name, wall, used,
                      extra={"on_terminal": False})

    def record(self) -> list[dict[str, Any]]:
        """The steps as the quality report keeps them."""
        with self._lock:
            return [dict(entry) for entry in self.steps]


def top_steps(steps: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The `count` steps that took the longest, longest first (ties in the order they ran)."""
    return sorted(steps, key=lambda entry: -entry["wall_seconds"])[:count]
