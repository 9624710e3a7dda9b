"""Waking the watch when raw/ changes: Linux's inotify, read through the C library (no dependency).

A sleeping watch (`watch.StopSignals.sleep`) asks `RawChanges.woken` in short steps whether a file or folder was
created or moved in anywhere under raw/ (then it waits until no such event came for `SETTLE_SECONDS`, so that files
dropped together are looked at together). A file moved or linked in is complete at once (watch.completeness), so
its batch starts without waiting for the next look. A write is no event: a file written in place is complete only
once unchanged for an interval anyway, and a file being appended to would wake the watch at every write. Where
inotify is not there (another system, no watch left), a step only sleeps: the look every interval still finds
every file, only later.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import select
import time
from pathlib import Path
from typing import Any

from clickstream.raw_files import raw_folders

log = logging.getLogger(__name__)

# <sys/inotify.h>
IN_MOVED_TO, IN_CREATE = 0x00000080, 0x00000100
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
EVENTS = IN_MOVED_TO | IN_CREATE
SETTLE_SECONDS = 0.1


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    return libc if hasattr(libc, "inotify_init1") else None


class RawChanges:
    """What wakes a waiting watch: a change under `raw` (inotify), or else only the time."""

    def __init__(self, raw: Path) -> None:
        self.raw = raw
        self._libc = _libc()
        self._fd = -1
        self._warned: set[str] = set()
        if self._libc is not None:
            self._fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if self._fd < 0:
                log.debug("watch: no inotify (%s): looking every interval only",
                          os.strerror(ctypes.get_errno()))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def watch_folders(self) -> None:
        """Watch raw/ and every folder under it, as bronze lists them (`raw_files.raw_folders`: linked folders too,
        each once; a folder seen again costs one call): at the start of each sleep."""
        if self._fd < 0 or not self.raw.is_dir():
            return
        for folder, _, _ in raw_folders(self.raw):
            if self._libc.inotify_add_watch(self._fd, os.fsencode(folder), EVENTS) < 0:
                if ctypes.get_errno() == errno.ENOSPC and folder not in self._warned:
                    log.warning("watch: no inotify watch left for %s: looking at it every interval only", folder)
                    self._warned.add(folder)

    def _drain(self) -> bool:
        """Whether any event was waiting (all of them are read)."""
        seen = False
        while True:
            try:
                if not os.read(self._fd, 65536):
                    return seen
            except BlockingIOError:
                return seen
            seen = True

    def woken(self, seconds: float, until: float) -> bool:
        """Whether a change under raw/ came within `seconds`; then this returns once none came for SETTLE_SECONDS
        (at the latest at `until`, a time.monotonic() time). Without inotify, it sleeps `seconds`: no change."""
        if self._fd < 0:
            time.sleep(seconds)
            return False
        if not (select.select([self._fd], [], [], seconds)[0] and self._drain()):
            return False
        settle_until = min(until, time.monotonic() + SETTLE_SECONDS)
        while (rest := settle_until - time.monotonic()) > 0:  # files dropped together: one look
            if select.select([self._fd], [], [], rest)[0] and self._drain():
                settle_until = min(until, time.monotonic() + SETTLE_SECONDS)
        return True
