"""One writer per data directory: real `clickstream` processes against a lock another process holds."""
from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from clickstream.cli import build_parser
from clickstream.context import PipelineError
from clickstream.generate import generate
from clickstream.lock import DataDirectoryInUse, WriterLock

CLICKSTREAM = str(Path(sys.executable).parent / "clickstream")
HOST = socket.gethostname()

HOLDER = '''"""Takes the writer lock of a data directory, says so, then holds it for a while, as a run would."""
import sys
import time
from pathlib import Path

from clickstream.lock import WriterLock

with WriterLock(Path(sys.argv[1])):
    print("holding", flush=True)
    if sys.argv[2] == "until-released":  # until the file `released` exists (at most 5 minutes)
        deadline = time.monotonic() + 300
        while not Path("released").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        time.sleep(float(sys.argv[2]))
'''


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Generated raw data in workdir/data/raw; every process runs in workdir, so its logs stay there."""
    generate(tmp_path / "data" / "raw", rows=2000, seed=1)
    (tmp_path / "holder.py").write_text(HOLDER)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def holders():
    """Start processes that hold the lock of `data`; any still running at the end of the test is killed."""
    started = []

    def hold(seconds: float | str) -> subprocess.Popen:
        holder = subprocess.Popen([sys.executable, "holder.py", "data", str(seconds)], stdout=subprocess.PIPE,
                                  text=True)
        started.append(holder)
        assert holder.stdout.readline() == "holding\n"
        return holder

    yield hold
    for holder in started:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()


def clickstream(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLICKSTREAM, *args, "--data-dir", "data"], capture_output=True, text=True, timeout=300)


def holder_line(pid: int, started_at: str, command: str) -> str:
    return f"pid {pid} on host {HOST}, since {started_at}: {command}"


def tree(root: Path) -> dict[str, bytes | None]:
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None for p in root.rglob("*")}


def rows(files: list[Path]) -> int:
    return duckdb.sql(f"select count(*) from read_parquet({[str(f) for f in files]})").fetchall()[0][0]


def test_a_second_run_fails_at_once_naming_the_holder_and_writes_nothing(workdir, holders):
    holder = holders(60)
    started_at = json.loads(Path("data/_state/writer.lock").read_text())["started_at"]
    staged = Path("data/_staging/bronze-0123456789ab/ingestion_date=2026-11-30")  # as the holder would write it
    staged.mkdir(parents=True)
    (staged / "data_0.parquet").write_text("being written by the holder")
    before = tree(Path("data"))
    second = clickstream("run")
    assert (second.returncode, second.stderr.splitlines()) == (1, [
        f"clickstream: error: data directory data is in use by another clickstream run "
        f"({holder_line(holder.pid, started_at, 'holder.py data 60')}); wait for it to finish, or pass "
        f"--wait SECONDS"])
    assert second.stdout == ""
    assert tree(Path("data")) == before
    assert holder.poll() is None  # it did not wait for the holder


def test_wait_takes_the_lock_once_the_holder_releases_it(workdir, holders):
    holder = holders("until-released")
    started_at = json.loads(Path("data/_state/writer.lock").read_text())["started_at"]
    with open("second.err", "w+") as err:
        second = subprocess.Popen([CLICKSTREAM, "run", "--wait", "120", "--data-dir", "data"],
                                  stdout=subprocess.DEVNULL, stderr=err, text=True)
        deadline = time.monotonic() + 120
        while "waiting up to" not in Path("second.err").read_text() and second.poll() is None:
            assert time.monotonic() < deadline, "the second run never said it was waiting"
            time.sleep(0.05)
        Path("released").touch()  # the holder ends only once the second run is waiting for it
        assert (second.wait(timeout=300), holder.wait(timeout=30)) == (0, 0), Path("second.err").read_text()
    stderr = Path("second.err").read_text()
    assert [re.sub(r"^\S+ INFO +", "", line) for line in stderr.splitlines() if "waiting" in line] == [
        f"data directory data is in use by another clickstream run "
        f"({holder_line(holder.pid, started_at, 'holder.py data until-released')}); waiting up to 120 s"]
    assert Path("data/reports/quality_report.json").exists()
    assert Path("data/_state/writer.lock").read_text() == ""  # released cleanly


def test_wait_gives_up_after_the_time_given(workdir, holders):
    holder = holders(60)
    started = time.monotonic()
    second = clickstream("run", "--wait", "1.5")
    assert time.monotonic() - started >= 1.5
    assert second.returncode == 1
    assert second.stderr.splitlines()[-1].startswith(
        f"clickstream: error: data directory data is still in use by another clickstream run after waiting 1.5 s "
        f"(pid {holder.pid} on host {HOST}, since ")
    assert second.stderr.splitlines()[-1].endswith(": holder.py data 60); wait for it to finish, or pass a longer "
                                                   "--wait")
    assert not Path("data/bronze").exists()


def test_the_lock_of_a_killed_holder_is_taken_over(workdir, holders):
    holder = holders(60)
    holder.kill()
    stat = Path(f"/proc/{holder.pid}/stat")
    if stat.exists():  # not reaped: a zombie keeps its pid but no longer holds the lock, and counts as not running
        deadline = time.monotonic() + 10
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the killed holder did not end"
            time.sleep(0.01)
    else:
        holder.wait()
    assert json.loads(Path("data/_state/writer.lock").read_text())["pid"] == holder.pid  # left as it was
    second = clickstream("run")
    assert second.returncode == 0, second.stderr
    note = f"taking over the lock of pid {holder.pid} (no longer running)"
    assert [line.split(" ", 1)[1] for line in second.stderr.splitlines() if "taking over" in line] == [
        f"WARNING {note}"]
    assert json.loads(Path("data/reports/quality_report.json").read_text())["last_run"]["recovery"] == [note]


def test_of_two_runs_started_together_one_writes_and_the_other_refuses(workdir):
    runs = [subprocess.Popen([CLICKSTREAM, "run", "--data-dir", "data"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    codes = [run.returncode for run in runs]
    assert sorted(codes) == [0, 1], outputs
    winner, loser = (runs[codes.index(0)], outputs[codes.index(1)])
    (line,) = loser[1].splitlines()
    assert re.fullmatch(rf"clickstream: error: data directory data is in use by another clickstream run \(pid "
                        rf"{winner.pid} on host {re.escape(HOST)}, since \S+Z: clickstream run --data-dir data\); "
                        rf"wait for it to finish, or pass --wait SECONDS", line)

    third = clickstream("run")
    assert third.returncode == 0, third.stderr
    report = json.loads(Path("data/reports/quality_report.json").read_text())["last_run"]
    assert report["recovery"] == []
    state = json.loads(Path("data/_state/silver_state.json").read_text())
    manifest = json.loads(Path("data/_state/bronze_manifest.json").read_text())
    (run,) = state["runs"].values()
    totals = run["totals"]
    assert run["bronze_batches"] == sorted(manifest["batches"])
    assert rows(sorted(Path("data/bronze").rglob("*.parquet"))) == totals["bronze_rows"] == 2000
    assert rows(sorted(Path("data/silver").rglob("*.parquet"))) == totals["silver_rows"]
    assert rows(sorted(Path("data/quarantine").rglob("*.parquet"))) == totals["quarantine_rows"]
    assert totals["bronze_rows"] == totals["silver_rows"] + totals["quarantine_rows"] + totals["duplicate_rows"]


def test_the_lock_file_names_its_holder_while_held_and_is_emptied_on_release(tmp_path):
    with WriterLock(tmp_path):
        holder = json.loads((tmp_path / "_state" / "writer.lock").read_text())
        with pytest.raises(DataDirectoryInUse, match=rf"^data directory {re.escape(str(tmp_path))} is in use by "
                                                     rf"another clickstream run \(pid {os.getpid()} on host "):
            WriterLock(tmp_path).acquire()  # another open file: flock refuses it even within one process
    assert (tmp_path / "_state" / "writer.lock").read_text() == ""
    assert holder == {"pid": os.getpid(), "host": HOST, "started_at": holder["started_at"],
                      "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", holder["started_at"])


@pytest.mark.parametrize("host, pid, note", [
    ("elsewhere", 4242, "taking over the lock of pid 4242 on host elsewhere (it did not release it; whether it "
                        f"still runs cannot be checked from host {HOST})"),
    (HOST, os.getpid(), f"taking over the lock of pid {os.getpid()} (it ended without releasing it; the pid now "
                        "belongs to another process)")], ids=["another host", "this host, pid reused"])
def test_a_lock_left_by_a_holder_that_cannot_be_checked_is_taken_over_with_a_note(tmp_path, host, pid, note):
    (tmp_path / "_state").mkdir()
    (tmp_path / "_state" / "writer.lock").write_text(json.dumps(
        {"pid": pid, "host": host, "started_at": "2026-11-30T12:00:00Z", "command": "clickstream run"}))
    with WriterLock(tmp_path) as lock:
        assert lock.takeover_note == note


def test_a_holder_that_has_not_yet_named_itself_is_reported_as_unknown(tmp_path):
    (tmp_path / "_state").mkdir()
    with open(tmp_path / "_state" / "writer.lock", "w") as taken:  # locked, details not written yet
        fcntl.flock(taken, fcntl.LOCK_EX)
        with pytest.raises(DataDirectoryInUse, match=r"in use by another clickstream run \(holder unknown: "
                                                     r".*writer\.lock names none yet\)"):
            WriterLock(tmp_path).acquire()


def test_a_lock_path_that_is_a_symbolic_link_is_refused_and_its_target_left_whole(workdir):
    precious = workdir / "precious.txt"
    precious.write_text("precious\n")
    Path("data/_state").mkdir()
    Path("data/_state/writer.lock").symlink_to("../../precious.txt")
    before = tree(Path("data"))
    run = clickstream("run")
    assert (run.returncode, run.stderr.splitlines()) == (1, [
        "clickstream: error: writer lock data/_state/writer.lock is a symbolic link: the lock is written, so it "
        "must be a file of its own (a link is never followed): remove it and run again"])
    assert precious.read_text() == "precious\n"
    assert tree(Path("data")) == before  # nothing ingested, the link left as it was


def _hard_link(lock: Path, elsewhere: Path) -> None:
    elsewhere.write_text("precious\n")
    os.link(elsewhere, lock)


def _fifo(lock: Path, elsewhere: Path) -> None:
    os.mkfifo(lock)


def _dangling_link(lock: Path, elsewhere: Path) -> None:
    lock.symlink_to(elsewhere)  # would create the target


@pytest.mark.parametrize("plant, problem", [
    (_hard_link, "is one of 2 names of the same file"),
    (_fifo, "is not a regular file"),
    (_dangling_link, "is a symbolic link"),
])
def test_a_lock_path_that_is_not_a_file_of_its_own_is_refused(tmp_path, plant, problem):
    data = tmp_path / "data"
    (data / "_state").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.txt"
    plant(data / "_state" / "writer.lock", elsewhere)
    with pytest.raises(PipelineError) as refused:
        WriterLock(data).acquire()
    assert str(refused.value) == (f"writer lock {data}/_state/writer.lock {problem}: the lock is written, so it must "
                                  f"be a file of its own (a link is never followed): remove it and run again")
    assert elsewhere.read_text() == "precious\n" if plant is _hard_link else not elsewhere.exists()


@pytest.mark.parametrize("value", ["-1", "soon", "nan"])
def test_wait_is_a_number_of_seconds(value, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--wait", value])
    assert f"argument --wait: expected a number of seconds, 0 or more, got '{value}'" in capsys.readouterr().err
