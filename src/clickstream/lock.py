"""One writer per data directory: an exclusive lock on `_state/writer.lock`, held for a whole run.

The lock is `flock` on the file: the kernel releases it when its holder ends, however it ends. While held,
the file names the holder (pid, host, start time, command line) so that a second run can say who is writing;
a clean release empties it, so a file still naming a process when the lock is free was left by a killed run.
The file is opened without following a symbolic link and must be a regular file of its own (one name): a link
planted at its path would otherwise make the run empty whatever file it points to.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shlex
import socket
import stat
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from clickstream.catalog import STATE_FOLDER
from clickstream.context import PipelineError

log = logging.getLogger(__name__)

LOCK_FILE = Path(STATE_FOLDER) / "writer.lock"  # relative to the data directory
POLL_SECONDS = 0.2  # how often a waiting run tries again
# A holder writes its details just after taking the lock: a run finding the lock taken but the file not yet
# written reads it again for this long before reporting an unknown holder.
DETAILS_GRACE_SECONDS = 1.0


class DataDirectoryInUse(PipelineError):
    """Another run holds the data directory's writer lock."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    started_at: str  # UTC, ISO 8601
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, since {self.started_at}: {self.command}"

    @classmethod
    def current(cls) -> Holder:
        argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else ["python"]
        return cls(pid=os.getpid(), host=socket.gethostname(),
                   started_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), command=shlex.join(argv))


def read_holder(path: Path) -> Holder | None:
    """The holder a lock file names, or None if it names none (released, or not yet written)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(pid=int(data["pid"]), host=str(data["host"]), started_at=str(data["started_at"]),
                      command=str(data["command"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def is_running(pid: int) -> bool:
    """Whether a process `pid` runs on this host (a zombie, ended but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class WriterLock:
    """The exclusive right to write one data directory; `with WriterLock(data_dir, wait_seconds):`."""

    def __init__(self, data_dir: Path, wait_seconds: float = 0.0) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self.wait_seconds = wait_seconds
        self.taken_over: Holder | None = None  # a killed holder whose lock this one took
        self.takeover_note = ""  # and what was said about it
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, waiting up to `wait_seconds` for its holder; DataDirectoryInUse if it is still held."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = self._open()
        try:
            self._wait_for(fd)
            previous = read_holder(self.path)
            holder = Holder.current()
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(asdict(holder), sort_keys=True) + "\n").encode("utf-8"), 0)
            except OSError as exc:  # a full disk: say which file could not be written
                raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if previous is not None:
            self._take_over(previous, holder)

    def _open(self) -> int:
        """The lock file, opened for writing only if it is a regular file with no other name (never a link's
        target, a FIFO or a device)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP or self.path.is_symlink():
                raise PipelineError(self._refusal("is a symbolic link")) from exc
            raise
        info = os.fstat(fd)
        problem = ("is not a regular file" if not stat.S_ISREG(info.st_mode)
                   else f"is one of {info.st_nlink} names of the same file" if info.st_nlink > 1 else None)
        if problem:
            os.close(fd)
            raise PipelineError(self._refusal(problem))
        return fd

    def _refusal(self, problem: str) -> str:
        return (f"writer lock {self.path} {problem}: the lock is written, so it must be a file of its own "
                f"(a link is never followed): remove it and run again")

    def release(self) -> None:
        """Empty the file (the run ended cleanly) and let the next writer in."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # releases the flock

    def _wait_for(self, fd: int) -> None:
        started = time.monotonic()
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            waited = time.monotonic() - started
            holder = read_holder(self.path)
            if holder is None and waited < DETAILS_GRACE_SECONDS:
                time.sleep(0.05)
                continue
            if waited >= self.wait_seconds:
                raise DataDirectoryInUse(self._busy_message(holder))
            if not announced:
                log.info("data directory %s is in use by another clickstream run (%s); waiting up to %g s",
                         self.data_dir, _named(holder, self.path), self.wait_seconds)
                announced = True
            time.sleep(min(POLL_SECONDS, self.wait_seconds - waited))

    def _busy_message(self, holder: Holder | None) -> str:
        who = _named(holder, self.path)
        if self.wait_seconds > 0:
            return (f"data directory {self.data_dir} is still in use by another clickstream run after waiting "
                    f"{self.wait_seconds:g} s ({who}); wait for it to finish, or pass a longer --wait")
        return (f"data directory {self.data_dir} is in use by another clickstream run ({who}); wait for it to "
                f"finish, or pass --wait SECONDS")

    def _take_over(self, previous: Holder, holder: Holder) -> None:
        self.taken_over = previous
        if previous.host != holder.host:
            why = (f"on host {previous.host} (it did not release it; whether it still runs cannot be checked "
                   f"from host {holder.host})")
        elif not is_running(previous.pid):
            why = "(no longer running)"
        else:
            why = "(it ended without releasing it; the pid now belongs to another process)"
        self.takeover_note = f"taking over the lock of pid {previous.pid} {why}"
        log.warning("%s", self.takeover_note)

def _named(holder: Holder | None, path: Path) -> str:
    if holder is None:
        return f"holder unknown: {path} names none yet"
    return " ".join(holder.describe().split())
