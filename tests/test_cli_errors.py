"""Every failure of the command is one line on stderr saying what to do, exit 1 (2 for the config); the traceback
only with --verbose. Real conditions: files where directories belong, a full disk, a read-only disk, a
permission denied, a corrupt Parquet file."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
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


def test_an_unexpected_exception_is_one_line_naming_its_type_and_the_engines_pointer_below(corrupt_gold, tmp_path):
    data, bad = corrupt_gold
    done = clickstream("analytics", "--data-dir", str(data), cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    line, *details = [line for line in done.stderr.splitlines() if not PROGRESS.match(line)]
    assert re.fullmatch(UNEXPECTED.format(path=re.escape(str(bad))), line), line
    # DuckDB's multi-line message: its other lines below the one, indented, the pointer under the statement
    assert len(details) == 2, details
    assert details[0].startswith("    LINE 1: create or replace temp view ") and "read_parquet([" in details[0]
    assert re.fullmatch(r" {5,}\^+", details[1])
    assert details[1].index("^") == details[0].index("read_parquet(")


def test_a_query_error_shows_its_pointer_on_lines_of_its_own(tmp_path):
    data = tmp_path / "data"
    raw_data(data)
    assert clickstream("run", "--quiet", "--data-dir", str(data), cwd=tmp_path).returncode == 0
    done = clickstream("sql", "selec 1", "--data-dir", str(data), cwd=tmp_path)
    assert (done.returncode, done.stderr.splitlines()) == (1, [
        'clickstream: error: sql: the query failed: Parser Error: syntax error at or near "selec"',
        "    LINE 1: selec 1",
        "            ^^^^^"])


def test_a_yaml_error_names_the_line_and_column_and_shows_them(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("engine: duckdb\nquality:\n  quarantine_rate: {warn: 0.1 fail: 0.2}\n")
    done = clickstream("run", "--config", str(config), cwd=tmp_path)
    assert (done.returncode, done.stderr.splitlines()) == (2, [
        f"clickstream: error: invalid YAML in config {config}, line 3, column 35: while parsing a flow mapping, "
        "expected ',' or '}', but got ':'",
        "      quarantine_rate: {warn: 0.1 fail: 0.2}",
        "                                      ^"])


def test_a_hostile_line_of_detail_is_escaped(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("engine: duckdb\n\x1b[31m: [\n")
    done = clickstream("run", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 2
    assert "\x1b" not in done.stderr and all(line.startswith(("clickstream: error: ", "    "))
                                             for line in done.stderr.splitlines())


def test_verbose_adds_the_traceback_after_the_same_line(corrupt_gold, tmp_path):
    data, bad = corrupt_gold
    done = clickstream("analytics", "--verbose", "--data-dir", str(data), cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("clickstream: error:"))
    assert re.fullmatch(UNEXPECTED.format(path=re.escape(str(bad))), lines[start]), lines[start]
    traceback = lines.index("Traceback (most recent call last):")
    assert [line[:12] for line in lines[start + 1:traceback]] == ["    LINE 1: ", "            "]  # the details
    assert [line for line in lines[traceback + 1:] if line.startswith("_duckdb.")] == [
        f"_duckdb.InvalidInputException: Invalid Input Error: No magic bytes found at end of file '{bad}'"]


# ---- bad arguments: refused by the parser, exit 2, before anything is read


@pytest.mark.parametrize("value", ["0", "-1", "1.5"])
def test_sql_max_rows_below_one_is_refused(tmp_path, capsys, value):
    from clickstream.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["sql", "--data-dir", str(tmp_path), "--max-rows", value, "select 1 union all select 2"])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-1] == (f"clickstream sql: error: argument --max-rows: expected a whole number, 1 or more, "
                                    f"got '{value}'")


# ---- Ctrl-C: one line, exit 130, and the next run recovers


@pytest.mark.parametrize("moment", ["job silver started", "job gold started", "job report started"])
def test_ctrl_c_is_one_line_exit_130_and_the_next_run_recovers(tmp_path, moment):
    data = tmp_path / "data"
    generate(data / "raw", rows=20_000, seed=3)
    run = subprocess.Popen([sys.executable, "-m", "clickstream", "run", "--data-dir", str(data)], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    before = []
    for line in run.stderr:  # the progress lines, until the moment to interrupt
        before.append(line)
        if moment in line:
            run.send_signal(signal.SIGINT)
            break
    stdout, after = run.communicate(timeout=300)
    assert moment in before[-1]
    assert (run.returncode, stdout, the_failure(after)) == (130, "", "clickstream: interrupted; the next run recovers")
    assert (data / "_state" / "writer.lock").read_text() == ""  # released, not left by a killed holder
    assert not (data / "_staging").exists()
    again = clickstream("run", "--quiet", "--data-dir", str(data), cwd=tmp_path)
    assert (again.returncode, again.stderr) == (0, "")
    verified = clickstream("verify", "--data-dir", str(data), cwd=tmp_path)
    assert (verified.returncode, verified.stdout.splitlines()[-1]) == (
        0, "ledger: 1 file(s), 20,000 data line(s), every one accounted for once")


def test_ctrl_c_reported_in_an_engines_own_words_is_still_an_interruption(tmp_path, monkeypatch, capsys):
    from clickstream import cli

    def verify_interrupted_inside_a_library(config, wait_seconds):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:  # a library that turns it into an error of its own
            raise RuntimeError("reading the table failed: KeyboardInterrupt") from None

    monkeypatch.setattr(cli, "_verify", verify_interrupted_inside_a_library)
    before = signal.getsignal(signal.SIGINT)  # Python's own, or a Spark session's that an earlier test started
    assert callable(before)
    assert cli.main(["verify", "--data-dir", str(tmp_path / "data")]) == 130
    assert capsys.readouterr().err == "clickstream: interrupted; the next run recovers\n"
    assert signal.getsignal(signal.SIGINT) is before  # the handler in place before is back


def test_ctrl_c_is_still_noted_under_a_handler_a_spark_session_put_in_place(tmp_path, monkeypatch, capsys):
    # PySpark's SparkContext puts its own SIGINT handler in place (it cancels the jobs, then raises
    # KeyboardInterrupt): the note must not depend on Python's own handler being the one in place
    from clickstream import cli

    cancelled = []

    def sparks_handler(signum, frame):
        cancelled.append(signum)
        raise KeyboardInterrupt

    def verify_interrupted_inside_a_library(config, wait_seconds):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            raise RuntimeError("An error occurred while calling o123.parquet") from None

    monkeypatch.setattr(cli, "_verify", verify_interrupted_inside_a_library)
    previous = signal.signal(signal.SIGINT, sparks_handler)
    try:
        assert cli.main(["verify", "--data-dir", str(tmp_path / "data")]) == 130
        assert signal.getsignal(signal.SIGINT) is sparks_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert capsys.readouterr().err == "clickstream: interrupted; the next run recovers\n"
    assert cancelled == [signal.SIGINT]  # the handler in place still did its part


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
