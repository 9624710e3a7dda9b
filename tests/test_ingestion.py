"""Ingestion under hostile, messy, changed and concurrent input: nothing executed, no row lost, good data not blocked.

Each test attacks one promise through the real pipeline (DuckDB) on files written in tmp_path; the promises that
depend on an engine are attacked on both engines in tests/engines/test_ingestion_engines.py.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import yaml
from helpers import make_config

from clickstream import bronze, raw_files
from clickstream.cli import main
from clickstream.config import Config, load_config
from clickstream.context import PipelineError
from clickstream.csv_lines import MAX_RECORD_BYTES
from clickstream.engines import InputError
from clickstream.generate import generate
from clickstream.pipeline import run_layers, verify

sys.path.insert(0, str(Path(__file__).parent / "engines"))
from engine_support import read_table, table_differences  # noqa: E402

HEADER = "UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"


def write(raw: Path, name: str, body: str | bytes, header: str = HEADER) -> Path:
    path = raw / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode() + (body.encode() if isinstance(body, str) else body))
    return path


def events(user: int, count: int, day: str = "2024-01-01", event: str = "page_view") -> str:
    return "".join(f"{user},1,{day} 10:{i:02d}:00,{event},,,\n" for i in range(count))


def report(data: Path) -> dict:
    return json.loads((data / "reports" / "quality_report.json").read_text())["last_run"]


def rows(data: Path, table: str, columns: str = "*", where: str = "true") -> list[tuple]:
    files = sorted((data / table).rglob("*.parquet"))
    if not files:
        return []
    listing = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
    return sorted(duckdb.sql(f"select {columns} from read_parquet({listing}) where {where}").fetchall(), key=str)


def assert_balanced(config: Config) -> list[dict]:
    files = verify(config)
    assert [f["source_file"] for f in files if not f["balanced"]] == []
    return files


def assert_gold_equals_a_full_refresh(config: Config, tmp_path: Path) -> None:
    """The star as runs left it equals the star rebuilt from all of silver (a copy, rebuilt with --full-refresh)."""
    data = Path(config.paths.data_dir)
    copy = tmp_path / "full-refresh"
    shutil.copytree(data, copy, symlinks=True)
    run_layers(config.with_overrides(data_dir=copy), ("gold", "analytics"), full_refresh=True)
    for table in sorted(p.name for p in (data / "gold").iterdir() if p.is_dir() and not p.name.startswith("_")):
        assert table_differences(read_table(copy / "gold" / table), read_table(data / "gold" / table)) == [], table
    shutil.rmtree(copy)


# ---- nothing from data is executed; names are literal

def test_a_hostile_header_executes_nothing_and_a_quoted_header_is_an_ordinary_column(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path)
    raw = config.paths.data_dir / "raw"
    attack = '"x"" from (select 1 as x); copy (select 42 as pwned) to \'PWNED.csv\'; --"'
    write(raw, "attack.csv", "x,1,1,2024-01-01 10:00:00,page_view,,,\n", header=attack + "," + HEADER)
    write(raw, "price.csv", "2,1,2024-01-01 11:00:00,purchase,p1,3.50,purchase,3.50\n",
          header=HEADER.rstrip("\n") + ',Price "USD"\n')
    run_layers(config)
    assert list(tmp_path.rglob("PWNED*")) == []
    assert rows(config.paths.data_dir, "silver", "user_id, source_file, amount") == [
        ("1", "attack.csv", None), ("2", "price.csv", Decimal("3.50"))]


# ---- files that are not text CSV are refused alone, and retried once they change

@pytest.mark.parametrize(("name", "content", "reason"), [
    ("gzipped.csv", gzip.compress((HEADER + events(1, 2)).encode()),
     "gzip-compressed data; name the file .csv.gz to have it read decompressed"),
    ("utf16.csv", (HEADER + events(1, 2)).encode("utf-16"), "UTF-16 text; save it as UTF-8"),
    ("binary.csv", b"UserID,\x00\x01\x02\x00garbage", "binary content (NUL bytes): not text CSV"),
    ("workbook.csv", b"PK\x03\x04\x14\x00\x06\x00", "a ZIP archive (an Excel workbook?); export it as UTF-8 CSV"),
    ("latin1.csv", "Usér,ID\n".encode("latin-1") + b"1,2\n",
     "the header line is not UTF-8 text (save the file as UTF-8)"),
    ("broken.csv.gz", gzip.compress((HEADER + events(1, 200)).encode())[:-30],
     "not a readable gzip file (Compressed file ended before the end-of-stream marker was reached)"),
])
def test_a_file_that_is_not_text_csv_is_refused_alone_and_retried_when_it_changes(tmp_path, name, content, reason):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write(data / "raw", "good.csv", events(1, 3))
    (data / "raw" / name).write_bytes(content)
    run_layers(config)
    assert rows(data, "silver", "source_file") == [("good.csv",)] * 3
    assert report(data)["bronze"]["refused"] == [{"path": name, "reason": reason, "this_run": True}]
    run_layers(config)  # unchanged: not read again, still listed
    assert report(data)["bronze"]["refused"] == [{"path": name, "reason": reason, "this_run": False}]
    good = gzip.compress((HEADER + events(2, 2)).encode()) if name.endswith(".gz") else (HEADER + events(2, 2)).encode()
    (data / "raw" / name).write_bytes(good)
    run_layers(config)
    assert rows(data, "silver", "source_file", f"source_file = '{name}'") == [(name,)] * 2
    assert report(data)["bronze"]["refused"] == []
    assert_balanced(config)


def test_with_refused_files_set_to_fail_a_refused_file_stops_the_run_before_anything_is_ingested(tmp_path):
    config = make_config(tmp_path, quality={**Config().quality.model_dump(), "refused_files": "fail"})
    data = config.paths.data_dir
    write(data / "raw", "good.csv", events(1, 3))
    (data / "raw" / "utf16.csv").write_bytes(HEADER.encode("utf-16"))
    with pytest.raises(InputError, match=r"1 raw file\(s\) refused, e\.g\. utf16\.csv: UTF-16 text"):
        run_layers(config)
    assert not (data / "bronze").exists()


# ---- a config mistake never strands a file

SHOP = {"name": "shop", "glob": "shop_*.csv", "event_types": {"view": "page_view"},
        "columns": {"UserID": "user", "SessionID": None, "Timestamp": "when", "EventType": "action",
                    "ProductID": None, "Amount": None, "Outcome": None}}


def test_a_file_refused_under_a_wrong_column_mapping_fails_the_run_and_gets_in_once_the_config_is_fixed(
        tmp_path, capsys):
    data = tmp_path / "data"
    write(data / "raw", "shop_1.csv", "c-1,2024-01-01 10:00:00,view\nc-2,2024-01-01 10:05:00,view\n",
          header="customer,when,action\n")
    config_file = tmp_path / "config.yaml"
    settings = {"paths": {"data_dir": str(data), "logs_dir": str(tmp_path / "logs")}, "sources": [SHOP],
                "analytics": {"html_report": False}}
    config_file.write_text(yaml.safe_dump(settings))
    refusal = ("shop_1.csv: missing column(s) ['user'] required by source 'shop' (header has ['customer', 'when', "
               "'action'])")
    for attempt in range(2):  # refused, then not read again while nothing changed: the run fails both times
        assert main(["run", "--config", str(config_file)]) == 1
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"clickstream: error: 1 raw file(s) refused and silver holds no events: {refusal} (fix the file or its "
            f"source in the config: a refused file is tried again when either changes)")
        assert report(data)["outcome"] == "failed"
        assert report(data)["bronze"]["refused"] == [{"path": "shop_1.csv", "reason": refusal.split(": ", 1)[1],
                                                      "this_run": attempt == 0}]
    assert main(["verify", "--config", str(config_file)]) == 1
    shown = capsys.readouterr()
    assert shown.out.splitlines()[:2] == [
        "1 raw file(s) refused, not ingested (each is tried again when it or its source's config changes):",
        f"  {refusal}"]
    assert "nothing to verify (1 raw file(s) refused, listed above)" in shown.err

    settings["sources"] = [{**SHOP, "columns": {**SHOP["columns"], "UserID": "customer"}}]
    config_file.write_text(yaml.safe_dump(settings))
    assert main(["run", "--config", str(config_file)]) == 0
    assert rows(data, "silver", "user_id, event_type, source_name, source_file") == [
        ("c-1", "page_view", "shop", "shop_1.csv"), ("c-2", "page_view", "shop", "shop_1.csv")]
    assert report(data)["outcome"] == "succeeded" and report(data)["bronze"]["refused"] == []
    assert [(f["source_file"], f["bronze_rows"], f["silver_rows"]) for f in assert_balanced(load_config(config_file))
            ] == [("shop_1.csv", 2, 2)]


@pytest.mark.parametrize(("content", "wrong", "fixed", "reason"), [
    ("customer;when;action\nc-1;2024-01-01 10:00:00;view\n", {"csv": {"delimiter": ","}},
     {"csv": {"delimiter": ";"}},
     "the header has one column ('customer;when;action'), not the 3 source 'shop' maps; the line holds ';': set "
     "sources[].csv.delimiter to ';'?"),
    ("c-1,2024-01-01 10:00:00,view\n", {"csv": {"header": False}, "columns": {"UserID": 0, "Timestamp": 1,
                                                                             "EventType": 3}},
     {"csv": {"header": False}, "columns": {"UserID": 0, "Timestamp": 1, "EventType": 2}},
     "column position(s) 3 (EventType) mapped by source 'shop' are beyond the 3 field(s) of the first line "
     "(csv.header: false; positions count from 0)"),
])
def test_a_file_refused_for_its_format_or_positions_is_ingested_once_its_source_is_fixed(tmp_path, content, wrong,
                                                                                        fixed, reason):
    shop = {**SHOP, "columns": {"UserID": "customer", "Timestamp": "when", "EventType": "action"}}
    data = tmp_path / "data"
    (data / "raw").mkdir(parents=True)
    (data / "raw" / "shop_1.csv").write_text(content)
    with pytest.raises(InputError, match=r"^1 raw file\(s\) refused and bronze holds no events: shop_1\.csv: "):
        run_layers(make_config(tmp_path, sources=[{**shop, **wrong}]), ("bronze",))
    assert report(data)["bronze"]["refused"] == [{"path": "shop_1.csv", "reason": reason, "this_run": True}]
    config = make_config(tmp_path, sources=[{**shop, **fixed}])
    run_layers(config, ("bronze", "silver"))
    assert report(data)["bronze"]["refused"] == []
    assert rows(data, "silver", "user_id, event_ts, event_type, source_file") == [
        ("c-1", datetime(2024, 1, 1, 10, 0), "page_view", "shop_1.csv")]
    assert_balanced(config)


def test_a_run_where_one_of_two_files_is_refused_succeeds_with_a_warning_naming_it(tmp_path, capsys):
    data = tmp_path / "data"
    write(data / "raw", "good.csv", events(1, 2))
    write(data / "raw", "bad.csv", "1,2024-01-01 10:00:00\n", header="UserID,Timestamp\n")
    (tmp_path / "config.yaml").write_text("analytics: {html_report: false}\n")
    assert main(["run", "--config", str(tmp_path / "config.yaml"), "--data-dir", str(data)]) == 0
    assert ("WARNING bronze: refused bad.csv: missing column(s) ['Amount', 'EventType', 'Outcome', 'ProductID', "
            "'SessionID'] required by source 'clickstream'") in capsys.readouterr().err
    assert report(data)["outcome"] == "succeeded"
    assert rows(data, "silver", "source_file") == [("good.csv",)] * 2


# ---- what raw/ holds that no source reads is said

def test_files_no_source_matches_are_warned_about_and_reported(tmp_path, caplog):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write(data / "raw", "a.csv", events(1, 2))
    for name in ("EXPORT.CSV", "notes.txt", "sub/b.csv", ".hidden.csv", "landing.csv.tmp"):
        write(data / "raw", name, events(2, 1))
    run_layers(config, ("bronze",))
    assert report(data)["bronze"]["unmatched"] == ["EXPORT.CSV", "notes.txt", "sub/b.csv"]
    assert "3 file(s) in" in caplog.text and "'EXPORT.CSV', 'notes.txt', 'sub/b.csv'" in caplog.text


@pytest.mark.parametrize("kind", ["fifo", "dangling link", "link to /dev/zero"])
def test_what_is_not_a_regular_file_is_named_never_opened_and_the_rest_ingested(tmp_path, caplog, kind):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write(data / "raw", "a.csv", events(1, 2))
    odd = data / "raw" / "odd.csv"
    if kind == "fifo":
        os.mkfifo(odd)  # opening it would block the run until a writer comes
        what = "a named pipe (FIFO), not a regular file: never read"
    elif kind == "dangling link":
        odd.symlink_to(data / "raw" / "gone.csv")
        what = f"a symbolic link to nothing ({str(data / 'raw' / 'gone.csv')!r} does not exist)"
    else:
        odd.symlink_to("/dev/zero")
        what = "a device (through a symbolic link to '/dev/zero'), not a regular file: never read"
    run_layers(config)
    assert report(data)["bronze"]["not_regular"] == {"odd.csv": what}
    assert f"bronze: odd.csv is {what}" in caplog.text
    assert rows(data, "silver", "source_file, user_id") == [("a.csv", "1")] * 2
    assert_balanced(config)


def test_linked_folders_are_followed_each_once_and_a_loop_is_named_not_walked(tmp_path, caplog):
    """A folder linked from outside raw/ is read under the link; a link back up (a loop), a link to a folder under
    raw/ and a second link to a folder already walked are named and not followed: every file is listed once."""
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write(data / "raw", "a.csv", events(1, 1))
    write(data / "raw", "shop/b.csv", events(2, 1))
    write(tmp_path / "exports", "c.csv", events(3, 1))
    (data / "raw" / "exports").symlink_to(tmp_path / "exports")
    (data / "raw" / "exports_again").symlink_to(tmp_path / "exports")  # the same folder, walked already
    (data / "raw" / "shop" / "up").symlink_to(data / "raw")  # a loop: raw/shop/up/shop/up/...
    (data / "raw" / "shop_too").symlink_to(data / "raw" / "shop")  # listed where it is
    (tmp_path / "exports" / "self").symlink_to(tmp_path / "exports")  # a loop outside raw/
    write(tmp_path / "exports", "daily/d.csv", events(4, 1))
    (tmp_path / "exports" / "a_daily").symlink_to(tmp_path / "exports" / "daily")  # sorts first, read second
    listed, special = raw_files.list_files(data / "raw")
    assert listed == ["a.csv", "exports/c.csv", "exports/daily/d.csv", "shop/b.csv"]
    assert special == {name: raw_files.LINKED_AGAIN for name in
                       ("exports/a_daily", "exports/self", "exports_again", "shop/up", "shop_too")}
    run_layers(config, ("bronze",))
    assert f"bronze: shop/up is {raw_files.LINKED_AGAIN}" in caplog.text
    assert report(data)["bronze"]["not_regular"] == special


def test_a_glob_reaches_a_linked_folder_as_the_listing_does(tmp_path):
    """`**` matches the files of a folder linked into raw/ (pathlib's glob does not follow links for it), and
    nothing the listing leaves out: a link to a folder under raw/ adds no second copy of its files."""
    config = make_config(tmp_path, sources=[{"name": "clickstream", "glob": "**/*.csv"}])
    data = config.paths.data_dir
    write(data / "raw", "shop/b.csv", events(2, 1))
    write(tmp_path / "exports", "day/c.csv", events(3, 1))
    (data / "raw" / "exports").symlink_to(tmp_path / "exports")
    (data / "raw" / "shop_too").symlink_to(data / "raw" / "shop")
    run_layers(config, ("bronze",))
    assert sorted(f["path"] for f in report(data)["bronze"]["files"]) == ["exports/day/c.csv", "shop/b.csv"]
    assert report(data)["bronze"]["unmatched"] == []


# ---- a file gone or unreadable is refused alone

def test_a_file_removed_while_the_run_reads_raw_is_refused_alone_and_the_others_ingested(tmp_path, monkeypatch,
                                                                                          caplog):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write(data / "raw", "a.csv", events(1, 2))
    write(data / "raw", "gone.csv", events(2, 2))
    write(data / "raw", "z.csv", events(3, 1))
    match_sources = bronze.match_sources

    def listed_then_removed(*args):
        found = match_sources(*args)
        (data / "raw" / "gone.csv").unlink(missing_ok=True)  # removed between the listing and the read
        return found

    monkeypatch.setattr(bronze, "match_sources", listed_then_removed)
    run_layers(config)
    reason = "removed from raw/ while the run read it"
    assert report(data)["bronze"]["refused"] == [{"path": "gone.csv", "reason": reason, "this_run": True}]
    assert f"bronze: refused gone.csv: {reason}" in caplog.text
    assert rows(data, "silver", "source_file, user_id") == [("a.csv", "1")] * 2 + [("z.csv", "3")]
    run_layers(config)  # gone from raw/: no longer refused
    assert report(data)["bronze"]["refused"] == []
    assert_balanced(config)


def test_a_file_that_cannot_be_read_is_refused_alone_and_tried_again_at_every_run(tmp_path, monkeypatch):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write(data / "raw", "a.csv", events(1, 2))
    locked = write(data / "raw", "locked.csv", events(2, 2))

    def denied(opener):  # as chmod 000 would for another user than root (the tests run as root)
        def open_unless_locked(path, *args, **kwargs):
            if not isinstance(path, int) and Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return opener(path, *args, **kwargs)
        return open_unless_locked

    monkeypatch.setattr(os, "open", denied(os.open))
    monkeypatch.setattr(io, "open", denied(io.open))
    run_layers(config)
    reason = "cannot be read (permission denied); it is tried again at the next run"
    assert report(data)["bronze"]["refused"] == [{"path": "locked.csv", "reason": reason, "this_run": True}]
    assert rows(data, "silver", "source_file, user_id") == [("a.csv", "1")] * 2
    monkeypatch.undo()  # permission given; the file itself did not change
    run_layers(config)
    assert report(data)["bronze"]["refused"] == []
    assert rows(data, "silver", "source_file, user_id") == [("a.csv", "1")] * 2 + [("locked.csv", "2")] * 2
    assert_balanced(config)


def test_an_empty_raw_folder_says_no_raw_file_matched(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "EXPORT.CSV").write_text(HEADER)
    assert main(["run", "--data-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"clickstream: error: no raw files matched `*.csv` in {tmp_path}/raw; it holds 1 other file(s), "
        f"e.g. 'EXPORT.CSV'")


def test_of_two_sources_whose_globs_overlap_the_more_specific_glob_takes_the_file(tmp_path):
    shop2 = {"name": "shop2", "glob": "shop2_*.csv", "csv": {"delimiter": ";"},
             "columns": {"UserID": "customer", "SessionID": None, "Timestamp": "when", "EventType": "action",
                         "ProductID": "sku", "Amount": "price", "Outcome": None},
             "event_types": {"view": "page_view", "buy": "purchase"}, "timestamp_formats": ["%d/%m/%Y %H:%M"],
             "timezone": "Europe/Paris"}
    config = make_config(tmp_path, sources=[{"name": "clickstream"}, shop2])
    data = config.paths.data_dir
    write(data / "raw", "events.csv", events(1, 1))
    write(data / "raw", "shop2_1.csv", "c-1;01/02/2024 10:00;view;;\n", header="customer;when;action;sku;price\n")
    run_layers(config, ("bronze", "silver"))
    assert rows(data, "silver", "source_name, source_file, user_id, event_type") == [
        ("clickstream", "events.csv", "1", "page_view"), ("shop2", "shop2_1.csv", "c-1", "page_view")]


# ---- the same content twice, a file growing, a file corrected, overlapping exports

def test_the_same_content_under_a_new_name_is_skipped_with_a_note_in_the_same_batch_and_later(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    content = events(1, 5)
    write(data / "raw", "a.csv", content)
    write(data / "raw", "a_copy.csv", content)  # delivered twice at once
    run_layers(config)
    assert report(data)["bronze"]["copies"] == {"a_copy.csv": "a.csv"}
    write(data / "raw", "a-again.csv", content)  # and once more later
    run_layers(config)
    assert report(data)["bronze"]["copies"] == {"a-again.csv": "a.csv"}
    assert report(data)["silver"]["ledger"] == []  # nothing new to judge, no gate to fail
    assert rows(data, "silver", "source_file") == [("a.csv",)] * 5
    assert_balanced(config)


def test_appending_rows_to_an_ingested_file_adds_exactly_those_rows(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    path = generate(data / "raw", rows=10_000, seed=11, files=1).files[0]
    run_layers(config)
    before = rows(data, "silver", "count(*)")[0][0]
    bronze_before = rows(data, "bronze", "count(*)")[0][0]
    with path.open("a") as handle:
        handle.write("".join(f"appended-{i},1,2024-06-30 10:{i % 60:02d}:00,page_view,,,\n" for i in range(50)))
    run_layers(config)
    assert rows(data, "silver", "count(*)")[0][0] == before + 50
    assert rows(data, "bronze", "count(*)")[0][0] == bronze_before + 50
    manifest = json.loads((data / "_state" / "bronze_manifest.json").read_text())
    assert [part["rows"] for part in manifest["files"][path.name]["parts"]] == [bronze_before, 50]
    assert report(data)["silver"]["checks"][1]["status"] == "ok"  # no duplicate gate tripped
    assert_balanced(config)
    assert_gold_equals_a_full_refresh(config, tmp_path)


def test_correcting_an_amount_in_place_moves_revenue_by_exactly_the_correction(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    body = events(1, 3) + "2,1,2024-01-02 10:00:00,purchase,p1,10.00,purchase\n" + events(3, 2, "2024-01-03")
    path = write(data / "raw", "orders.csv", body)
    run_layers(config)
    revenue = rows(data, "analytics/revenue_metrics", "total_revenue")[0][0]
    path.write_text(HEADER + body.replace("p1,10.00", "p1,12.50"))
    run_layers(config)
    assert rows(data, "analytics/revenue_metrics", "total_revenue")[0][0] - revenue == Decimal("2.50")
    assert rows(data, "silver", "count(*)")[0][0] == 6
    retraction = report(data)["silver"]["retraction"]
    assert retraction["files"] == [{"source_file": "orders.csv", "replaced_rows": 6, "silver_rows": 6,
                                    "quarantine_rows": 0, "duplicate_rows": 0, "never_published_rows": 0}]
    assert_balanced(config)
    assert_gold_equals_a_full_refresh(config, tmp_path)


@pytest.mark.parametrize("policy", ["ignore", "fail"])
def test_a_changed_file_can_be_ignored_or_stop_the_run(tmp_path, policy, caplog):
    config = make_config(tmp_path, sources=[{"name": "clickstream", "on_change": policy}])
    data = config.paths.data_dir
    path = write(data / "raw", "a.csv", events(1, 2))
    run_layers(config)
    path.write_text(HEADER + events(2, 3))
    if policy == "fail":
        with pytest.raises(InputError, match=r"bronze: a\.csv changed since it was ingested in batch \w+ "
                                             r"\(sources\[clickstream\]\.on_change: fail\)"):
            run_layers(config)
    else:
        run_layers(config)
        assert "a.csv changed since it was ingested; its earlier version stays (on_change: ignore)" in caplog.text
        assert report(data)["bronze"]["ignored_changes"] == ["a.csv"]
    assert rows(data, "silver", "user_id") == [("1",), ("1",)]


def test_rows_of_an_overlapping_export_are_counted_as_redelivered_apart_from_in_batch_duplicates(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write(data / "raw", "monday.csv", events(1, 10) + events(1, 1))  # one in-batch duplicate
    run_layers(config)
    write(data / "raw", "monday_and_tuesday.csv", events(1, 10) + events(2, 5, "2024-01-02"))
    run_layers(config)
    ledger = report(data)["silver"]["ledger"]
    assert ledger == [{"source_file": "monday_and_tuesday.csv", "bronze_rows": 15, "silver_rows": 5,
                       "quarantine_rows": 0, "duplicate_rows": 0, "redelivered_rows": 10}]
    checks = {c["name"]: (c["status"], c["count"]) for c in report(data)["silver"]["checks"]}
    assert checks == {"quarantine_rate": ("ok", 0), "duplicate_rate": ("ok", 0), "redelivered_rate": ("warn", 10)}
    assert rows(data, "duplicates", "source_file, duplicate_kind") == (
        [("monday.csv", "duplicate")] + [("monday_and_tuesday.csv", "redelivered")] * 10)


def test_an_event_another_file_still_holds_stays_when_the_file_whose_copy_silver_kept_is_corrected(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    first = write(data / "raw", "a.csv", events(1, 4))
    run_layers(config)
    write(data / "raw", "b.csv", events(1, 2))  # the first two events again
    run_layers(config)
    first.write_text(HEADER + events(1, 4)[len(events(1, 1)):])  # a.csv drops its first event
    run_layers(config)
    at = [duckdb.sql(f"select timestamp '2024-01-01 10:0{i}:00'").fetchall()[0][0] for i in range(4)]
    # the two events b.csv holds too took its copies' place when a.csv's rows were replaced
    assert rows(data, "silver", "event_ts, source_file") == [(at[0], "b.csv"), (at[1], "b.csv"), (at[2], "a.csv"),
                                                             (at[3], "a.csv")]
    assert report(data)["silver"]["retraction"]["promoted_rows"] == 2
    assert_balanced(config)
    assert_gold_equals_a_full_refresh(config, tmp_path)


# ---- implausible values; distinct events stay distinct; small batches

def test_implausible_timestamps_are_quarantined_and_the_calendar_spans_only_the_datas_days(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write(data / "raw", "a.csv", events(1, 3) + "2,1,1900-01-01 00:00:00,page_view,,,\n"
          "3,1,2999-12-31 23:59:59,page_view,,,\n4,1,0001-01-01 00:00:00,page_view,,,\n")
    run_layers(config)
    assert rows(data, "quarantine", "Timestamp, rejection_reasons") == [
        ("0001-01-01 00:00:00", "timestamp_out_of_range"), ("1900-01-01 00:00:00", "timestamp_out_of_range"),
        ("2999-12-31 23:59:59", "timestamp_out_of_range")]
    assert rows(data, "gold/dim_date", "count(*)") == [(1,)]
    assert rows(data, "analytics/daily_activity", "count(*)") == [(1,)]


def test_distinct_values_joined_by_the_unit_separator_stay_distinct_events(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write(data / "raw", "a.csv", "a\x1fb,c,2024-01-01 10:00:00,page_view,,,\n"
                                 "a,b\x1fc,2024-01-01 10:00:00,page_view,,,\n"
                                 "\\N,,2024-01-01 10:00:00,page_view,,,\n"
                                 "\\\\N,,2024-01-01 10:00:00,page_view,,,\n")
    run_layers(config, ("bronze", "silver"))
    assert rows(data, "silver", "user_id, session_id") == sorted(
        [("a\x1fb", "c"), ("a", "b\x1fc"), ("\\N", None), ("\\\\N", None)], key=str)
    assert report(data)["silver"]["totals"]["duplicate_rows"] == 0


def test_a_rate_gate_over_few_rows_warns_instead_of_failing(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write(data / "raw", "tiny.csv", events(1, 3) + events(1, 1))  # one repeat in four rows: 25%
    run_layers(config)
    (check,) = [c for c in report(data)["silver"]["checks"] if c["name"] == "duplicate_rate"]
    assert (check["status"], check["note"]) == ("warn", "above the fail level, but only 4 rows judged "
                                                        "(quality.min_rows: 1000)")
    strict = make_config(tmp_path / "strict", quality={**Config().quality.model_dump(), "min_rows": 0})
    write(strict.paths.data_dir / "raw", "tiny.csv", events(1, 3) + events(1, 1))
    with pytest.raises(PipelineError, match="duplicate_rate 25.00% is above the fail threshold 5.00%"):
        run_layers(strict)


def test_verify_finds_a_row_lost_behind_the_pipelines_back(tmp_path, capsys):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    generate(data / "raw", rows=3_000, seed=5, files=2)
    run_layers(config)
    files = assert_balanced(config)
    assert sum(f["bronze_rows"] for f in files) == 3_000
    assert main(["verify", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.endswith("ledger: 2 file(s), 3,000 data line(s), every one accounted for once\n")
    victim = sorted((data / "quarantine").rglob("*.parquet"))[0]
    os.unlink(victim)
    assert main(["verify", "--data-dir", str(data)]) == 1
    assert "the ledger does not add up for" in capsys.readouterr().err
    assert not all(f["balanced"] for f in verify(config))


def test_verify_counts_each_file_again_from_raw_and_finds_rows_bronze_holds_beyond_its_bytes(tmp_path, capsys):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    path = write(data / "raw", "a.csv", events(1, 3))
    hashed = path.read_bytes()
    run_layers(config)
    with path.open("a") as handle:
        handle.write(events(2, 1))
    run_layers(config)
    assert [(f["source_file"], f["file_rows"], f["bronze_rows"], f["balanced"]) for f in verify(config)] == [
        ("a.csv", 4, 4, True)]
    # bronze holds rows that the bytes the manifest names do not (as if it had read past the bytes it hashed)
    manifest_file = data / "_state" / "bronze_manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["files"]["a.csv"].update(size=len(hashed), sha256=hashlib.sha256(hashed).hexdigest())
    manifest_file.write_text(json.dumps(manifest))
    assert [(f["source_file"], f["file_rows"], f["bronze_rows"], f["balanced"]) for f in verify(config)] == [
        ("a.csv", 3, 4, False)]
    assert main(["verify", "--data-dir", str(data)]) == 1
    assert "the ledger does not add up for 1 file(s), e.g. 'a.csv'" in capsys.readouterr().err
    path.write_text(HEADER + events(3, 1))  # another version, not ingested yet: nothing to count bronze against
    assert [(f["source_file"], f["file_rows"], f["bronze_rows"], f["balanced"]) for f in verify(config)] == [
        ("a.csv", None, 4, True)]


def test_a_first_delivery_without_a_valid_line_builds_an_empty_star_and_says_so(tmp_path, caplog):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write(data / "raw", "bad.csv", "1,1\n,1,2024-01-01 10:00:00,page_view,,,\n")
    run_layers(config)
    assert (report(data)["gold"]["mode"], report(data)["gold"]["reason"]) == ("full", "no gold build yet")
    for table in ("gold/fct_events", "gold/dim_users", "analytics/daily_activity", "analytics/top_products"):
        assert list((data / table).rglob("*.parquet")) and rows(data, table) == [], table  # a table, empty
    assert "gold: silver holds no events, so the star is empty" in caplog.text
    write(data / "raw", "good.csv", events(1, 2))
    run_layers(config)
    assert rows(data, "gold/fct_events", "count(*)") == [(2,)]


def test_the_session_timeout_from_config_splits_visits_at_exactly_that_gap(tmp_path):
    # through the whole pipeline: the minutes of the config become the microseconds the model compares
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write(data / "raw", "a.csv", "1,s,2024-01-01 10:00:00,page_view,,,\n1,s,2024-01-01 10:30:30,page_view,,,\n"
                                 "2,s,2024-01-01 10:00:00,page_view,,,\n2,s,2024-01-01 10:29:30,page_view,,,\n")
    run_layers(config)
    assert rows(data, "gold/dim_sessions", "user_key, count(*)", "true group by user_key") == [("1", 2), ("2", 1)]


def test_a_row_breaking_two_rules_counts_for_each_in_the_quality_report(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write(data / "raw", "a.csv", events(1, 3) + ",1,bad time,page_view,,,\n")
    run_layers(config, ("bronze", "silver"))
    reasons = report(data)["silver"]["rejection_reasons"]
    assert reasons == {"overall": {"invalid_timestamp": 1, "missing_user_id": 1},
                       "per_file": {"a.csv": {"invalid_timestamp": 1, "missing_user_id": 1}}}


def test_each_file_of_a_batch_read_together_keeps_exactly_its_own_lines(tmp_path):
    # DuckDB reading many files at once can drop a quote left open, and the rest of its file, without an error:
    # bronze counts each file's records apart and splits the file it reads short
    sys.path.insert(0, str(Path(__file__).parent))
    import hostile

    config = make_config(tmp_path, sources=[{"name": "clickstream"}, hostile.PARIS_SOURCE])
    lines = hostile.write(config.paths.data_dir / "raw")
    run_layers(config, ("bronze", "silver"))
    assert {f["source_file"]: f["bronze_rows"] for f in verify(config)} == lines
    assert assert_balanced(config)


def test_lines_appended_to_a_file_are_numbered_where_they_are_in_it(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    path = write(data / "raw", "growing.csv", events(1, 3))
    run_layers(config, ("bronze", "silver"))
    with path.open("a") as handle:
        handle.write(events(2, 2, "2024-01-02") + "7,1\n")
    run_layers(config, ("bronze", "silver"))
    assert rows(data, "quarantine", "source_file, source_line, raw_line, rejection_reasons") == [
        ("growing.csv", 7, "7,1\n", "malformed_short_row")]


# ---- long fields and records (csv_lines.MAX_RECORD_BYTES)

def test_a_long_valid_row_lands_in_silver_whole_and_a_row_beyond_the_limit_is_one_quarantined_record(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    two_lines = '"' + "a" * 100_000 + "\n" + "b" * 100_000 + '"'
    write(data / "raw", "long.csv", events(1, 1) + f"2,1,2024-01-01 10:01:00,page_view,{'p' * 200_000},,\n"
          + "3,1\n" + f"4,1,2024-01-01 10:02:00,page_view,{two_lines},,\n"
          + f"5,1,2024-01-01 10:03:00,page_view,{'x' * MAX_RECORD_BYTES},,\n" + events(6, 1))
    # no other malformed line: read by the engine, but for its record beyond the limit
    write(data / "raw", "over.csv", events(7, 1) + f"8,1,2024-01-01 10:04:00,page_view,{'y' * MAX_RECORD_BYTES},,\n")
    run_layers(config, ("bronze", "silver"))
    assert rows(data, "silver", "source_file, user_id, length(product_id)") == [
        ("long.csv", "1", None), ("long.csv", "2", 200_000), ("long.csv", "4", 200_001), ("long.csv", "6", None),
        ("over.csv", "7", None)]
    assert rows(data, "quarantine", "source_file, source_line, rejection_reasons, left(raw_line, 12), "
                "length(raw_line)") == [
        ("long.csv", 4, "malformed_short_row", "3,1\n", 4), ("long.csv", 7, "malformed_too_long", "5,1,2024-01-", 1024),
        ("over.csv", 3, "malformed_too_long", "8,1,2024-01-", 1024)]
    files = assert_balanced(config)
    assert {f["source_file"]: f["bronze_rows"] for f in files} == {"long.csv": 6, "over.csv": 2}
    manifest = json.loads((data / "_state" / "bronze_manifest.json").read_text())
    assert {name: entry["records"] for name, entry in manifest["files"].items()} == {"long.csv": 6, "over.csv": 2}


def test_a_header_with_a_quoted_line_break_is_one_header_record(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    header = HEADER.rstrip("\n") + ',"Price\nUSD"\n'
    body = "".join(f"{user},1,2024-01-01 10:0{user}:00,page_view,,,,{user}.50\n" for user in (1, 2))
    write(data / "raw", "direct.csv", body, header=header)
    write(data / "raw", "split.csv", body.replace("1,1,", "3,1,").replace("2,1,", "4,1,") + "5,1\n", header=header)
    run_layers(config, ("bronze", "silver"))
    assert rows(data, "silver", "source_file, user_id") == [
        ("direct.csv", "1"), ("direct.csv", "2"), ("split.csv", "3"), ("split.csv", "4")]
    assert rows(data, "quarantine", "source_file, source_line, raw_line, rejection_reasons") == [
        ("split.csv", 5, "5,1\n", "malformed_short_row")]
    assert_balanced(config)


def test_a_header_longer_than_the_limit_refuses_its_file_alone(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write(data / "raw", "good.csv", events(1, 2))
    write(data / "raw", "endless.csv", "", header="UserID," + "x" * (MAX_RECORD_BYTES + 1))
    run_layers(config, ("bronze", "silver"))
    assert rows(data, "silver", "source_file") == [("good.csv",)] * 2
    assert report(data)["bronze"]["refused"] == [
        {"path": "endless.csv", "reason": "the header (line 1) is longer than 1,048,576 bytes, the limit of a record",
         "this_run": True}]
