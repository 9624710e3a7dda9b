"""Bronze keeps the whole file on both engines: the unmapped fields of CSV (with or without a header) and of JSON
lines in `extra`, JSON lines mapped by dotted path with its malformed lines quarantined, and bronze written before
`extra` existed read with it NULL. Each bronze table is compared whole with rows written by hand."""
from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clickstream.config import Config
from clickstream.engines import InputError
from clickstream.pipeline import run_layers, verify

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine_support import read_table, table_differences  # noqa: E402

ENGINES = ["duckdb", pytest.param("spark", marks=pytest.mark.spark)]
SHOWN = ["UserID", "SessionID", "Timestamp", "EventType", "ProductID", "Amount", "Outcome", "extra", "source_line",
         "raw_line", "parse_error", "source_file"]
NO_COLUMNS = dict.fromkeys(["SessionID", "ProductID", "Amount", "Outcome"])


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    if request.param == "spark":
        request.getfixturevalue("spark_session_owner")  # skips, with the reason, where Spark cannot run
    return request.param


def config_for(tmp_path: Path, engine: str, *sources: dict) -> Config:
    return Config.model_validate({"engine": engine, "sources": list(sources),
                                  "paths": {"data_dir": str(tmp_path / "data"), "logs_dir": str(tmp_path / "logs")}})


def write_raw(tmp_path: Path, files: dict[str, str | bytes]) -> None:
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (raw / name).write_bytes(content if isinstance(content, bytes) else content.encode())


def bronze(tmp_path: Path) -> list[tuple]:
    table = read_table(tmp_path / "data" / "bronze")
    return sorted((tuple(row[c] for c in SHOWN) for row in table.to_pylist()), key=lambda r: (r[-1], str(r)))


def row(user, ts, event, extra, file, session=None, product=None, amount=None, outcome=None) -> tuple:
    return (user, session, ts, event, product, amount, outcome, extra, None, None, None, file)


def malformed(line: int, text: str, reason: str, file: str) -> tuple:
    return (None,) * 8 + (line, text, reason, file)


def test_unmapped_csv_columns_are_kept_in_extra_by_name(tmp_path, engine):
    write_raw(tmp_path, {"rees.csv": 'event_time,user_id,event_type,brand,category_code\n'
                                      '2024-01-01 10:00:00,u1,view,acme,"shoes, red"\n'
                                      '2024-01-01 10:00:01,u2,view,,"say ""hi""\\ \ttab é"\n'})
    source = {"name": "rees", "columns": {"UserID": "user_id", "Timestamp": "event_time", "EventType": "event_type",
                                          **NO_COLUMNS}}
    run_layers(config_for(tmp_path, engine, source), ("bronze",))
    # an empty field is NULL, as a mapped column's; JSON escapes quote, backslash and tab
    assert bronze(tmp_path) == [
        row("u1", "2024-01-01 10:00:00", "view", '{"brand":"acme","category_code":"shoes, red"}', "rees.csv"),
        row("u2", "2024-01-01 10:00:01", "view", '{"brand":null,"category_code":"say \\"hi\\"\\\\ \\ttab é"}',
            "rees.csv")]


def test_a_headerless_files_unmapped_fields_are_kept_by_position(tmp_path, engine):
    write_raw(tmp_path, {"UserBehavior.csv": "1,2268318,2520377,pv,1511544070\n2,3830808,4181361,buy,1511544071\n"})
    source = {"name": "taobao", "csv": {"header": False},
              "columns": {"UserID": 0, "ProductID": 1, "EventType": 3, "Timestamp": 4, "SessionID": None,
                          "Amount": None, "Outcome": None}}
    run_layers(config_for(tmp_path, engine, source), ("bronze",))
    assert bronze(tmp_path) == [
        row("1", "1511544070", "pv", '{"2":"2520377"}', "UserBehavior.csv", product="2268318"),
        row("2", "1511544071", "buy", '{"2":"4181361"}', "UserBehavior.csv", product="3830808")]


def test_a_fully_mapped_csv_has_no_extra(tmp_path, engine):
    write_raw(tmp_path, {"a.csv": "UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"
                                  "1,s,2024-01-01 10:00:00,page_view,,,\n"})
    run_layers(config_for(tmp_path, engine, {"name": "clickstream"}), ("bronze",))
    assert bronze(tmp_path) == [row("1", "2024-01-01 10:00:00", "page_view", None, "a.csv", session="s")]


