"""`clickstream watch`: when a file counts as complete, and real watch processes while files are dropped.

The watch runs as a subprocess, as a user runs it; a thread of the test drops files into raw/ meanwhile: moved
in whole, written as `*.tmp` and renamed, and written in place slowly, in pieces cut inside lines.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import make_config

from clickstream import bronze
from clickstream.cli import main
from clickstream.config import Config, Source
from clickstream.generate import generate
from clickstream.lock import WriterLock
from clickstream.watch import CLOCK_SLACK_SECONDS, MOVED_IN, STABLE, Sighting, _recorded, completeness, sight, watch

CLICKSTREAM = str(Path(sys.executable).parent / "clickstream")
INTERVAL = 1.0  # the slow writer below writes a piece every 0.05 s: far less than this
TIMEOUT = 180  # seconds for anything the watch should do: the machine may be busy


# ---- the rule

NOW = 1_000_000.0
SECOND = 1_000_000_000


def seen(mtime: float, ctime: float | None = None, inode: int = 1, size: int = 100) -> Sighting:
    return Sighting((1, inode), size, int(mtime * SECOND), int((mtime if ctime is None else ctime) * SECOND))


@pytest.mark.parametrize("now, before, unchanged_for, previous_look, expected", [
    # new at this path: moved in if its last change was a rename or link, or it was written before the last look
    (seen(NOW - 600, ctime=NOW - 0.2), None, 0.0, NOW - 1, MOVED_IN),
    (seen(NOW - 0.3, ctime=NOW - 0.2), None, 0.0, NOW - 1, MOVED_IN),  # written, then renamed a moment later
    (seen(NOW - 600), None, 0.0, NOW - 1, MOVED_IN),  # same times, but older than the previous look
    (seen(NOW - 1 - CLOCK_SLACK_SECONDS / 2), None, 0.0, NOW - 1, None),  # within the clock's slack: not sure
    (seen(NOW - 0.5), None, 0.0, NOW - 1, None),  # created since the last look and written since: in progress
    (seen(NOW - 600), None, 0.0, None, None),  # the first look: no previous look to compare with
    (seen(NOW - 600, ctime=NOW - 300), None, 0.0, None, MOVED_IN),  # renamed in before the watch started
    (seen(NOW - 600, ctime=NOW - 0.2, inode=2), seen(NOW - 5), 3.0, NOW - 1, MOVED_IN),  # renamed over another
    (seen(NOW - 0.5, inode=2), seen(NOW - 5), 3.0, NOW - 1, None),  # a new file written under an old name
    # seen before as the same file: complete once unchanged for an interval
    (seen(NOW - 5), seen(NOW - 5), 1.0, NOW - 1, STABLE),
    (seen(NOW - 5), seen(NOW - 5), 0.4, NOW - 0.4, None),  # unchanged, but not yet for an interval
    (seen(NOW - 0.5, size=200), seen(NOW - 1.5), 0.0, NOW - 1, None),  # grew since
    (seen(NOW - 5, ctime=NOW - 0.1), seen(NOW - 5), 1.0, NOW - 1, STABLE),  # chmod: content unchanged
    (seen(NOW - 0.5, ctime=NOW - 0.1, size=200), seen(NOW - 1.5), 0.0, NOW - 1, None),  # grew, then chmod
])
def test_a_file_is_complete_when_moved_in_or_unchanged_for_an_interval(now, before, unchanged_for, previous_look,
                                                                        expected):
    assert completeness(now, before, unchanged_for, previous_look, interval=1.0) == expected


@pytest.mark.parametrize("args, message", [
    (["--interval", "0"], "argument --interval: expected a number of seconds greater than 0, got '0'"),
    (["--interval", "-1"], "argument --interval: expected a number of seconds greater than 0, got '-1'"),
    (["--interval", "nan"], "argument --interval: expected a number of seconds greater than 0, got 'nan'"),
    (["--interval", "soon"], "argument --interval: expected a number of seconds greater than 0, got 'soon'"),
    (["--max-batches", "0"], "argument --max-batches: expected a whole number, 1 or more, got '0'"),
    (["--max-batches", "1.5"], "argument --max-batches: expected a whole number, 1 or more, got '1.5'"),
])
def test_bad_watch_options_are_refused(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["watch", *args])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"clickstream watch: error: {message}"


# ---- real watch processes

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_for(condition, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


def manifest(data: Path) -> dict:
    path = data / "_state" / "bronze_manifest.json"
    return json.loads(path.read_text()) if path.exists() else {"files": {}, "batches": {}}


def ingested(data: Path, *names: str) -> bool:
    return set(names) <= set(manifest(data)["files"])


def watch_reports(data: Path) -> list[dict]:
    """The `watch` entry of every batch's quality report, in batch order."""
    reports = [json.loads(p.read_text()) for p in (data / "reports" / "history").glob("quality_*.json")]
    return sorted((r["watch"] for r in reports if "watch" in r), key=lambda w: w["batch"])


