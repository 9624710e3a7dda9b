"""What wakes a sleeping watch: a file created or moved in under raw/ (inotify), a stop, or the time alone."""
from __future__ import annotations

import os
import threading
import time

import pytest

from clickstream import raw_changes
from clickstream.raw_changes import RawChanges
from clickstream.watch import StopSignals

LONG = 60.0  # a sleep no test lets run out: ending before it is what is checked
NEEDS_INOTIFY = pytest.mark.skipif(raw_changes._libc() is None, reason="needs Linux's inotify")


def sleeping(raw, seconds: float = LONG) -> tuple[StopSignals, RawChanges, threading.Thread, list]:
    """A watch's sleep woken by `raw`, begun in a thread; what it returned is appended to the list."""
    stop, changes = StopSignals(), RawChanges(raw)
    stop.wake_on(changes)
    woken: list = []
    thread = threading.Thread(target=lambda: woken.append(stop.sleep(seconds)), daemon=True)
    thread.start()
    time.sleep(0.3)  # the sleep has begun, its folders watched
    return stop, changes, thread, woken


@pytest.fixture
def raw(tmp_path):
    (tmp_path / "raw" / "shop" / "2024").mkdir(parents=True)
    (tmp_path / "outside.csv").write_text("a,b\n1,2\n")
    return tmp_path / "raw"


@NEEDS_INOTIFY
@pytest.mark.parametrize("drop", ["link", "rename", "create"])
def test_a_file_linked_moved_or_created_in_a_folder_under_raw_ends_the_sleep(raw, drop):
    _, changes, thread, woken = sleeping(raw)
    try:
        target = raw / "shop" / "2024" / "day.csv"
        if drop == "link":
            os.link(raw.parent / "outside.csv", target)
        elif drop == "rename":
            os.rename(raw.parent / "outside.csv", target)
        else:
            target.write_text("a,b\n")
        thread.join(timeout=LONG / 2)
        assert woken == [True]
    finally:
        changes.close()


@NEEDS_INOTIFY
def test_a_file_created_in_a_folder_linked_into_raw_ends_the_sleep(raw):
    """bronze reads a folder linked into raw/ (raw_files.raw_folders), so the watch wakes for it too."""
    exports = raw.parent / "exports"
    exports.mkdir()
    (raw / "exports").symlink_to(exports)
    (exports / "again").symlink_to(exports)  # a loop: watched once, never walked round
    _, changes, thread, woken = sleeping(raw)
    try:
        (exports / "day.csv").write_text("a,b\n")
        thread.join(timeout=LONG / 2)
        assert woken == [True]
    finally:
        changes.close()


@NEEDS_INOTIFY
def test_a_write_to_a_file_already_there_does_not_end_the_sleep(raw):
    (raw / "day.csv").write_text("a,b\n")
    _, changes, thread, woken = sleeping(raw, seconds=1.0)
    try:
        with (raw / "day.csv").open("a") as handle:
            handle.write("1,2\n")
        thread.join(timeout=LONG / 2)
        assert woken == [False]  # only the time ended it
    finally:
        changes.close()


def test_a_stop_ends_the_sleep(raw):
    stop, changes, thread, woken = sleeping(raw)
    try:
        stop.requested = True
        thread.join(timeout=LONG / 2)
        assert woken == [False]
    finally:
        changes.close()


def test_without_inotify_only_the_time_ends_the_sleep(raw, monkeypatch):
    monkeypatch.setattr(raw_changes, "_libc", lambda: None)
    _, changes, thread, woken = sleeping(raw, seconds=1.0)
    os.link(raw.parent / "outside.csv", raw / "day.csv")
    thread.join(timeout=LONG / 2)
    assert woken == [False]
    changes.close()


def test_a_sleep_not_woken_by_raw_ends_with_the_time_or_a_stop():
    stop = StopSignals()
    started = time.monotonic()
    assert stop.sleep(0.2) is False
    assert time.monotonic() - started >= 0.2
    stop.requested = True
    assert stop.sleep(LONG) is False
