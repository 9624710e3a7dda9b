"""Every failure of the command is one line on stderr saying what to do, exit 1 (2 for the config); the traceback
only with --verbose. Real conditions: files where directories belong, a full disk, a read-only disk, a
permission denied, a corrupt Parquet file."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mounts import fill, make_read_only, tmpfs

from clickstream.generate import DefectRates, generate
from clickstream.gold import models

# A progress line of the terminal log handler, e.g. "13:05:48 INFO    job bronze started (log file ...)"
PROGRESS = re.compile(r"\d\d:\d\d:\d\d INFO    ")


def clickstream(*args: str, cwd: Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """The command in its own process, as a person runs it; logs/ goes under `cwd`."""
    return subprocess.run([*prefix, sys.executable, "-m", "clickstream", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def the_failure(stderr: str) -> str:
    """The one line a failure after the job started prints, below the progress lines: nothing else, no
    traceback, no log line repeating it."""
    assert "Traceback" not in stderr
    *progress, line, end = stderr.split("\n")
    assert end == ""
    assert [p for p in progress if not PROGRESS.match(p)] == []
    return line


def raw_data(data: Path) -> None:
    generate(data / "raw", rows=300, seed=5, defects=DefectRates.none())


# ---- files where directories belong: checked before anything runs, so stderr is exactly the one line


def test_a_data_dir_that_is_a_file_is_one_line_naming_it(tmp_path):
    data = tmp_path / "data"
    data.write_text("not a directory\n")
    done = clickstream("run", "--data-dir", str(data), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"clickstream: error: data directory {data} is a file, not a directory: remove or rename "
                           f"it, or point --data-dir (paths.data_dir) elsewhere\n")


def test_a_data_dir_under_a_file_names_the_file(tmp_path):
    blocking = tmp_path / "data"
    blocking.write_text("")
    done = clickstream("generate", "--rows", "10", "--data-dir", str(blocking / "sub"), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (f"clickstream: error: data directory {blocking}/sub cannot be made: {blocking} is a file, "
                           f"not a directory: remove or rename it, or point --data-dir (paths.data_dir) elsewhere\n")


def test_a_hostile_and_long_data_dir_name_is_escaped_and_cut_to_200_characters(tmp_path):
    folder = tmp_path / ("d" * (180 - len(str(tmp_path))))  # the newline and the escape within the 200 shown
    folder.mkdir()
    data = folder / ("evil\n\x1b[2J" + "e" * 100)
    data.write_text("")
    done = clickstream("run", "--data-dir", str(data), cwd=tmp_path)
    cut = str(data)[:200]
    assert len(str(data)) > 200 and "\n" in cut
    shown = cut.replace("\n", "\\n").replace("\x1b", "\\x1b") + f"... ({len(str(data)) - 200} more characters)"
    assert done.returncode == 1
    assert done.stderr == (f"clickstream: error: data directory {shown} is a file, not a directory: remove or rename "
                           f"it, or point --data-dir (paths.data_dir) elsewhere\n")


def test_a_logs_dir_that_is_a_file_is_one_line_naming_it(tmp_path):
    raw_data(tmp_path / "data")
    (tmp_path / "data" / "logs").write_text("")  # logs/ is under the data directory by default
    done = clickstream("bronze", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (f"clickstream: error: logs directory {tmp_path}/data/logs is a file, not a directory: "
                           "remove or rename it, or point paths.logs_dir elsewhere\n")


def test_a_raw_dir_that_is_a_file_is_named_from_the_os_error(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "raw").write_text("")
    done = clickstream("generate", "--rows", "10", "--data-dir", str(data), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (f"clickstream: error: {data}/raw is a file, not a directory: remove or rename it, or use "
                           f"another path\n")


# ---- the machine refuses: a full disk, a read-only disk, a permission denied (after the job started)


def test_a_full_disk_is_one_line_naming_the_file_being_written(tmp_path):
    with tmpfs(tmp_path / "full") as data:
        raw_data(data)
        fill(data)
        done = clickstream("bronze", "--data-dir", str(data), cwd=tmp_path)
    assert done.returncode == 1
    line = the_failure(done.stderr)
    assert re.fullmatch(rf"clickstream: error: no space left on device writing {re.escape(str(data))}/\S+: "
                        r"free space or point paths\.data_dir \(or duckdb\.temp_directory\) elsewhere", line), line


def test_a_read_only_data_dir_is_one_line_naming_it(tmp_path):
    with tmpfs(tmp_path / "ro") as data:
        raw_data(data)
        make_read_only(data)
        done = clickstream("run", "--data-dir", str(data), cwd=tmp_path)
    assert done.returncode == 1
    line = the_failure(done.stderr)
    assert re.fullmatch(rf"clickstream: error: read-only file system: cannot write {re.escape(str(data))}/\S+: "
                        r"point paths\.data_dir \(or paths\.logs_dir\) at a writable directory", line), line


def test_a_data_dir_without_write_permission_is_one_line_naming_it(tmp_path):
    # root ignores file modes: the command runs without the capability that lets it
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to run the command without overriding file modes")
    data = tmp_path / "data"
    raw_data(data)
    data.chmod(0o555)
    try:
        done = clickstream("run", "--data-dir", str(data), cwd=tmp_path,
                           prefix=("setpriv", "--bounding-set=-dac_override,-dac_read_search"))
    finally:
        data.chmod(0o755)
    assert done.returncode == 1
    line = the_failure(done.stderr)
    assert re.fullmatch(rf"clickstream: error: permission denied: {re.escape(str(data))}/\S+: let the user running "
                        r"clickstream read and write it, or point paths\.data_dir \(or paths\.logs_dir\) elsewhere",
                        line), line


# ---- anything else: its type and message, and the traceback only with --verbose


@pytest.fixture
def corrupt_gold(tmp_path) -> tuple[Path, Path]:
    """A data directory whose first gold table is a file of text where Parquet is expected."""
    data = tmp_path / "data"
    first = next(m["name"] for m in models() if m.get("publish", True))
    bad = data / "gold" / first / "part-00000.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not parquet " * 20)
    return data, bad


UNEXPECTED = (r"clickstream: error: unexpected InvalidInputException: Invalid Input Error: .*'{path}'.* "
              r"\(run again with --verbose for the traceback\)")


def test_an_unexpected_exception_is_one_line_naming_its_type(corrupt_gold, tmp_path):
    data, bad = corrupt_gold
    done = clickstream("analytics", "--data-dir", str(data), cwd=tmp_path)
    assert done.returncode == 1
    line = the_failure(done.stderr)
    assert re.fullmatch(UNEXPECTED.format(path=re.escape(str(bad))), line), line
    assert "\\n\\nLINE 1: " in line  # DuckDB's multi-line message, on the one line


def test_verbose_adds_the_traceback_after_the_same_line(corrupt_gold, tmp_path):
    data, bad = corrupt_gold
    done = clickstream("analytics", "--verbose", "--data-dir", str(data), cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("clickstream: error:"))
    assert re.fullmatch(UNEXPECTED.format(path=re.escape(str(bad))), lines[start]), lines[start]
    assert lines[start + 1] == "Traceback (most recent call last):"
    assert [line for line in lines[start + 2:] if line.startswith("_duckdb.")] == [
        f"_duckdb.InvalidInputException: Invalid Input Error: No magic bytes found at end of file '{bad}'"]


# ---- published data the state cannot account for: refused, nothing changed, the command that repairs it named


def test_a_lost_manifest_is_one_line_naming_the_repair_command(tmp_path):
    data = tmp_path / "data"
    raw_data(data)
    assert clickstream("bronze", "--data-dir", str(data), cwd=tmp_path).returncode == 0
    (data / "_state" / "bronze_manifest.json").unlink()
    bronze_files = sorted((data / "bronze").rglob("*.parquet"))
    done = clickstream("run", "--data-dir", str(data), cwd=tmp_path)
    assert done.returncode == 1
    assert the_failure(done.stderr) == (
        f"clickstream: error: bronze: the manifest {data}/_state/bronze_manifest.json is missing, yet {data}/bronze "
        f"holds 1 Parquet file(s); nothing was changed; rebuild it from bronze's own files with: clickstream "
        f"repair-manifest --data-dir {data}")
    assert sorted((data / "bronze").rglob("*.parquet")) == bronze_files
    assert not (data / "silver").exists()