def verify(workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLICKSTREAM, "verify", "--data-dir", "data"], cwd=workdir, capture_output=True,
                          text=True, timeout=TIMEOUT)


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "data" / "raw").mkdir(parents=True)
    return tmp_path


@pytest.fixture
def start_watch(workdir):
    """Start `clickstream watch` on workdir/data (its log lines go to workdir/watch.err); killed if still running
    at the end of the test."""
    started = []

    def start(*args: str, stderr=None) -> subprocess.Popen:
        err = stderr if stderr is not None else (workdir / "watch.err").open("w")
        process = subprocess.Popen([CLICKSTREAM, "watch", "--data-dir", "data", "--interval", str(INTERVAL), *args],
                                   cwd=workdir, stdout=subprocess.DEVNULL, stderr=err, text=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def write_slowly(path: Path, data: bytes, piece: int = 2048, pause: float = 0.05) -> None:
    """Write in pieces cut anywhere (inside lines), each flushed, as a slow download or export would."""
    with path.open("wb") as handle:
        for start in range(0, len(data), piece):
            handle.write(data[start:start + piece])
            handle.flush()
            time.sleep(pause)


def test_every_dropped_file_is_ingested_once_and_whole(workdir, start_watch):
    source = generate(workdir / "source", rows=4_000, seed=21, files=4).files
    moved, renamed, slow, renamed_later = source
    long_ago = time.time() - 3600  # written an hour ago: a link made now is later than its last write
    os.utime(moved, (long_ago, long_ago))  # (timestamps are coarse: a link within the write's tick looks like it)
    raw, data = workdir / "data" / "raw", workdir / "data"
    watcher = start_watch()
    failures = []

    def drop() -> None:
        try:
            os.link(moved, raw / moved.name)  # moved in whole: written long ago
            wait_for(lambda: ingested(data, moved.name), "the file moved in")
            write_slowly(raw / f"{renamed.name}.tmp", renamed.read_bytes(), piece=8192)  # never picked up as is
            os.rename(raw / f"{renamed.name}.tmp", raw / renamed.name)
            wait_for(lambda: ingested(data, renamed.name), "the file renamed")
            (raw / f"{renamed_later.name}.tmp").write_bytes(renamed_later.read_bytes())
            (raw / "still_downloading.csv.part").write_bytes(renamed_later.read_bytes()[:5000])  # stays
            content = slow.read_bytes()
            writer = threading.Thread(target=write_slowly, args=(raw / slow.name, content))
            writer.start()  # about 1.5 s of pieces under its final name
            time.sleep(0.4)
            os.rename(raw / f"{renamed_later.name}.tmp", raw / renamed_later.name)  # must wait for the slow one
            writer.join()
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
            failures.append(exc)

    dropper = threading.Thread(target=drop)
    dropper.start()
    dropper.join(timeout=TIMEOUT)
    assert not failures, failures
    names = [f.name for f in source]
    wait_for(lambda: ingested(data, *names), "every file ingested")
    wait_for(lambda: sum(len(w["files"]) for w in watch_reports(data)) == len(names), "the last batch's report")
    watcher.send_signal(signal.SIGTERM)
    assert watcher.wait(timeout=TIMEOUT) == 0

    # each file once, as it was written in the end: one version, in one batch, never appended to
    files = manifest(data)["files"]
    assert sorted(files) == sorted(names)
    for file in source:
        entry = files[file.name]
        assert (entry["sha256"], entry.get("previous", []), len(entry.get("parts") or [None])) == (
            sha256(file), [], 1), file.name
    batches = manifest(data)["batches"].values()
    assert sorted(name for batch in batches for name in batch["files"]) == sorted(names)
    # the batches and how each file was found complete
    reports = watch_reports(data)
    taken = {f["path"]: f for w in reports for f in w["files"]}
    assert sorted(taken) == sorted(names) and len(taken) == sum(len(w["files"]) for w in reports)
    assert (taken[moved.name]["complete"], taken[slow.name]["complete"], taken[renamed_later.name]["complete"]) == (
        MOVED_IN, STABLE, MOVED_IN)
    assert taken[renamed.name]["complete"] in (MOVED_IN, STABLE)  # renamed within the clock tick of its last write
    slow_batch = next(w["batch"] for w in reports if any(f["path"] == slow.name for f in w["files"]))
    later_batch = next(w["batch"] for w in reports if any(f["path"] == renamed_later.name for f in w["files"]))
    assert later_batch == slow_batch == len(reports) == 3  # held back while the slow file was written
    for report in reports:
        assert report["latency_seconds"] >= report["pipeline_seconds"] > 0
        assert report["analytics_updated_at"] is not None
    log = (workdir / "watch.err").read_text()
    assert f"the next batch waits for {slow.name}, still being written" in log
    assert "still_downloading" not in log
    assert verify(workdir).returncode == 0


def test_sigterm_during_a_batch_lets_it_finish_then_exits_0(workdir, start_watch):
    generate(workdir / "data" / "raw", rows=100_000, seed=22)  # a batch long enough to signal during it
    watcher = start_watch(stderr=subprocess.PIPE)
    lines = []
    for line in watcher.stderr:
        lines.append(line)
        if "watch: batch 1: 1 file(s) complete" in line:
            watcher.send_signal(signal.SIGTERM)
            break
    _, rest = watcher.communicate(timeout=TIMEOUT)
    log = "".join(lines) + rest
    assert watcher.returncode == 0, log
    stopping = log.index("watch: SIGTERM received: stopping once the current batch is done")
    assert stopping < log.index("watch: batch 1 done: 1 file(s), 100,000 rows")
    assert "watch: batch 2" not in log
    (report,) = watch_reports(workdir / "data")
    assert report["analytics_updated_at"] is not None
    assert verify(workdir).returncode == 0


def test_a_second_signal_stops_at_once_and_the_next_run_recovers(workdir, start_watch):
    generate(workdir / "data" / "raw", rows=100_000, seed=23)
    watcher = start_watch(stderr=subprocess.PIPE)
    for line in watcher.stderr:
        if "job gold started" in line:  # bronze and silver are published: the batch is half-way
            watcher.send_signal(signal.SIGINT)
        if "watch: SIGINT received" in line:  # the first one is handled: the next is a second one
            watcher.send_signal(signal.SIGINT)
            break
    _, rest = watcher.communicate(timeout=TIMEOUT)
    assert watcher.returncode == -signal.SIGINT, rest
    assert "watch: SIGINT again: stopping at once" in rest
    rerun = subprocess.run([CLICKSTREAM, "run", "--data-dir", "data"], cwd=workdir, capture_output=True, text=True,
                           timeout=TIMEOUT)
    assert rerun.returncode == 0, rerun.stderr
    assert f"taking over the lock of pid {watcher.pid} (no longer running)" in rerun.stderr
    assert verify(workdir).returncode == 0


def test_the_lock_is_taken_per_batch(workdir, start_watch):
    first, second = generate(workdir / "source", rows=2_000, seed=24, files=2).files
    raw, data = workdir / "data" / "raw", workdir / "data"
    watcher = start_watch()
    os.link(first, raw / first.name)
    # the batch's quality report is written before its HTML report, both under the lock: wait for its end
    wait_for(lambda: "watch: batch 1 done" in (workdir / "watch.err").read_text(), "the first batch")
    checked = verify(workdir)  # between batches the lock is free
    assert checked.returncode == 0, checked.stderr
    with WriterLock(data):  # as another run would hold it
        os.link(second, raw / second.name)
        wait_for(lambda: "watch: batch 2 waits for the next look: data directory data is in use"
                 in (workdir / "watch.err").read_text(), "the watch to find the lock taken")
        assert not ingested(data, second.name)
    wait_for(lambda: ingested(data, second.name) and len(watch_reports(data)) == 2, "the second batch")
    watcher.send_signal(signal.SIGTERM)
    assert watcher.wait(timeout=TIMEOUT) == 0
    assert [w["batch"] for w in watch_reports(data)] == [1, 2]


def test_max_batches_stops_after_that_many_and_a_failed_batch_exits_1(workdir, start_watch):
    (workdir / "config.yaml").write_text("quality:\n  refused_files: fail\n")
    generate(workdir / "data" / "raw", rows=1_000, seed=25)
    (workdir / "data" / "raw" / "binary.csv").write_bytes(b"\x00\x01\x02 not text")
    watcher = start_watch("--max-batches", "1", "--config", "config.yaml")
    assert watcher.wait(timeout=TIMEOUT) == 1
    log = (workdir / "watch.err").read_text()
    assert "watch: batch 1 failed: bronze: 1 raw file(s) refused, e.g. binary.csv" in log
    assert re.search(r"^clickstream: error: the last batch failed: bronze: 1 raw file\(s\) refused", log, re.M)
    assert manifest(workdir / "data")["files"] == {}

    (workdir / "data" / "raw" / "binary.csv").unlink()
    watcher = start_watch("--max-batches", "1")
    assert watcher.wait(timeout=TIMEOUT) == 0
    assert len(manifest(workdir / "data")["files"]) == 1


def test_a_file_refused_under_its_sources_config_waits_and_under_a_fixed_config_is_pending_again(tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text("customer,when,action\n")
    seen = sight(path)
    wrong = Source(columns={"UserID": "user", "Timestamp": "when", "EventType": "action"})
    fixed = Source(columns={"UserID": "customer", "Timestamp": "when", "EventType": "action"})
    refusal = {"sha256": None, "size": seen.size, "mtime_ns": seen.mtime_ns, "reason": "missing column(s) ['user']",
               "config": bronze.reading_fingerprint(wrong)}
    manifest = {"files": {}, "copies": {}, "refused": {"shop.csv": refusal}}
    assert [_recorded(manifest, "shop.csv", seen, source) for source in (wrong, fixed)] == [True, False]


def test_a_file_removed_during_a_batch_is_refused_alone_and_the_watch_goes_on(tmp_path, monkeypatch):
    config = make_config(tmp_path)
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    header = "UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"
    (raw / "a.csv").write_text(header + "1,1,2024-01-01 10:00:00,page_view,,,\n")
    (raw / "gone.csv").write_text(header + "2,1,2024-01-01 10:00:00,page_view,,,\n")
    match_sources = bronze.match_sources

    def listed_then_removed(*args):  # in batch 1: gone.csv is removed after the listing, later.csv comes
        found = match_sources(*args)
        if (raw / "gone.csv").exists():
            (raw / "gone.csv").unlink()
            (raw / "later.csv.tmp").write_text(header + "3,1,2024-01-01 10:00:00,page_view,,,\n")
            (raw / "later.csv.tmp").rename(raw / "later.csv")
        return found

    monkeypatch.setattr(bronze, "match_sources", listed_then_removed)
    assert watch(config, interval=0.2, max_batches=2) is None
    assert sorted(manifest(tmp_path / "data")["files"]) == ["a.csv", "later.csv"]
    reports = sorted((json.loads(p.read_text()) for p in (tmp_path / "data" / "reports" / "history").glob("*.json")),
                     key=lambda r: r["watch"]["batch"])
    assert [(r["watch"]["batch"], [f["path"] for f in r["watch"]["files"]], r["bronze"]["refused"])
            for r in reports] == [
        (1, ["a.csv", "gone.csv"], [{"path": "gone.csv", "reason": "removed from raw/ while the run read it",
                                     "this_run": True}]),
        (2, ["later.csv"], [])]


def test_a_batch_that_starts_a_week_leaves_the_models_due_and_the_watch_fits_them_when_no_batch_waits(tmp_path):
    """A batch keeps the models of the week before (no event they see changed), so it pays only for its file;
    the next look that finds nothing to ingest fits them up to the new week, in an analytics run of its own."""
    from clickstream import incremental
    from clickstream.watch import Watcher

    config = make_config(tmp_path, analytics={**Config().analytics.model_dump(), "churn": {"enabled": True},
                                              "clusters": {"enabled": True, "k": 2}})
    data = tmp_path / "data"
    (data / "raw").mkdir(parents=True)
    header = "UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"
    week = "".join(f"u{u},s{d},2024-01-{d:02d} 10:0{u}:00,{kind},p{u},,\n" for u in range(1, 7)
                   for d in (8, 10, 15, 17) for kind in ("page_view", "product_view"))
    (data / "raw" / "a.csv").write_text(header + week)
    watcher = Watcher(config, interval=0.05)

    class Stop:  # after the first batch, a file of a new week comes; after the models are fitted, stop
        requested = False

        def sleep(self, seconds: float) -> None:
            if watcher.batches == 1 and not (data / "raw" / "b.csv").exists():
                (data / "raw" / "b.csv.tmp").write_text(header + "u1,s9,2024-01-22 10:00:00,page_view,,,\n")
                (data / "raw" / "b.csv.tmp").rename(data / "raw" / "b.csv")
            elif watcher.batches == 2 and watcher.models_due is None:
                self.requested = True
            time.sleep(seconds)

    assert watcher.run(Stop()) is None
    runs = sorted((json.loads(p.read_text()) for p in (data / "reports" / "history").glob("*.json")),
                  key=lambda r: r["started_at"])
    outputs = ["churn_model", "churn_scores", "user_clusters", "cluster_profiles"]
    assert [(r.get("watch", {}).get("batch"), r["layers"], {r["analytics"]["modes"][n] for n in outputs},
             r["analytics"].get("models_due")) for r in runs] == [
        (1, ["bronze", "silver", "gold", "analytics"], {"full"}, None),
        (2, ["bronze", "silver", "gold", "analytics"], {"current"}, "2024-01-22T00:00:00"),
        (None, ["analytics"], {"full"}, None)]
    assert {n: m for n, m in runs[2]["analytics"]["modes"].items() if n not in outputs} == {
        n: "current" for n in runs[2]["analytics"]["modes"] if n not in outputs}
    assert incremental.models_due(data / "analytics") is None


def test_models_left_due_wait_while_another_run_holds_the_data_directory(tmp_path):
    from clickstream.watch import Watcher

    (tmp_path / "data").mkdir()
    watcher = Watcher(make_config(tmp_path), interval=0.05)
    watcher.models_due = "2024-01-22T00:00:00"
    with WriterLock(tmp_path / "data"):
        assert watcher.fit_due_models() is False  # the loop sleeps an interval before it looks again
    assert watcher.models_due == "2024-01-22T00:00:00"