# Track calls as the Segment Spec documents them (common fields and Track): userId/anonymousId, event, messageId,
# an ISO 8601 timestamp, `properties` of the event and `context` (page, library, ...) nested.
SEGMENT_SOURCE = {"name": "segment", "glob": "*.jsonl",
                  "columns": {"UserID": "userId", "SessionID": "context.sessionId", "Timestamp": "timestamp",
                              "EventType": "event", "ProductID": "properties.product_id",
                              "Amount": "properties.price", "Outcome": "context.page"}}
SEGMENT_LINES = [
    {"type": "track", "event": "Product Viewed", "userId": "019mr8mf4r", "messageId": "ajs-f8ca1e4de5024d9430b3928bd8ac6b96",
     "timestamp": "2015-12-12T19:11:01.249Z", "properties": {"product_id": "507f1f77bcf86cd799439011", "price": 18.990},
     "context": {"page": {"url": "https://x.example/p?a=1", "title": "Shoes"}, "library": {"name": "analytics.js",
                                                                                          "version": "2.11.1"}}},
    {"type": "track", "event": "Order Completed", "userId": "019mr8mf4r", "messageId": "ajs-2",
     "timestamp": "2015-12-12T19:12:01.000+01:00",
     "properties": {"order_id": "50314b8e9bcf000000000000", "price": 27, "products": [{"sku": "45790-32"}],
                    "coupon": None, "repeat": False},
     "context": {"page": "checkout", "library": {"name": "analytics.js", "version": "2.11.1"}}},
]


def segment_text() -> str:
    lines = [json.dumps(line).replace("18.99", "18.990") for line in SEGMENT_LINES]
    return (lines[0] + "\n" + "[1, 2]\n" + "\n" + '"Order Completed"\n' + lines[1] + "\n" + "42\n"
            + '{"userId": "x", "event": broken}\n' + '{"userId": "cut", "timestamp": "2015-12-12T19:1')


def segment_bronze(file: str) -> list[tuple]:
    library = '"context.library.name":"analytics.js","context.library.version":"2.11.1"'
    return [
        row("019mr8mf4r", "2015-12-12T19:11:01.249Z", "Product Viewed",
            '{"type":"track","messageId":"ajs-f8ca1e4de5024d9430b3928bd8ac6b96",' + library + "}", file,
            product="507f1f77bcf86cd799439011", amount="18.990",
            outcome='{"url":"https://x.example/p?a=1","title":"Shoes"}'),  # an object mapped: its JSON text
        row("019mr8mf4r", "2015-12-12T19:12:01.000+01:00", "Order Completed",
            '{"type":"track","messageId":"ajs-2","properties.order_id":"50314b8e9bcf000000000000",'
            '"properties.products":"[{\\"sku\\":\\"45790-32\\"}]","properties.coupon":null,'
            '"properties.repeat":"false",' + library + "}", file, amount="27", outcome="checkout"),
        malformed(2, "[1, 2]\n", "malformed_not_object", file),
        malformed(4, '"Order Completed"\n', "malformed_not_object", file),
        malformed(6, "42\n", "malformed_not_object", file),
        malformed(7, '{"userId": "x", "event": broken}\n', "malformed_json", file),
        malformed(8, '{"userId": "cut", "timestamp": "2015-12-12T19:1', "malformed_json", file)]


def test_json_lines_map_by_dotted_path_keep_the_rest_and_quarantine_what_is_no_object(tmp_path, engine):
    write_raw(tmp_path, {"tracks.jsonl": segment_text(), "tracks2.jsonl.gz": gzip.compress(segment_text().encode())})
    config = config_for(tmp_path, engine, SEGMENT_SOURCE)
    run_layers(config, ("bronze", "silver"))
    expected = segment_bronze("tracks.jsonl") + segment_bronze("tracks2.jsonl.gz")
    assert bronze(tmp_path) == sorted(expected, key=lambda r: (r[-1], str(r)))
    manifest = json.loads((tmp_path / "data" / "_state" / "bronze_manifest.json").read_text())
    assert [(name, entry["records"], entry["rows"], entry["ends_cleanly"])
            for name, entry in sorted(manifest["files"].items())] == [
        ("tracks.jsonl", 7, 7, False), ("tracks2.jsonl.gz", 7, 7, False)]
    assert [(f["source_file"], f["bronze_rows"], f["balanced"]) for f in verify(config)] == [
        ("tracks.jsonl", 7, True), ("tracks2.jsonl.gz", 7, True)]


