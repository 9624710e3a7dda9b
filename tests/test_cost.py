"""A run's cost record: checked against what /usr/bin/time measures of the same run, and its pieces alone."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clickstream import storage
from clickstream.config import Cost
from clickstream.cost import Outside, directory_bytes, estimate, proc_io
from clickstream.generate import generate

TOLERANCE = 0.25
TIME = shutil.which("time") or "/usr/bin/time"
BUSY = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\nimport sys; sys.stdin.read()"


def _gnu_time(stderr: str) -> dict[str, float]:
    """The figures of `time -v`'s report that the cost record has too, in its units."""
    found = dict(re.findall(r"^\s*([^:\n]+?): ([0-9.]+)$", stderr, flags=re.MULTILINE))
    return {"cpu_seconds": float(found["User time (seconds)"]) + float(found["System time (seconds)"]),
            "peak_rss_bytes": float(found["Maximum resident set size (kbytes)"]) * 1024,
            "bytes_written": float(found["File system outputs"]) * 512,
            "bytes_read": float(found["File system inputs"]) * 512}


@pytest.mark.skipif(not Path(TIME).is_file(), reason="GNU time (/usr/bin/time) is not installed")
def test_the_cost_record_agrees_with_gnu_time_on_the_same_run(tmp_path):
    data = tmp_path / "data"
    generate(data / "raw", rows=3000, seed=11)
    done = subprocess.run([TIME, "-v", sys.executable, "-m", "clickstream", "run", "--quiet", "--data-dir", str(data)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    measured = _gnu_time(done.stderr)
    cost = storage.read_json(data / "reports" / "quality_report.json", {})["last_run"]["cost"]
    # the first run of a process counts it from its start, as time does
    for key in ("cpu_seconds", "bytes_written"):
        assert abs(cost[key] - measured[key]) <= TOLERANCE * measured[key], (key, cost[key], measured[key])
    # one process on DuckDB: its peak is time's
    assert (1 - TOLERANCE) * measured["peak_rss_bytes"] <= cost["peak_rss_bytes"] <= (
        (1 + TOLERANCE) * measured["peak_rss_bytes"]), (cost["peak_rss_bytes"], measured)
    assert abs(cost["bytes_read"] - measured["bytes_read"]) <= max(TOLERANCE * measured["bytes_read"], 1 << 20)
    assert cost["wall_seconds"] >= sum(cost["layer_seconds"].values()) > 0, cost


def test_a_process_beside_this_one_is_read_from_proc_cpu_and_peak_memory():
    child = subprocess.Popen([sys.executable, "-c", BUSY], stdin=subprocess.PIPE)
    try:
        time.sleep(0.2)
        deadline = time.monotonic() + 30
        while (seen := Outside.read(child.pid)) is not None and seen.cpu_seconds < 0.5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert seen is not None and seen.cpu_seconds >= 0.5, seen
        assert seen.peak_rss_bytes > 1_000_000 and seen.started_seconds > 0, seen
    finally:
        child.communicate(b"", timeout=30)
    assert Outside.read(child.pid) is None  # waited for: gone from /proc


def test_prices_give_an_estimate_and_without_them_there_is_none(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 1500)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 500)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert directory_bytes(tmp_path) == 2000
    assert estimate(7200.0, tmp_path, Cost()) == {}
    assert estimate(7200.0, tmp_path, Cost(core_hour=0.05, gb_month=20.0)) == {
        "estimated_run_cost": 0.1, "data_dir_bytes": 2000, "estimated_storage_cost_per_month": 0.00004}


def test_proc_io_counts_what_this_process_writes(tmp_path):
    before = proc_io()
    with (tmp_path / "f").open("wb") as handle:
        handle.write(b"z" * (4 << 20))
        handle.flush()
    written = proc_io()["write_bytes"] - before["write_bytes"]
    if written == 0:
        pytest.skip("this file system does not account writes to the process (write_bytes stays 0)")
    assert written >= 4 << 20, written
