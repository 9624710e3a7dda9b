"""What a person sees and keeps: the end summary, --quiet, --version, progress on a terminal, the quality report
as the data is now, `clickstream history`, and the log files (text or JSON lines) under the data directory."""
from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from clickstream import __version__
from clickstream.cli import main
from clickstream.generate import generate


@pytest.fixture(scope="module")
def twice(tmp_path_factory) -> tuple[Path, dict, dict, str]:
    """A data directory run twice on the same input: the reports after each run, and the second run's stdout."""
    root = tmp_path_factory.mktemp("terminal")
    data = root / "data"
    generate(data / "raw", rows=2000, seed=8)
    assert main(["run", "--quiet", "--data-dir", str(data)]) == 0
    first = json.loads((data / "reports" / "quality_report.json").read_text())
    done = subprocess.run([sys.executable, "-m", "clickstream", "run", "--data-dir", str(data)], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    second = json.loads((data / "reports" / "quality_report.json").read_text())
    return data, first, second, done.stdout


def test_a_run_with_nothing_new_changes_only_last_run(twice):
    _, first, second, _ = twice
    assert {k: v for k, v in first.items() if k != "last_run"} == {k: v for k, v in second.items() if k != "last_run"}
    assert first["last_run"]["run_id"] != second["last_run"]["run_id"]
    # and that state is the data's: the whole ledger, the reasons, the tests of the gold build
    assert second["silver"]["totals"]["bronze_rows"] == 2000
    assert [row["source_file"] for row in second["silver"]["ledger"]] == ["clickstream_8_001.csv"]
    assert len(second["gold"]["tests"]) == 45
    assert second["last_run"]["silver"] == {"bronze_batches": [], "ledger": []}
    assert second["last_run"]["outcome"] == "no new data"


def test_the_summary_gives_the_answers_the_quality_and_where_things_are(twice):
    data, _, second, out = twice
    totals = second["silver"]["totals"]
    lines = out.split("\n")
    assert lines[0] == "" and lines[1].startswith("Answers (2024-")
    assert re.fullmatch(r"  events      [\d,]+    users [\d,]+    visits [\d,]+", lines[2])
    assert (f"  ledger      2,000 bronze rows = {totals['silver_rows']:,} silver + {totals['quarantine_rows']:,} "
            f"quarantined + {totals['duplicate_rows']:,} duplicates + 0 re-delivered") in lines
    assert "  gold tests  45 passed, 0 failed" in lines
    conversion = next(line for line in lines if line.startswith("  conversion  "))
    assert re.fullmatch(r"  conversion  [\d.]+% of the users reaching product_view reached purchase in order within 7d "
                        r"\(users still in progress left out\)", conversion), conversion
    assert f"  report      {data / 'analytics' / 'report.html'}" in lines
    assert f"  warehouse   {data / 'warehouse.duckdb'}" in lines
    assert f"  logs        {data / 'logs'}" in lines
    assert "Top products" not in out  # result tables only with --show-results


def test_the_printed_query_command_works_as_printed_without_the_venv_on_path(twice, tmp_path):
    # After `make run` the program is .venv/bin/clickstream and the shell does not find `clickstream`: the hint must
    # name the program the way it was started, and the paths must not depend on where the user stands.
    data = tmp_path / "data"
    shutil.copytree(twice[0], data)
    program = Path(sys.executable).with_name("clickstream")
    if not program.is_file():
        pytest.skip(f"no console script beside {sys.executable}")
    cwd = data.parent
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if Path(p).resolve() != program.parent.resolve())
    done = subprocess.run([str(program), "gold", "--data-dir", "data"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    hint = next(line for line in done.stdout.split("\n") if line.startswith("Query the tables: "))
    command = hint.removeprefix("Query the tables: ")
    assert not command.startswith("clickstream ")  # the shell would answer "command not found"
    outputs = [line.split(None, 1)[1] for line in done.stdout.split("\n")
               if re.match(r"  (bronze|silver|quarantine|gold|analytics|markdown|quality|warehouse|logs) {2,}\S", line)]
    assert outputs and all(Path(path).is_absolute() for path in outputs), outputs
    shown = subprocess.run(["bash", "-c", command.replace('select * from daily_activity',
                                                          'select count(*) as n from dim_event_types')],
                           cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^\s*\d+\s*$", shown.stdout, re.M), shown.stdout


def test_history_lists_every_run(twice, capsys):
    data = twice[0]
    assert main(["history", "--data-dir", str(data), "--format", "csv"]) == 0
    header, first, second = csv.reader(io.StringIO(capsys.readouterr().out))
    costs = ["cpu_seconds", "peak_rss_bytes", "bytes_read", "bytes_written"]
    assert header == ["run_id", "started_at", "seconds", "engine", "layers", "rows_in", "rows_out", *costs,
                      "estimated_run_cost", "outcome", "gates"]
    silver_rows = twice[1]["silver"]["totals"]["silver_rows"]
    for listed, report in ((first, twice[1]), (second, twice[2])):
        assert listed[7:12] == [str(report["last_run"]["cost"][c]) for c in costs] + [""]  # no price, no estimate
    assert first[3:7] + first[12:] == [
        "duckdb", "bronze,silver,gold,analytics", "2000", str(silver_rows), "succeeded",
        "quarantine_rate ok; duplicate_rate ok; redelivered_rate ok; gold tests 45/45 passed"]
    assert second[3:7] + second[12:] == ["duckdb", "bronze,silver,gold,analytics", "0", "0", "no new data",
                                         "-"]  # nothing new
    assert first[0] < second[0] and first[0] == twice[1]["last_run"]["run_id"]


def test_quiet_prints_nothing_and_version_names_the_release(tmp_path, capsys):
    data = tmp_path / "data"
    generate(data / "raw", rows=200, seed=2)
    capsys.readouterr()
    assert main(["bronze", "--quiet", "--data-dir", str(data)]) == 0
    assert capsys.readouterr() == ("", "")
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert (stop.value.code, capsys.readouterr().out) == (0, f"clickstream {__version__}\n")


def test_json_logs_are_one_object_per_line_under_the_data_directory(tmp_path):
    data = tmp_path / "data"
    generate(data / "raw", rows=200, seed=2)
    config = tmp_path / "config.yaml"
    config.write_text("logs:\n  format: json\n")
    assert main(["bronze", "--quiet", "--config", str(config), "--data-dir", str(data)]) == 0
    (log_file,) = (data / "logs").glob("bronze_*.jsonl")
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert {tuple(sorted(r)) for r in records} == {("job", "level", "logger", "message", "time")}
    assert records[0]["message"].startswith("job bronze started") and records[-1]["message"].startswith(
        "job bronze finished")


def on_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """The command's output as a terminal receives it (stdout and stderr on one pseudo-terminal)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "clickstream", *args], cwd=cwd, stdin=follower,
                               stdout=follower, stderr=follower, env={**os.environ, **env, "COLUMNS": "120"})
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the command closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=120) == 0
    os.close(leader)
    return b"".join(chunks).decode()


def test_on_a_terminal_each_layer_is_one_progress_line_without_colour_under_no_color(tmp_path):
    data = tmp_path / "data"
    generate(data / "raw", rows=500, seed=4)
    shown = on_a_terminal(["run", "--data-dir", str(data)], tmp_path, {"NO_COLOR": "1", "TERM": "xterm"})
    assert " INFO " not in shown  # the log lines go to the files; the terminal gets the progress
    for layer in ("bronze", "silver", "gold", "analytics", "report"):
        assert re.search(rf"done {layer} +\d:\d\d:\d\d", shown), layer
    assert re.findall(r"\x1b\[[0-9;]*m", shown) in ([], ["\x1b[0m"] * len(re.findall(r"\x1b\[[0-9;]*m", shown)))
    assert "Answers (" in shown and "Layer times:" in shown


def test_the_command_reference_lists_every_option_of_every_command():
    import argparse

    from clickstream.cli import build_parser

    reference = (Path(__file__).resolve().parents[1] / "docs" / "CLI.md").read_text(encoding="utf-8")
    section = reference[reference.index("# The command line"):reference.index("`run` runs every layer.")]
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = [f"{name} {option}" for name, command in commands.choices.items() for action in command._actions
               for option in action.option_strings if option not in ("-h", "--help") and option not in section]
    missing += [f"clickstream {name}" for name in commands.choices if f"clickstream {name}" not in section
                and f"| {name}" not in section]
    assert missing == []
    assert "--version" in section


@pytest.mark.parametrize(("row", "note"), [
    ((None, 3, 3), "This feed carries no prices: none of its 3 orders has an amount, so revenue, average order value, "
                   "spend and the RFM monetary score are unknown (shown as -), not 0."),
    ((Decimal("10.00"), 1234, 2), "2 of the 1,234 orders carry no amount: revenue and spend sum the known amounts, "
                                  "and the average order value is over the orders that have one."),
    ((Decimal("10.00"), 3, 0), None),
    ((Decimal("0.00"), 0, 0), None),  # no order at all: nothing to say about prices
])
def test_reports_say_when_orders_carry_no_amount(row, note):
    from clickstream.analytics import QueryResult
    from clickstream.report.escape import escape_markdown
    from clickstream.report.tables import markdown_report, prices_note

    columns = ["total_revenue", "total_orders", "orders_without_amount"]
    assert prices_note(dict(zip(columns, row))) == note
    report = markdown_report([QueryResult("revenue_metrics", "5. Revenue", "one row", columns, [row], 1)], "r1")
    assert report.split("\n\n")[2] == (f"**{escape_markdown(note)}**" if note else "## 5. Revenue")
