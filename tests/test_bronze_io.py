"""Bronze on real files in tmp_path: explicit text schema, manifest, incremental ingestion, clear input errors."""
from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import duckdb
import pytest
from helpers import make_config

from clickstream.context import PipelineError
from clickstream.engines import InputError
from clickstream.pipeline import run_layers
from clickstream.raw_files import scan

HEADER = "UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"


def write_csv(raw: Path, name: str, body: str, header: str = HEADER) -> Path:
    raw.mkdir(parents=True, exist_ok=True)
    path = raw / name
    path.write_text(header + body)
    return path


def bronze_rows(data: Path) -> list[tuple]:
    return duckdb.sql(
        f"select UserID, Timestamp, Amount, source_file, typeof(ingestion_date) from read_parquet("
        f"'{data}/bronze/**/*.parquet', hive_partitioning = true, hive_types = {{'ingestion_date': 'DATE'}}) "
        f"order by source_file, Timestamp").fetchall()


def test_values_land_unchanged_as_text_with_metadata_and_partitions(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write_csv(data / "raw", "a.csv", "007,1,2024-01-01 10:00:00.000001,purchase,p1,0012.50,purchase\n"
                                     " 8 ,1,not a time,page_view,,,\n")
    run_layers(config, ("bronze",))
    assert bronze_rows(data) == [("007", "2024-01-01 10:00:00.000001", "0012.50", "a.csv", "DATE"),
                                 (" 8 ", "not a time", None, "a.csv", "DATE")]
    partitions = [p.name for p in (data / "bronze").iterdir()]
    assert len(partitions) == 1 and partitions[0].startswith("ingestion_date=")


def test_only_new_files_are_ingested_and_reruns_add_nothing(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write_csv(data / "raw", "a.csv", "1,1,2024-01-01 10:00:00,page_view,,,\n")
    run_layers(config, ("bronze",))
    run_layers(config, ("bronze",))
    assert len(bronze_rows(data)) == 1
    write_csv(data / "raw", "b.csv", "2,1,2024-01-02 10:00:00,page_view,,,\n3,1,2024-01-02 11:00:00,click,,,\n")
    (data / "raw" / "copy_of_a.csv").write_bytes((data / "raw" / "a.csv").read_bytes())  # same content, new name
    run_layers(config, ("bronze",))
    assert [r[3] for r in bronze_rows(data)] == ["a.csv", "b.csv", "b.csv"]
    manifest = json.loads((data / "_state" / "bronze_manifest.json").read_text())
    assert {name: entry["rows"] for name, entry in manifest["files"].items()} == {"a.csv": 1, "b.csv": 2}
    assert len(manifest["batches"]) == 2


def test_an_empty_file_is_recorded_with_zero_rows(tmp_path):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write_csv(data / "raw", "empty.csv", "", header="")
    write_csv(data / "raw", "header_only.csv", "")
    run_layers(config, ("bronze", "silver"))
    manifest = json.loads((data / "_state" / "bronze_manifest.json").read_text())
    assert {name: entry["rows"] for name, entry in manifest["files"].items()} == {"empty.csv": 0,
                                                                                 "header_only.csv": 0}


@pytest.mark.parametrize(
    ("name", "header", "body", "reason"),
    [
        ("nocols.csv", "UserID,Timestamp\n", "1,2024-01-01 10:00:00\n",
         "missing column(s) ['Amount', 'EventType', 'Outcome', 'ProductID', 'SessionID'] required by source "
         "'clickstream' (header has ['UserID', 'Timestamp'])"),
        ("blank_first_line.csv", "\n", HEADER + "1,1,2024-01-01 10:00:00,page_view,,,\n",
         "the first line is blank; expected a header naming the columns"),
        ("dupcols.csv", "UserID,UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n", "",
         "duplicate column names in the header: ['UserID']"),
        ("semicolons.csv", HEADER.replace(",", ";"), "1;1;2024-01-01 10:00:00;page_view;;;\n",
         "the header has one column ('UserID;SessionID;Timestamp;EventType;ProductID;Amount;Outcome'), not the 7 "
         "source 'clickstream' maps; the line holds ';': set sources[].csv.delimiter to ';'?"),
    ],
)
def test_a_file_whose_header_does_not_fit_is_refused_alone_and_retried_once_changed(tmp_path, name, header, body,
                                                                                   reason):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    write_csv(data / "raw", "good.csv", "1,1,2024-01-01 10:00:00,page_view,,,\n")
    write_csv(data / "raw", name, body, header=header)
    run_layers(config, ("bronze",))
    assert [r[3] for r in bronze_rows(data)] == ["good.csv"]  # the good file proceeds
    manifest = json.loads((data / "_state" / "bronze_manifest.json").read_text())
    assert list(manifest["files"]) == ["good.csv"]
    assert manifest["refused"][name]["reason"] == reason
    report = json.loads((data / "reports" / "quality_report.json").read_text())["last_run"]
    assert report["bronze"]["refused"] == [{"path": name, "reason": reason, "this_run": True}]
    assert not (data / "_staging").exists()
    write_csv(data / "raw", name, "2,1,2024-01-02 10:00:00,click,,,\n")  # fixed: retried, ingested
    run_layers(config, ("bronze",))
    assert sorted(r[3] for r in bronze_rows(data)) == sorted(["good.csv", name])
    assert name not in json.loads((data / "_state" / "bronze_manifest.json").read_text())["refused"]


def test_a_missing_raw_directory_is_named(tmp_path):
    config = make_config(tmp_path)
    with pytest.raises(PipelineError, match="raw input directory not found: .*raw"):
        run_layers(config, ("bronze",))


def test_a_source_with_other_column_names_needs_only_config(tmp_path):
    source = {"name": "shop2", "glob": "shop2_*.csv", "csv": {"delimiter": ";"},
              "columns": {"UserID": "customer", "SessionID": None, "Timestamp": "when", "EventType": "action",
                          "ProductID": "sku", "Amount": "price", "Outcome": None},
              "event_types": {"view": "page_view", "buy": "purchase"},
              "timestamp_formats": ["%d/%m/%Y %H:%M"]}
    config = make_config(tmp_path, sources=[source])
    data = config.paths.data_dir
    write_csv(data / "raw", "shop2_1.csv", "c-1;01/02/2024 10:00;view;;\nc-1;01/02/2024 10:05;buy;sku9;3.5\n",
              header="customer;when;action;sku;price;ignored_col\n".replace(";ignored_col", ""))
    run_layers(config, ("bronze", "silver"))
    rows = duckdb.sql(f"select user_id, session_id, event_ts, event_type, product_id, amount from read_parquet("
                      f"'{data}/silver/**/*.parquet') order by event_ts").fetchall()
    assert [(r[0], r[1], str(r[2]), r[3], r[4], str(r[5])) for r in rows] == [
        ("c-1", None, "2024-02-01 10:00:00", "page_view", None, "None"),
        ("c-1", None, "2024-02-01 10:05:00", "purchase", "sku9", "3.50"),
    ]


def test_a_touched_file_is_not_ingested_again_and_a_changed_file_replaces_its_rows(tmp_path):
    import os

    config = make_config(tmp_path)
    data = config.paths.data_dir
    path = write_csv(data / "raw", "a.csv", "1,1,2024-01-01 10:00:00,page_view,,,\n")
    original = path.read_bytes()
    run_layers(config, ("bronze", "silver"))
    os.utime(path, ns=(1, 1))  # touched: same content, new mtime
    run_layers(config, ("bronze", "silver"))
    manifest = json.loads((data / "_state" / "bronze_manifest.json").read_text())
    assert manifest["files"]["a.csv"]["mtime_ns"] == 1 and len(bronze_rows(data)) == 1
    path.write_text(HEADER + "2,1,2024-01-02 10:00:00,click,,,\n")  # changed in place: its rows are replaced
    run_layers(config, ("bronze", "silver"))
    assert [r[0] for r in bronze_rows(data)] == ["1", "2"]  # bronze keeps both versions
    assert silver_users(data) == ["2"]
    path.write_bytes(original)  # back to the first content: a new version again
    run_layers(config, ("bronze", "silver"))
    assert len(bronze_rows(data)) == 3
    assert silver_users(data) == ["1"]
    manifest = json.loads((data / "_state" / "bronze_manifest.json").read_text())
    assert [v["replaced_by"] for v in manifest["files"]["a.csv"]["previous"]] == sorted(manifest["batches"])[1:]


def silver_users(data: Path) -> list[str]:
    return [r[0] for r in duckdb.sql(f"select user_id from read_parquet('{data}/silver/**/*.parquet') "
                                     f"order by user_id").fetchall()]


@pytest.mark.parametrize("in_kernel", [True, False])
def test_a_snapshot_holds_exactly_the_bytes_scanned_with_or_without_a_copy_in_the_kernel(tmp_path, monkeypatch,
                                                                                        in_kernel):
    if not in_kernel:  # another file system, or an older kernel: copied block by block
        def refused(*args, **kwargs):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        monkeypatch.setattr(os, "copy_file_range", refused)
    path = write_csv(tmp_path, "a.csv", "1,1,2024-01-01 10:00:00,page_view,,,\n" * 3)
    data = path.read_bytes()
    facts = scan(path, snapshot=tmp_path / "snapshot.csv")
    assert (tmp_path / "snapshot.csv").read_bytes() == data
    assert (facts.size, facts.sha256, facts.records) == (len(data), hashlib.sha256(data).hexdigest(), 3)
    assert scan(path, limit=len(HEADER)).sha256 == hashlib.sha256(HEADER.encode()).hexdigest()


@pytest.mark.parametrize("files", [3, 40])
def test_each_files_profile_counts_its_rows_malformed_lines_and_nulls_however_many_files_a_batch_holds(tmp_path,
                                                                                                     files):
    # up to 32 files the write measures the profile itself; beyond, a pass over what was written does
    config = make_config(tmp_path)
    data = config.paths.data_dir
    for number in range(files):
        body = "".join(f"u{number}-{row},s1,2024-01-01 10:00:0{row},page_view,{'p' if row % 2 else ''},,\n"
                       for row in range(number % 4 + 1)) + ("broken,\"line\n" if number % 3 == 0 else "")
        write_csv(data / "raw", f"f{number:02d}.csv", body)
    run_layers(config, ("bronze",))
    manifest = json.loads((data / "_state" / "bronze_manifest.json").read_text())
    report = json.loads((data / "reports" / "quality_report.json").read_text())["last_run"]["bronze"]
    profiles = {f["path"]: (f["part_rows"], f["malformed_rows"], f["null_counts"]["ProductID"],
                            f["null_counts"]["Amount"]) for f in report["files"]}
    expected = {f"f{n:02d}.csv": (n % 4 + 1 + (n % 3 == 0), int(n % 3 == 0), (n % 4 + 2) // 2, n % 4 + 1)
                for n in range(files)}
    assert profiles == expected
    assert {path: entry["rows"] for path, entry in manifest["files"].items()} == {
        path: rows for path, (rows, _, _, _) in expected.items()}


def test_parts_read_line_by_line_are_split_side_by_side_with_the_same_result(tmp_path, monkeypatch):
    from clickstream import bronze

    def ingest(root: Path, parallel_from: int) -> tuple[list[tuple], dict]:
        monkeypatch.setattr(bronze, "PARALLEL_SPLIT_BYTES", parallel_from)
        config = make_config(root, sources=[{"name": "clickstream"}, {"name": "tracker", "glob": "*.jsonl"}])
        data = config.paths.data_dir
        write_csv(data / "raw", "a.csv", "1,s,2024-01-01 10:00:00,page_view,,,\n\"2,broken\n3,s,2024-01-01 11:00:00,"
                                         "page_view,,,\n")
        for name in ("b.jsonl", "c.jsonl"):
            (data / "raw" / name).write_text(
                '{"UserID": "4", "Timestamp": "2024-01-02 10:00:00", "EventType": "view"}\n'
                f'[not an object in {name}]\n'
                '{"UserID": "5", "Timestamp": "2024-01-02 11:00:00", "EventType": "view"}\n')
        run_layers(config, ("bronze",))
        report = json.loads((data / "reports" / "quality_report.json").read_text())["last_run"]["bronze"]
        return bronze_rows(data), {f["path"]: (f["part_rows"], f["malformed_rows"]) for f in report["files"]}

    pools = []
    pool = bronze.ProcessPoolExecutor
    monkeypatch.setattr(bronze, "ProcessPoolExecutor", lambda **options: pools.append(options) or pool(**options))
    one_by_one = ingest(tmp_path / "one", parallel_from=1 << 40)
    assert pools == []
    side_by_side = ingest(tmp_path / "two", parallel_from=0)
    assert [p["max_workers"] for p in pools] == [min(3, os.cpu_count() or 1)]  # the three parts, one core each
    assert side_by_side == one_by_one
    assert one_by_one[1] == {"a.csv": (3, 1), "b.jsonl": (3, 1), "c.jsonl": (3, 1)}
