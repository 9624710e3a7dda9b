"""Where a run's time goes: each step's wall and CPU seconds in the quality report's last_run, in the log file,
and from `clickstream history --profile`."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time

import pytest

from clickstream import analytics, gold
from clickstream.cli import main
from clickstream.config import Config
from clickstream.generate import generate
from clickstream.profile import Profile

BUSY = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass"


def test_a_step_counts_the_cpu_of_a_child_process():
    profile = Profile()
    with profile.step("child", "test"):
        subprocess.run([sys.executable, "-c", BUSY], check=True)
    (step,) = profile.record()
    assert (step["layer"], step["step"]) == ("test", "child")
    assert step["cpu_seconds"] >= 0.4 and step["wall_seconds"] >= 0.4, step


def test_a_step_counts_what_the_engine_runs_beside_the_process():
    burnt = iter([10.0, 12.5])  # the engine's other process, read at the start and at the end of the step
    profile = Profile(outside_cpu=lambda: next(burnt))
    with profile.step("query", "test"):
        pass
    (step,) = profile.record()
    assert 2.5 <= step["cpu_seconds"] < 2.6, step


def test_a_step_inside_another_is_part_of_it_and_a_failing_step_is_kept():
    profile = Profile()
    with pytest.raises(ValueError):
        with profile.step("outer", "test"):
            with profile.step("inner", "test"):
                raise ValueError("stop")
    assert [(s["layer"], s["step"]) for s in profile.record()] == [("test", "outer")]


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    """A small run through the command line: its record, how long it took, what it printed."""
    data = tmp_path_factory.mktemp("profile") / "data"
    generate(data / "raw", rows=2000, seed=5)
    capture = tmp_path_factory.mktemp("terminal") / "stderr.txt"
    started = time.perf_counter()
    with capture.open("w") as stderr:
        done = subprocess.run([sys.executable, "-m", "clickstream", "run", "--verbose", "--data-dir", str(data)],
                              stderr=stderr, stdout=subprocess.PIPE, text=True, timeout=600)
    wall = time.perf_counter() - started
    assert done.returncode == 0, capture.read_text()
    (record,) = [json.loads(p.read_text()) for p in (data / "reports" / "history").glob("quality_*.json")]
    return data, record, wall, capture.read_text()


def test_the_profile_of_a_run_names_every_model_and_query_with_times_within_the_run(profiled):
    data, record, wall, _ = profiled
    steps = record["profile"]
    named = {(s["layer"], s["step"]) for s in steps}
    for model in gold.models():
        assert ("gold", model["name"]) in named
    for query in analytics.queries(config=Config()):
        assert ("analytics", query["name"]) in named
    for step in ("data tests", ):
        assert ("gold", step) in named
    for layer, step in [("bronze", "write"), ("silver", "silver_typed"), ("silver", "silver_repeats"),
                        *(("silver", f"write {table}") for table in ("silver", "quarantine", "duplicates")),
                        ("run", "quality report"), ("run", "warehouse"), ("report", "html report")]:
        assert (layer, step) in named
    assert all(set(s) == {"layer", "step", "wall_seconds", "cpu_seconds"} for s in steps)
    assert all(s["wall_seconds"] >= 0 and s["cpu_seconds"] >= 0 for s in steps)
    assert 0 < sum(s["wall_seconds"] for s in steps) <= wall
    # the report's last_run holds the same, whole profile
    report = json.loads((data / "reports" / "quality_report.json").read_text())
    assert report["last_run"]["profile"] == steps


def test_each_step_has_a_line_in_the_log_files_and_none_on_the_terminal(profiled):
    data, record, _, terminal = profiled
    logged = "".join(path.read_text() for path in (data / "logs").glob("*.log"))
    for step in record["profile"]:
        if step["layer"] != "run":  # after the layers' log files are closed: in the report only
            assert f"profile: {step['layer']} {step['step']}: {step['wall_seconds']:.3f} s wall" in logged, step
    assert "profile:" not in terminal


def test_history_profile_prints_the_longest_steps_of_the_latest_run(profiled, capsys):
    data, record, _, _ = profiled
    longest = sorted(record["profile"], key=lambda s: -s["wall_seconds"])
    assert main(["history", "--data-dir", str(data), "--profile", "--format", "csv", "--last", "3"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows == [["layer", "step", "wall_seconds", "cpu_seconds"],
                    *([s["layer"], s["step"], str(s["wall_seconds"]), str(s["cpu_seconds"])] for s in longest[:3])]
    assert main(["history", "--data-dir", str(data), "--profile", record["run_id"]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"run {record['run_id']}: {len(record['profile'])} steps, ")
    assert lines[0].endswith("; the 10 longest:") and len(lines) == 1 + 2 + 10
    assert lines[3].split()[:2] == [longest[0]["layer"], *longest[0]["step"].split()[:1]]


def test_history_profile_of_an_unknown_run_says_so(profiled, capsys):
    data = profiled[0]
    assert main(["history", "--data-dir", str(data), "--profile", "nope"]) == 1
    assert capsys.readouterr().err.startswith("clickstream: error: no profile recorded for run 'nope' under ")


def test_a_failed_run_records_its_profile_to_the_end(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "raw").mkdir(parents=True)
    (data / "raw" / "x.csv").write_text("a,b\n1,2\n")  # refused: the run fails with nothing ingested
    assert main(["run", "--quiet", "--data-dir", str(data)]) == 1
    last_run = json.loads((data / "reports" / "quality_report.json").read_text())["last_run"]
    assert last_run["outcome"] == "failed"
    assert [(s["layer"], s["step"]) for s in last_run["profile"]] == [
        ("bronze", "scan x.csv"), ("run", "quality report"), ("run", "clear staging"), ("run", "close engine"),
        ("run", "warehouse")]
