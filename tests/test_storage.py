"""Atomic publishing: a crash at any point leaves the last good table or batch set readable."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from clickstream import storage
from clickstream.context import PipelineError, new_run_id


def make_table(path, content):
    path.mkdir(parents=True)
    (path / "part-00000.parquet").write_text(content)


def test_publish_replaces_the_table_and_leaves_no_previous_copy(tmp_path):
    make_table(tmp_path / "gold" / "t", "old")
    make_table(tmp_path / "staged", "new")
    storage.publish_table(tmp_path / "staged", tmp_path / "gold" / "t")
    assert (tmp_path / "gold" / "t" / "part-00000.parquet").read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "gold").iterdir()) == ["t"]


def test_a_crash_between_the_two_renames_is_recovered(tmp_path):
    # the state a crash leaves after `dest -> dest.previous` and before `staged -> dest`
    make_table(tmp_path / "gold" / "t.previous", "last good")
    storage.recover_tables(tmp_path / "gold")
    assert (tmp_path / "gold" / "t" / "part-00000.parquet").read_text() == "last good"
    assert not (tmp_path / "gold" / "t.previous").exists()


def test_a_crash_after_publishing_drops_the_stale_previous_copy(tmp_path):
    make_table(tmp_path / "gold" / "t", "new")
    make_table(tmp_path / "gold" / "t.previous", "old")
    storage.recover_tables(tmp_path / "gold")
    assert [p.name for p in (tmp_path / "gold").iterdir()] == ["t"]
    assert (tmp_path / "gold" / "t" / "part-00000.parquet").read_text() == "new"


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


def test_state_files_are_written_whole_and_a_corrupt_one_is_named(tmp_path):
    path = tmp_path / "_state" / "manifest.json"
    storage.write_json(path, {"files": {"a.csv": 1}})
    assert json.loads(path.read_text()) == {"files": {"a.csv": 1}}
    assert [p.name for p in path.parent.iterdir()] == ["manifest.json"]
    path.write_text('{"files": ')
    with pytest.raises(PipelineError, match=r"state file .*manifest\.json is not valid JSON"):
        storage.read_json(path, {})


def test_run_ids_sort_by_start_time_even_within_one_second_and_never_repeat():
    start = datetime(2026, 1, 2, 3, 4, 5, 999_000)
    times = [start + timedelta(microseconds=step) for step in (0, 1, 2, 999, 1_000, 1_500_000)]
    ids = [new_run_id(t) for t in reversed(times)]
    assert sorted(ids) == ids[::-1]
    assert len({new_run_id(start) for _ in range(100)}) == 100
    assert all("-" not in run_id for run_id in ids)