def test_a_path_into_a_value_that_is_no_object_is_null_and_fails_its_rule(tmp_path, engine):
    write_raw(tmp_path, {"a.ndjson": '{"user": "u1", "ts": "2024-01-01 10:00:00", "event": {"name": "page_view"}}\n'
                                     '{"user": "u2", "ts": "2024-01-01 10:00:01", "event": "page_view"}\n'})
    source = {"name": "app", "glob": "*.ndjson",
              "columns": {"UserID": "user", "Timestamp": "ts", "EventType": "event.name", **NO_COLUMNS}}
    run_layers(config_for(tmp_path, engine, source), ("bronze", "silver"))
    assert bronze(tmp_path) == [row("u1", "2024-01-01 10:00:00", "page_view", None, "a.ndjson"),
                                row("u2", "2024-01-01 10:00:01", None, '{"event":"page_view"}', "a.ndjson")]
    quarantine = read_table(tmp_path / "data" / "quarantine").to_pylist()
    assert [(r["UserID"], r["rejection_reasons"]) for r in quarantine] == [("u2", "missing_event_type")]


def test_bronze_written_before_extra_is_read_with_extra_null(tmp_path, engine):
    write_raw(tmp_path, {"a.csv": "UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome,channel\n"
                                  "1,s,2024-01-01 10:00:00,page_view,,,,ads\n"})
    config = config_for(tmp_path, engine, {"name": "clickstream"})
    run_layers(config, ("bronze",))
    for file in (tmp_path / "data" / "bronze").rglob("*.parquet"):  # as an older version wrote it
        table = pq.read_table(file, partitioning=None)
        pq.write_table(table.drop_columns(["extra"]), file)
    run_layers(config, ("silver",))
    silver = read_table(tmp_path / "data" / "silver").to_pylist()
    assert [(r["user_id"], r["session_id"], r["event_type"]) for r in silver] == [("1", "s", "page_view")]
    assert "extra" not in pa.parquet.read_schema(next((tmp_path / "data" / "bronze").rglob("*.parquet"))).names


@pytest.mark.spark
def test_bronze_and_silver_of_csv_and_json_lines_are_equal_on_both_engines(tmp_path, spark_session_owner):
    tables = {}
    for engine in ("duckdb", "spark"):
        root = tmp_path / engine
        write_raw(root, {"tracks.jsonl": segment_text(), "more.json.gz": gzip.compress(segment_text().encode()),
                         "rees.csv": "event_time,user_id,event_type,brand\n2024-01-01 10:00:00,u1,page_view,é\"\n"})
        rees = {"name": "rees", "glob": "rees.csv",
                "columns": {"UserID": "user_id", "Timestamp": "event_time", "EventType": "event_type", **NO_COLUMNS}}
        segment = {**SEGMENT_SOURCE, "glob": "*.json*", "timestamp_formats": ["iso8601"]}
        run_layers(config_for(root, engine, segment, rees), ("bronze", "silver"))
        tables[engine] = {name: read_table(root / "data" / name) for name in ("bronze", "silver", "quarantine")}
    for name in ("bronze", "silver", "quarantine"):
        assert table_differences(tables["duckdb"][name], tables["spark"][name],
                                 exclude=("batch_id", "ingestion_timestamp", "ingestion_date")) == [], name


def test_a_csv_file_under_dotted_paths_is_refused_with_a_hint(tmp_path):
    write_raw(tmp_path, {"events.csv": "user,ts,event\nu1,2024-01-01 10:00:00,page_view\n"})
    source = {"name": "app", "columns": {"UserID": "user", "Timestamp": "ts", "EventType": "event.name", **NO_COLUMNS}}
    with pytest.raises(InputError) as error:
        run_layers(config_for(tmp_path, "duckdb", source), ("bronze",))
    assert "events.csv: missing column(s) ['event.name'] required by source 'app' (header has ['user', 'ts', " \
           "'event']); dotted paths name the values of JSON lines: set sources[].format: ndjson?" in str(error.value)
