"""json_lines on its own: values by dotted path keep their text, every other leaf goes to `extra`, every line that
is no JSON object is kept with its number and why; and the config of a JSON-lines source is checked at load."""
from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from test_config import refused

from clickstream.config import Source
from clickstream.csv_lines import MAX_RECORD_BYTES, SHOWN_BYTES, Malformed
from clickstream.json_lines import canonical_header, split_json_file


def split(tmp_path: Path, text: bytes, paths: list[str], name: str = "a.jsonl", **kwargs) -> tuple[list, list]:
    path = tmp_path / name
    path.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    out = io.StringIO()
    result = split_json_file(path, paths, out, **kwargs)
    rows = [line.split(",", len(paths)) for line in out.getvalue().splitlines()]
    assert result.records == len(rows)
    return rows, result.malformed


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz"])
def test_values_keep_their_text_and_the_rest_is_extra(tmp_path, name):
    line = b'{"id": 7, "p": {"price": 1.50, "big": 123456789012345678901234567890, "tags": ["x", 2e3]}, "ok": true}\n'
    out = io.StringIO()
    path = tmp_path / name
    path.write_bytes(gzip.compress(line) if name.endswith(".gz") else line)
    result = split_json_file(path, ["id", "p.price", "p.missing"], out)
    extra = {"p.big": "123456789012345678901234567890", "p.tags": '["x",2e3]', "ok": "true"}
    assert out.getvalue() == '7,1.50,,"' + json.dumps(extra, separators=(",", ":")).replace('"', '""') + '"\n'
    assert (result.records, result.malformed, result.ends_cleanly) == (1, [], True)


def test_a_key_holding_dots_and_an_object_mapped_whole(tmp_path):
    rows, _ = split(tmp_path, b'{"a.b": "dotted", "c": {"d": {"e": 1}, "f": null}, "g": {}}\n', ["a.b", "c.d"])
    assert rows == [["dotted", '"{""e"":1}"', '"{""c.f"":null,""g"":""{}""}"']]


def test_every_line_that_is_no_object_is_kept_with_its_number_and_why(tmp_path):
    text = (b'{"u": "1"}\n[1]\n"text"\n\n  \n3.5\nnull\n{"u": NaN}\n{"u": "\\ud800"}\n\xff{"u": "2"}\n'
            b'{"u": "3"}\r\n{"u": "cut')
    rows, bad = split(tmp_path, text, ["u"])
    assert rows == [["1", ""], ["3", ""]]
    assert bad == [Malformed(2, "malformed_not_object", "[1]\n"), Malformed(3, "malformed_not_object", '"text"\n'),
                   Malformed(6, "malformed_not_object", "3.5\n"), Malformed(7, "malformed_not_object", "null\n"),
                   Malformed(8, "malformed_json", '{"u": NaN}\n'),
                   Malformed(9, "malformed_json", '{"u": "\\ud800"}\n'),
                   Malformed(10, "malformed_invalid_utf8", '\\xff{"u": "2"}\n'),
                   Malformed(12, "malformed_json", '{"u": "cut')]


def test_a_line_beyond_the_limit_is_one_malformed_record_and_the_next_is_read(tmp_path):
    long = b'{"u": "' + b"x" * MAX_RECORD_BYTES + b'"}\n'
    rows, bad = split(tmp_path, long + b'{"u": "after"}\n', ["u"])
    assert rows == [["after", ""]]
    assert bad == [Malformed(1, "malformed_too_long", long[:SHOWN_BYTES].decode())]


def test_an_appended_part_is_numbered_after_the_lines_before_it(tmp_path):
    first = b'{"u": "1"}\n'
    rows, bad = split(tmp_path, first + b'{"u": "2"}\n[]\n', ["u"], skip_bytes=len(first), first_line=2)
    assert (rows, bad) == ([["2", ""]], [Malformed(3, "malformed_not_object", "[]\n")])


def test_the_canonical_fields_are_each_path_once_then_extra():
    assert canonical_header(["u", "t", "u", "p.x"]) == ["u", "t", "p.x", ""]


def test_a_files_format_comes_from_its_name_unless_the_source_names_one():
    source = Source()
    assert [source.format_of(name) for name in ("a.csv", "a.CSV.gz", "a.jsonl", "b.ndjson.gz", "c.json", "d.txt")] \
        == ["csv", "csv", "ndjson", "ndjson", "ndjson", "csv"]
    assert Source(format="ndjson", columns={"UserID": "u", "Timestamp": "t", "EventType": "e"}).format_of("x.csv") \
        == "ndjson"


@pytest.mark.parametrize("source, message", [
    ("format: jsonl", "key 'sources.0.format': 'jsonl' is not a format; did you mean 'ndjson'? (csv | ndjson; null: "
                      "from each file's name)"),
    ("format: ndjson\n    columns: {UserID: 0, Timestamp: t, EventType: e}",
     "key 'sources.0.columns.UserID': 0 is a position, but format is ndjson: map the value's dotted path, e.g. "
     "properties.price"),
    ("format: ndjson\n    columns: {UserID: u, Timestamp: context..t, EventType: e}",
     "key 'sources.0.columns.Timestamp': 'context..t' has an empty segment: a dotted path names one key at each "
     "level, e.g. context.page.url"),
    ("format: ndjson\n    csv: {header: false}\n    columns: {UserID: u, Timestamp: t, EventType: e}",
     "key 'sources.0.csv': CSV options do not apply to format ndjson: remove them"),
])
def test_a_json_lines_source_mistake_is_one_line_naming_the_key(tmp_path, source, message):
    assert message in refused(tmp_path, f"sources:\n  - name: s\n    {source}\n")
