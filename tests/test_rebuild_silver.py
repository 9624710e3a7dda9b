"""Silver rebuilt from bronze alone (`--rebuild-silver`, or a source's mapping changed): the raw files may be gone,
silver, quarantine and duplicates come out as a first build would make them, and the whole ledger balances."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from helpers import make_config

from clickstream.pipeline import run_layers, verify

sys.path.insert(0, str(Path(__file__).parent / "engines"))
from engine_support import read_table, table_differences  # noqa: E402

HEADER = "UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"
FIRST = ("1,s1,2024-01-01 10:00:00,page_view,,,\n"
         "1,s1,2024-01-01 10:00:00,page_view,,,\n"  # a duplicate
         "2,s2,2024-01-01 11:00:00,view,p1,,\n"
         ",s3,2024-01-01 12:00:00,click,,,\n")  # no user: quarantined
SECOND = "3,s4,2024-01-02 10:00:00,view,p2,,\n1,s1,2024-01-01 10:00:00,page_view,,,\n"  # the latter re-delivered
RUN_COLUMNS = ("batch_id", "ingestion_timestamp", "ingestion_date")


def tables(data: Path) -> dict:
    return {name: read_table(data / name) for name in ("silver", "quarantine", "duplicates", "gold/fct_events")}


def two_batches(tmp_path: Path, **overrides):
    config = make_config(tmp_path, **overrides)
    raw = config.paths.data_dir / "raw"
    raw.mkdir(parents=True)
    (raw / "a.csv").write_text(HEADER + FIRST)
    run_layers(config, ("bronze", "silver", "gold"))
    (raw / "a.csv").write_text(HEADER + FIRST + "4,s5,2024-01-03 10:00:00,page_view,,,\n")  # appended
    (raw / "b.csv").write_text(HEADER + SECOND)
    run_layers(config, ("bronze", "silver", "gold"))
    return config


def test_rebuilding_silver_from_bronze_alone_gives_what_a_first_build_gives(tmp_path):
    config = two_batches(tmp_path / "rebuilt")
    data = config.paths.data_dir
    for file in (data / "raw").iterdir():
        file.unlink()  # bronze is all there is now
    run_layers(config, ("bronze", "silver", "gold"), rebuild_silver=True)
    once = make_config(tmp_path / "once")
    (once.paths.data_dir / "raw").mkdir(parents=True)
    (once.paths.data_dir / "raw" / "a.csv").write_text(HEADER + FIRST + "4,s5,2024-01-03 10:00:00,page_view,,,\n")
    (once.paths.data_dir / "raw" / "b.csv").write_text(HEADER + SECOND)
    run_layers(once, ("bronze", "silver", "gold"))
    rebuilt, built_once = tables(data), tables(once.paths.data_dir)
    for name in rebuilt:
        # the copy of user 1's event in b.csv: re-delivered before, a duplicate within the one rebuilding batch
        exclude = RUN_COLUMNS + (("duplicate_kind",) if name == "duplicates" else ())
        assert table_differences(built_once[name], rebuilt[name], exclude=exclude) == [], name
    state = json.loads((data / "_state" / "silver_state.json").read_text())
    assert len(state["runs"]) == 1 and sorted(state["mappings"]) == ["clickstream"]
    assert sorted(p.name.split("-")[0] for p in (data / "silver").rglob("*.parquet")) == list(state["runs"])
    assert [(f["source_file"], f["bronze_rows"], f["balanced"]) for f in verify(config)] == [
        ("a.csv", 5, True), ("b.csv", 2, True)]


def test_a_changed_mapping_rebuilds_silver_and_says_so_in_one_line(tmp_path, caplog):
    two_batches(tmp_path)
    remapped = make_config(tmp_path, sources=[{"name": "clickstream", "event_types": {"view": "product_view"}}])
    with caplog.at_level(logging.WARNING, logger="clickstream.silver"):
        run_layers(remapped, ("bronze", "silver"))
    assert [r.getMessage() for r in caplog.records
            if r.name == "clickstream.silver" and r.levelno >= logging.WARNING] == [
        "silver: rebuilding silver, quarantine and duplicates from bronze's 2 batch(es): the columns, attributes, "
        "event_types, identity_columns mapping of source(s) 'clickstream' changed since silver was built"]
    silver = read_table(remapped.paths.data_dir / "silver").to_pylist()
    assert sorted((r["user_id"], r["event_type"]) for r in silver) == [
        ("1", "page_view"), ("2", "product_view"), ("3", "product_view"), ("4", "page_view")]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clickstream.silver"):
        run_layers(remapped, ("bronze", "silver"))  # the same mapping again: nothing to do
    assert [r for r in caplog.records if r.name == "clickstream.silver" and r.levelno >= logging.WARNING] == []
    assert all(f["balanced"] for f in verify(remapped))

