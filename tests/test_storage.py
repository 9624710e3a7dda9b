"""Atomic publishing: a crash at any point leaves the last good table or batch set readable."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from clickstream import storage
from clickstream.cli import main
from clickstream.context import PipelineError, new_run_id
from clickstream.generate import generate


def make_table(path, content):
    path.mkdir(parents=True)
    (path / "part-00000.parquet").write_text(content)


def tree(root):
    """Every path under `root` with the content of each file, to compare whole directories."""
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None for p in root.rglob("*")}


def test_publish_swaps_in_one_step_where_the_system_can(tmp_path):
    if storage._renameat2() is None:
        pytest.skip("no renameat2 here (Linux with glibc 2.28 or later has it)")
    make_table(tmp_path / "gold", "old")
    make_table(tmp_path / "_staging" / "gold-1", "new")
    assert storage.publish_table(tmp_path / "_staging" / "gold-1", tmp_path / "gold") == "exchange"
    assert tree(tmp_path) == {"gold": None, "gold/part-00000.parquet": b"new", "_staging": None}


def test_exchange_swaps_two_directories_in_place(tmp_path):
    if storage._renameat2() is None:
        pytest.skip("no renameat2 here (Linux with glibc 2.28 or later has it)")
    make_table(tmp_path / "a", "in a")
    make_table(tmp_path / "b", "in b")
    inodes = {(tmp_path / name).stat().st_ino for name in "ab"}
    assert storage.exchange_paths(tmp_path / "a", tmp_path / "b") is True
    assert tree(tmp_path) == {"a": None, "a/part-00000.parquet": b"in b", "b": None, "b/part-00000.parquet": b"in a"}
    assert {(tmp_path / name).stat().st_ino for name in "ab"} == inodes


def test_publish_falls_back_to_two_renames(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "EXCHANGE", False)
    make_table(tmp_path / "gold", "old")
    make_table(tmp_path / "_staging" / "gold-1", "new")
    assert storage.publish_table(tmp_path / "_staging" / "gold-1", tmp_path / "gold") == "renames"
    assert tree(tmp_path) == {"gold": None, "gold/part-00000.parquet": b"new", "_staging": None}


def test_a_first_publish_is_one_rename(tmp_path):
    make_table(tmp_path / "_staging" / "gold-1", "new")
    assert storage.publish_table(tmp_path / "_staging" / "gold-1", tmp_path / "gold") == "rename"
    assert tree(tmp_path) == {"gold": None, "gold/part-00000.parquet": b"new", "_staging": None}


# Stats the table's file in a loop until told to stop; prints how often it was missing and how often it looked.
READER = """
import os, sys
path, stop = sys.argv[1], sys.argv[2]
print("ready", flush=True)
missing = looks = 0
while not os.path.exists(stop):
    looks += 1
    if not os.path.exists(path):
        missing += 1
