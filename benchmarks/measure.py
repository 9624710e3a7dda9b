"""Running one command as a separate process and measuring it as a whole: wall time and memory of its tree.

* Wall time: from just before the process is started to the moment it exits (interpreter start, imports
  and the JVM launch included), by a monotonic clock.
* Peak tree RSS: the process runs in a new session; every 100 ms the sampler sums the resident set of all
  live processes in that session or descended from the process (the Spark JVM is a child of python),
  from /proc/<pid>/stat. Pages shared between processes are counted once per process, and a peak
  shorter than the sampling interval can be missed. This is the number the 8 GiB target is judged on.
* Max single-process RSS: ru_maxrss from wait4, which is what `/usr/bin/time -v` reports as "Maximum
  resident set size": the largest single process among the process and the children it waited for,
  never a sum, and blind to a JVM that python does not wait for. Kept for comparison.
* CPU seconds (user, system) from the same rusage: same caveat for children not waited for.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_SECONDS = 0.1


@dataclass
class Measurement:
    returncode: int
    wall_seconds: float
    peak_tree_rss_bytes: int
    max_single_rss_bytes: int
    user_cpu_seconds: float
    system_cpu_seconds: float
    samples: int
    peak_tree_processes: int
    timed_out: bool
    leftover_processes: int

    def as_dict(self) -> dict:
        return asdict(self)


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, session id, resident pages) of a live process, or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = data[data.rfind(b")") + 2:].split()
    try:
        if fields[0] in (b"Z", b"X"):
            return None
        return int(fields[1]), int(fields[3]), int(fields[21])
    except (IndexError, ValueError):
        return None


def tree_members(root: int) -> dict[int, int]:
    """pid -> resident bytes of every process in root's session or below root."""
    stats = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    members = {pid for pid, (_, session, _) in stats.items() if session == root}
    if root in stats:
        members.add(root)
    # Descendants that started a session of their own.
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    stack = list(members)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in members:
                members.add(child)
                stack.append(child)
    return {pid: stats[pid][2] * PAGE_SIZE for pid in members}


class _Sampler(threading.Thread):
    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak = 0
        self.peak_processes = 0
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            members = tree_members(self.root)
            total = sum(members.values())
            self.samples += 1
            if total > self.peak:
                self.peak, self.peak_processes = total, len(members)
            self.stop.wait(SAMPLE_SECONDS)


def run_measured(command: list[str], cwd: Path, stdout: Path, stderr: Path, env: dict[str, str] | None = None,
                 timeout: float | None = None, grace_seconds: float = 30.0) -> Measurement:
    """Run `command` to completion (or kill it after `timeout` s) and measure it; output goes to files."""
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
        sampler = _Sampler(process.pid)
        sampler.start()
        timed_out = False
        deadline = None if timeout is None else started + timeout
        try:
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                if deadline is not None and time.perf_counter() > deadline and not timed_out:
                    timed_out = True
                    _signal_session(process.pid, signal.SIGTERM)
                    deadline += 10  # then SIGKILL if it has not stopped
                elif timed_out and time.perf_counter() > deadline:
                    _signal_session(process.pid, signal.SIGKILL)
                    pid, status, usage = os.wait4(process.pid, 0)
                    break
                time.sleep(0.01)
        except BaseException:
            # Interrupted (Ctrl-C reaches only the harness: the run is in its own session): end the run too.
            sampler.stop.set()
            _signal_session(process.pid, signal.SIGKILL)
            os.wait4(process.pid, 0)
            raise
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        # Whatever the process left running (a JVM still shutting down) is still ours: wait, then end it.
        leftovers = _wait_for_session(process.pid, grace_seconds)
        sampler.stop.set()
        sampler.join()
    return Measurement(
        returncode=process.returncode, wall_seconds=round(wall, 3), peak_tree_rss_bytes=sampler.peak,
        max_single_rss_bytes=usage.ru_maxrss * 1024, user_cpu_seconds=round(usage.ru_utime, 3),
        system_cpu_seconds=round(usage.ru_stime, 3), samples=sampler.samples,
        peak_tree_processes=sampler.peak_processes, timed_out=timed_out, leftover_processes=leftovers,
    )


def _signal_session(session: int, sig: int) -> None:
    """Signal the process group of a process this module started (its pid is the group's id)."""
    try:
        os.killpg(session, sig)
    except ProcessLookupError:
        pass


def _wait_for_session(session: int, grace_seconds: float) -> int:
    """Processes of the session still alive after the main one exited; they get `grace_seconds` to finish."""
    deadline = time.perf_counter() + grace_seconds
    leftovers = _session_pids(session)
    while leftovers and time.perf_counter() < deadline:
        time.sleep(0.1)
        leftovers = _session_pids(session)
    if leftovers:
        _signal_session(session, signal.SIGKILL)
    return len(leftovers)


def _session_pids(session: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == session:
                pids.append(int(entry.name))
    return pids
