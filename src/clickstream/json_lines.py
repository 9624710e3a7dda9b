"""Reading a JSON-lines file (one JSON object a line) into canonical CSV, the same way for every engine.

Every line is read here, not by an engine, so both engines read the same canonical CSV (csv_lines' format) and
get the same values: the value at each mapped dotted path (`properties.price`), then `extra`, a JSON object of
every other leaf's dotted path to its text. Values keep their text: a number as it is written (`1.50`, never
`1.5`), true and false as text, a nested object or an array as its JSON text (compact, numbers as written); a
JSON null, a missing key or a path into something that is not an object is NULL.

A line that is not a JSON object is malformed, like a CSV line that does not split into the header's fields: kept
with its line number (the file's first line is 1), its text and why (`malformed_json`: not JSON at all, e.g.
broken or cut short; `malformed_not_object`: an array, a string, a number, true, false or null). A JSON string
cannot hold a line break, so a record is one line: the records are counted here, apart from the engine, and a
line longer than csv_lines.MAX_RECORD_BYTES is `malformed_too_long`, read in bounded memory. Blank lines are no
records.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO, Any

from clickstream.csv_lines import (INVALID_UTF8, MAX_RECORD_BYTES, SHOWN_BYTES, TOO_LONG, Malformed, Split, open_raw,
                                  skip_ahead)

NOT_JSON = "malformed_json"  # a line that is not JSON (broken, cut short, NaN, a lone surrogate)
NOT_OBJECT = "malformed_not_object"  # JSON, but not an object: an array, a string, a number, true, false, null
JSON_REASONS = (NOT_JSON, NOT_OBJECT)
_SKIP_BLOCK = 1 << 20


class _Literal(str):
    """A JSON number, as its text in the file."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_int=_Literal, parse_float=_Literal, parse_constant=_no_constant)
_ABSENT = object()


def json_text(value: Any) -> str:
    """A parsed value written back as compact JSON, its numbers as they were written."""
    if isinstance(value, _Literal):
        return str.__str__(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(key, ensure_ascii=False)}:{json_text(item)}"
                              for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(json_text(item) for item in value) + "]"
    return "null" if value is None else "true" if value is True else "false"


def value_text(value: Any) -> str | None:
    """A value as bronze keeps it: text as it is, a number as written, anything else as its JSON text."""
    if value is None:
        return None
    if isinstance(value, str):
        return str.__str__(value)
    return json_text(value)


def lookup(record: dict, path: str) -> Any:
    """The value at a dotted path: a key holding the dots itself first, else one key a level; None where a level
    is missing or not an object."""
    if path in record:
        return record[path]
    head, _, rest = path.partition(".")
    inner = record.get(head)
    return lookup(inner, rest) if rest and isinstance(inner, dict) else None


def _leaves(record: dict, prefix: str, mapped: set[str], out: dict[str, str | None]) -> None:
    """Every leaf's dotted path and text, those under a mapped path aside (an empty object is a leaf: `{}`)."""
    for key, value in record.items():
        path = prefix + key
        if path in mapped:
            continue
        if isinstance(value, dict) and value:
            _leaves(value, path + ".", mapped, out)
        else:
            out[path] = value_text(value)


def _values(record: dict, paths: list[str]) -> list[str | None]:
    """The text at each path (a key of the record itself, else followed level by level)."""
    values = []
    for path in paths:
        value = record.get(path, _ABSENT)
        if value is _ABSENT:
            value = lookup(record, path)
        values.append(value if type(value) is str else value_text(value))
    return values


def extra_text(record: dict, mapped: set[str]) -> str | None:
    """The leaves no mapped path takes, as a flat JSON object of text (None when there is none)."""
    if mapped.issuperset(record):
        return None
    leaves: dict[str, str | None] = {}
    _leaves(record, "", mapped, leaves)
    return json.dumps(leaves, ensure_ascii=False, separators=(",", ":")) if leaves else None


def canonical_header(paths: list[str]) -> list[str]:
    """The fields of the canonical file: each mapped path once, in order, then `extra` (named by '')."""
    return [*dict.fromkeys(paths), ""]


def split_json_file(path: Path, paths: list[str], canonical: IO[str], skip_bytes: int = 0,
                    first_line: int = 1) -> Split:
    """Read the lines of `path` after its first `skip_bytes` bytes (the first numbered `first_line`): write each
    object's values at `paths` and its `extra` to `canonical` (no header), and list the lines that are no
    object. Also tells whether a value holds chr(31) (`Split.unit_separator`)."""
    split = Split()
    writer = csv.writer(canonical, delimiter=",", quotechar='"', doublequote=True, lineterminator="\n",
                        quoting=csv.QUOTE_MINIMAL)
    mapped = set(paths)
    paths = list(dict.fromkeys(paths))
    number = first_line - 1
    with open_raw(path) as handle:
        skip_ahead(handle, skip_bytes)
        while True:
            line = handle.readline(MAX_RECORD_BYTES + 2)
            if not line:
                break
            number += 1
            split.ends_cleanly = line.endswith(b"\n")
            if not split.ends_cleanly and len(line) > MAX_RECORD_BYTES:
                split.ends_cleanly = _rest_of_line(handle)
                split.malformed.append(Malformed(number, TOO_LONG, _shown(line[:SHOWN_BYTES])))
                continue
            row, reason = _row(line, paths, mapped, strip_bom=number == 1)
            if reason is not None:
                split.malformed.append(Malformed(number, reason, _shown(line)))
            elif row is not None:
                writer.writerow(row)
                split.records += 1
                if b"\\u001" in line and any("\x1f" in value for value in row if value):
                    split.unit_separator = True
    return split


def _row(line: bytes, paths: list[str], mapped: set[str], strip_bom: bool) -> tuple[list | None, str | None]:
    """A line's canonical fields, or why it is malformed; (None, None) for a blank line."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None, INVALID_UTF8
    if strip_bom:
        text = text.removeprefix("\ufeff")
    if not text or text.isspace():
        return None, None
    try:
        record = _DECODER.decode(text)
    except (ValueError, RecursionError):
        return None, NOT_JSON
    if not isinstance(record, dict):
        return None, NOT_OBJECT
    try:
        row = _values(record, paths)
        row.append(extra_text(record, mapped))
    except RecursionError:
        return None, NOT_JSON
    if "\\u" in text:  # an escaped lone surrogate is no UTF-8 text
        try:
            "".join(value for value in row if value).encode("utf-8")
        except UnicodeEncodeError:
            return None, NOT_JSON
    return row, None


def _rest_of_line(handle: IO[bytes]) -> bool:
    """Read past the rest of a line too long to keep; whether it ended with a line feed."""
    while True:
        piece = handle.readline(_SKIP_BLOCK)
        if not piece:
            return False
        if piece.endswith(b"\n"):
            return True


def _shown(line: bytes) -> str:
    """A line's text as it was, its invalid bytes as \\xNN."""
    return line.decode("utf-8", "backslashreplace")