print(missing, looks)
"""


def test_a_reader_always_finds_the_table_while_it_is_replaced(tmp_path):
    if storage._renameat2() is None:
        pytest.skip("no renameat2 here: elsewhere a reader can miss the table between the two renames")
    make_table(tmp_path / "gold", "0")
    reader = subprocess.Popen([sys.executable, "-c", READER, str(tmp_path / "gold" / "part-00000.parquet"),
                               str(tmp_path / "stop")], stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline() == "ready\n"
    for n in range(1, 301):
        make_table(tmp_path / "_staging" / f"gold-{n}", str(n))
        storage.publish_table(tmp_path / "_staging" / f"gold-{n}", tmp_path / "gold")
    (tmp_path / "stop").touch()
    missing, looks = map(int, reader.communicate(timeout=30)[0].split())
    assert missing == 0, f"the table was missing at {missing} of {looks} looks"
    assert (tmp_path / "gold" / "part-00000.parquet").read_text() == "300"


def test_recovery_finds_every_leftover_beside_the_published_tables(tmp_path):
    data = tmp_path / "data"
    make_table(data / "gold.previous", "last good gold")  # a crash between the two renames
    make_table(data / "analytics", "new analytics")
    make_table(data / "analytics.previous", "old analytics")  # a crash after the second rename
    make_table(data / "extra" / "t.previous", "last good t")  # any other table published by publish_table
    make_table(data / "_staging" / "gold-0123456789ab", "half written")
    (data / "_state").mkdir()
    (data / "_state" / "silver_state.json").write_text("{}")
    (data / "_state" / ".silver_state.json.0123abcd.tmp").write_text('{"runs": ')
    (data / "reports" / "history").mkdir(parents=True)
    (data / "reports" / "history" / ".quality_x.json.89abcdef.tmp").write_text("")
    make_table(data / "raw" / "exports.previous", "input")  # raw input is never touched
    (data / "raw" / ".a.csv.0123abcd.tmp").write_text("input")
    assert storage.recover(data) == [
        f"removed {data / '_staging'} (tables an interrupted run was writing)",
        f"removed {data / 'analytics.previous'} (left by a crash after {data / 'analytics'} was replaced)",
        f"put back {data / 'gold'} from {data / 'gold.previous'} (a crash interrupted its replacement)",
        f"removed {data / '_state' / '.silver_state.json.0123abcd.tmp'} (a state file an interrupted run was writing)",
        f"put back {data / 'extra' / 't'} from {data / 'extra' / 't.previous'} (a crash interrupted its replacement)",
        f"removed {data / 'reports' / 'history' / '.quality_x.json.89abcdef.tmp'} (a state file an interrupted run "
        f"was writing)"]
    assert tree(data) == {
        "gold": None, "gold/part-00000.parquet": b"last good gold",
        "analytics": None, "analytics/part-00000.parquet": b"new analytics",
        "extra": None, "extra/t": None, "extra/t/part-00000.parquet": b"last good t",
        "_state": None, "_state/silver_state.json": b"{}", "reports": None, "reports/history": None,
        "raw": None, "raw/exports.previous": None, "raw/exports.previous/part-00000.parquet": b"input",
        "raw/.a.csv.0123abcd.tmp": b"input"}
    assert storage.recover(data) == []


def test_batch_files_are_named_after_their_batch_and_orphans_removed(tmp_path):
    staged = tmp_path / "staged"
    (staged / "ingestion_date=2024-01-01").mkdir(parents=True)
    (staged / "ingestion_date=2024-01-01" / "data_0.parquet").write_text("x")
    moved = storage.publish_batch(staged, tmp_path / "silver", "b2")
    assert [p.relative_to(tmp_path).as_posix() for p in moved] == ["silver/ingestion_date=2024-01-01/b2-data_0.parquet"]
    orphan = tmp_path / "silver" / "ingestion_date=2024-01-01" / "b3-data_0.parquet"
    orphan.write_text("from a run that crashed before recording its batch")
    assert storage.remove_orphan_batches(tmp_path / "silver", {"b2"}) == [orphan]
    assert storage.batch_files(tmp_path / "silver", {"b2"}) == moved


def test_only_the_batch_a_state_names_as_publishing_is_removed_and_an_unrecorded_one_is_refused(tmp_path):
    bronze = tmp_path / "bronze" / "ingestion_date=2024-01-01"
    bronze.mkdir(parents=True)
    files = {name: bronze / f"{name}-data_0.parquet" for name in ("b1", "b2", "b3")}
    for file in files.values():
        file.write_text("x")
    with pytest.raises(storage.UnrecordedBatches) as refused:
        storage.remove_interrupted_batch(tmp_path / "bronze", {"b1"}, publishing="b3")
    assert refused.value.batches == {"b2": [files["b2"]]}
    assert sorted(bronze.iterdir()) == sorted(files.values())  # nothing deleted
    assert storage.remove_interrupted_batch(tmp_path / "bronze", {"b1", "b2"}, publishing="b3") == [files["b3"]]
    assert storage.remove_interrupted_batch(tmp_path / "bronze", {"b1", "b2"}, publishing=None) == []
    assert sorted(bronze.iterdir()) == [files["b1"], files["b2"]]


def test_state_files_are_written_whole_and_a_corrupt_one_is_named(tmp_path):
    path = tmp_path / "_state" / "manifest.json"
    storage.write_json(path, {"files": {"a.csv": 1}})
    assert json.loads(path.read_text()) == {"files": {"a.csv": 1}}
    assert [p.name for p in path.parent.iterdir()] == ["manifest.json"]
    path.write_text('{"files": ')
    with pytest.raises(PipelineError, match=r"state file .*manifest\.json is not valid JSON"):
        storage.read_json(path, {})


def test_a_state_file_that_is_a_symbolic_link_is_replaced_not_written_through(tmp_path):
    target = tmp_path / "precious.json"
    target.write_text("{}\n")
    path = tmp_path / "_state" / "manifest.json"
    path.parent.mkdir()
    path.symlink_to(target)
    storage.write_json(path, {"files": {}})
    assert (path.is_symlink(), json.loads(path.read_text()), target.read_text()) == (False, {"files": {}}, "{}\n")


def test_a_link_planted_at_the_temporary_name_is_never_written_through(tmp_path, monkeypatch):
    target = tmp_path / "precious.txt"
    target.write_text("precious\n")
    path = tmp_path / "_state" / "manifest.json"
    path.parent.mkdir()
    monkeypatch.setattr(storage.uuid, "uuid4", lambda: type("Fixed", (), {"hex": "0123456789abcdef"})())
    (path.parent / ".manifest.json.01234567.tmp").symlink_to(target)
    with pytest.raises(FileExistsError):
        storage.write_json(path, {"files": {}})
    assert (target.read_text(), path.exists()) == ("precious\n", False)


def test_a_run_replaces_links_planted_at_its_state_and_report_paths_and_leaves_their_targets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    generate(tmp_path / "first", rows=300, seed=5)
    generate(tmp_path / "second", rows=200, seed=6)
    (tmp_path / "data" / "raw").mkdir(parents=True)
    shutil.copy(next((tmp_path / "first").glob("*.csv")), tmp_path / "data" / "raw" / "a.csv")
    assert main(["run", "--data-dir", "data", "--quiet"]) == 0
    planted = ["_state/bronze_manifest.json", "_state/silver_state.json", "reports/quality_report.json"]
    for number, name in enumerate(planted):  # each state file moved away, a link to it left in its place
        (tmp_path / "data" / name).rename(tmp_path / f"precious{number}.json")
        (tmp_path / "data" / name).symlink_to(tmp_path / f"precious{number}.json")
    before = [(tmp_path / f"precious{number}.json").read_bytes() for number in range(3)]
    shutil.copy(next((tmp_path / "second").glob("*.csv")), tmp_path / "data" / "raw" / "b.csv")
    assert main(["run", "--data-dir", "data", "--quiet"]) == 0
    assert [(tmp_path / "data" / name).is_symlink() for name in planted] == [False, False, False]
    assert [(tmp_path / f"precious{number}.json").read_bytes() for number in range(3)] == before
    report = json.loads((tmp_path / "data/reports/quality_report.json").read_text())
    assert sorted((f["path"], f["records"]) for f in report["bronze"]["files"]) == [("a.csv", 300), ("b.csv", 200)]


def test_run_ids_sort_by_start_time_even_within_one_second_and_never_repeat():
    start = datetime(2026, 1, 2, 3, 4, 5, 999_000)
    times = [start + timedelta(microseconds=step) for step in (0, 1, 2, 999, 1_000, 1_500_000)]
    ids = [new_run_id(t) for t in reversed(times)]
    assert sorted(ids) == ids[::-1]
    assert len({new_run_id(start) for _ in range(100)}) == 100
    assert all("-" not in run_id for run_id in ids)


def snapshot(data):
    """What a run leaves in `data`: every path, the rows of every Parquet and CSV file, the text of state files.

    Run records (the report, the build manifests, the history of quality reports) are compared by name only;
    the log files, named after the time, not at all.
    """
    seen = {}
    for path in sorted(data.rglob("*")):
        name = path.relative_to(data).as_posix()
        if name.startswith(("reports/history/", "logs/")):
            continue
        if path.suffix == ".parquet":
            seen[name] = sorted(duckdb.sql(f"select * from read_parquet('{path}')").fetchall(), key=repr)
        elif path.suffix == ".csv":
            seen[name] = [tuple(_number(field) for field in row) for row in csv.reader(path.open())]
        elif name.startswith("_state/"):
            seen[name] = path.read_text()
        else:
            seen[name] = None
    return seen


def _number(field):
    try:
        return float(field)
    except ValueError:
        return field


def approximately(snapshot_):
    # Sums of doubles differ in their last digits from one run to the next (the engine adds in parallel).
    return {name: [tuple(pytest.approx(v, rel=1e-9) if isinstance(v, float) else v for v in row) for row in rows]
            if isinstance(rows, list) else rows for name, rows in snapshot_.items()}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A data directory after one whole run on generated data, and its snapshot."""
    root = tmp_path_factory.mktemp("published")
    generate(root / "data" / "raw", rows=2000, seed=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # the run's logs go beside the data
        assert main(["run", "--data-dir", "data"]) == 0
    return root / "data", approximately(snapshot(root / "data"))


def gold_moved_aside(data):  # a crash between `gold -> gold.previous` and `staged -> gold`
    (data / "gold").rename(data / "gold.previous")
    return "put back data/gold from data/gold.previous (a crash interrupted its replacement)"


def analytics_moved_aside(data):
    (data / "analytics").rename(data / "analytics.previous")
    return "put back data/analytics from data/analytics.previous (a crash interrupted its replacement)"


def gold_previous_left_behind(data):  # a crash after `staged -> gold`, before `gold.previous` was deleted
    shutil.copytree(data / "gold", data / "gold.previous")
    (data / "gold.previous" / "fct_events" / "stale.parquet").write_text("not parquet: must not be read")
    return "removed data/gold.previous (left by a crash after data/gold was replaced)"


def state_file_half_written(data):
    (data / "_state" / ".silver_state.json.0123abcd.tmp").write_text('{"runs": {"2026')
    return "removed data/_state/.silver_state.json.0123abcd.tmp (a state file an interrupted run was writing)"


def report_half_written(data):
    (data / "reports" / ".quality_report.json.89abcdef.tmp").write_text('{"run_id": ')
    return "removed data/reports/.quality_report.json.89abcdef.tmp (a state file an interrupted run was writing)"


def staging_left_behind(data):
    staged = data / "_staging" / "gold-0123456789ab" / "fct_events"
    staged.mkdir(parents=True)
    (staged / "data_0.parquet").write_text("half written")
    return "removed data/_staging (tables an interrupted run was writing)"


@pytest.mark.parametrize("leftover, command", [
    (gold_moved_aside, "analytics"), (analytics_moved_aside, "run"), (gold_previous_left_behind, "run"),
    (state_file_half_written, "run"), (report_half_written, "run"), (staging_left_behind, "run")])
def test_the_next_run_clears_what_a_crash_left_and_its_outputs_are_right(published, tmp_path, monkeypatch,
                                                                          leftover, command):
    data, expected = published
    shutil.copytree(data, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    action = leftover(Path("data"))
    assert main([command, "--data-dir", "data"]) == 0
    assert snapshot(Path("data")) == expected
    assert json.loads(Path("data/reports/quality_report.json").read_text())["last_run"]["recovery"] == [action]
