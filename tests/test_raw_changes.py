"""What wakes a sleeping watch: a file created or moved in under raw/ (inotify), a stop, or the time alone."""
from __future__ import annotations

import os
import threading
import time

import pytest

from clickstream import raw_changes
from clickstream.raw_changes import RawChanges
from clickstream.watch import StopSignals

LONG = 60.0  # a wait no test lets run out: ending before it is what is checked


def waiting(changes: RawChanges, stop: StopSignals, seconds: float = LONG) -> tuple[threading.Thread, list]:
    woken: list = []
    thread = threading.Thread(target=lambda: woken.append(changes.wait(seconds, stop)), daemon=True)
    thread.start()
    time.sleep(0.3)  # the wait has begun
    return thread, woken


@pytest.fixture
def raw(tmp_path):
    (tmp_path / "raw" / "shop" / "2024").mkdir(parents=True)
    (tmp_path / "outside.csv").write_text("a,b\n1,2\n")
    return tmp_path / "raw"


@pytest.mark.skipif(raw_changes._libc() is None, reason="needs Linux's inotify")
@pytest.mark.parametrize("drop", ["link", "rename", "create"])
def test_a_file_linked_moved_or_created_in_a_folder_under_raw_ends_the_wait(raw, drop):
    changes, stop = RawChanges(raw), StopSignals()
    try:
        thread, woken = waiting(changes, stop)
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


@pytest.mark.skipif(raw_changes._libc() is None, reason="needs Linux's inotify")
def test_a_write_to_a_file_already_there_does_not_end_the_wait(raw):
    (raw / "day.csv").write_text("a,b\n")
    changes, stop = RawChanges(raw), StopSignals()
    try:
        changes.wait(0.1, stop)  # watches are added as a wait starts
        thread, woken = waiting(changes, stop, seconds=1.0)
        with (raw / "day.csv").open("a") as handle:
            handle.write("1,2\n")
        thread.join(timeout=LONG / 2)
        assert woken == [False]  # only the time ended it
    finally:
        changes.close()


def test_a_stop_ends_the_wait(raw):
    changes, stop = RawChanges(raw), StopSignals()
    try:
        thread, woken = waiting(changes, stop)
        stop.requested = True
        thread.join(timeout=LONG / 2)
        assert woken == [False]
    finally:
        changes.close()


def test_without_inotify_only_the_time_ends_the_wait(raw, monkeypatch):
    monkeypatch.setattr(raw_changes, "_libc", lambda: None)
    changes, stop = RawChanges(raw), StopSignals()
    thread, woken = waiting(changes, stop, seconds=1.0)
    os.link(raw.parent / "outside.csv", raw / "day.csv")
    thread.join(timeout=LONG / 2)
    assert woken == [False]
    changes.close()


@pytest.mark.skipif(raw_changes._libc() is None, reason="needs Linux's inotify")
def test_a_sleeping_watch_wakes_for_a_file_moved_in(raw):
    stop = StopSignals()
    changes = RawChanges(raw)
    stop.wake_on(changes)
    try:
        started = []
        thread = threading.Thread(target=lambda: (started.append(time.monotonic()), stop.sleep(LONG)), daemon=True)
        thread.start()
        time.sleep(0.3)
        os.link(raw.parent / "outside.csv", raw / "day.csv")
        thread.join(timeout=LONG / 2)
        assert not thread.is_alive()
    finally:
        changes.close()
