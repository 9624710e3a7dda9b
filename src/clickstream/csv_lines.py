"""Splitting a raw CSV file into well-formed records and malformed lines, the same way for every engine.

The engines read a raw file directly while it is well-formed. When one refuses it (a short or long row, an
unterminated quote, a stray quote, invalid UTF-8), this module reads it instead: every well-formed record is
written again as canonical CSV (comma, double quotes) that both engines read to the same values, and every
malformed record is kept with its line number, its raw text and why it was refused. The rest of the file
proceeds; the malformed lines go to quarantine.

A record is what Python's `csv` module reads in strict mode with the source's delimiter, quote and escape: the
same records DuckDB and Spark accept, checked line by line in tests/test_csv_lines.py. A record that spans
several lines and turns out malformed (a quote left open swallows the lines after it) is refused as its first
line alone, and the lines after it are read again, so one broken line never takes the rest of the file with it.
"""
from __future__ import annotations

import codecs
import csv
import gzip
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

from clickstream.config import CsvOptions

# Why a line was refused (its quarantine reason).
SHORT_ROW = "malformed_short_row"  # fewer fields than the header
LONG_ROW = "malformed_long_row"  # more fields than the header
UNTERMINATED_QUOTE = "malformed_unterminated_quote"  # a quoted field never closed
BAD_QUOTING = "malformed_quoting"  # a quote where the field cannot have one (`"x"y`)
INVALID_UTF8 = "malformed_invalid_utf8"  # bytes that are not UTF-8
MALFORMED_REASONS = (SHORT_ROW, LONG_ROW, UNTERMINATED_QUOTE, BAD_QUOTING, INVALID_UTF8)

# The format of the canonical files this module writes, as the engines are told to read them.
CANONICAL_CSV = CsvOptions(delimiter=",", quote='"', escape='"', multiline=True)


@dataclass(frozen=True)
class Malformed:
    line: int  # the line number of the record's first line in the raw file (the header is line 1)
    reason: str
    raw_text: str  # the record's lines as they were, invalid bytes shown as \xNN


@dataclass
class Split:
    """What `split_file` found: the well-formed records written, the malformed ones, how the part read ended."""

    records: int = 0  # well-formed data records written to the canonical file
    malformed: list[Malformed] = field(default_factory=list)
    ends_cleanly: bool = True  # the part read ends with a line break, outside any quoted field


def open_raw(path: Path) -> IO[bytes]:
    """A raw file's bytes: gzip-compressed files (`.gz`) are read decompressed."""
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


class _Lines:
    """The physical lines of a byte stream (each with its line break), decoded, with a way to put lines back.

    Invalid UTF-8 bytes become lone surrogates (`surrogateescape`), so a line holding them can be told apart
    and shown with its bytes, and nothing stops the reader.
    """

    def __init__(self, lines: Iterator[bytes], first_number: int) -> None:
        self._source = lines
        self._pending: deque[tuple[int, str]] = deque()
        self._next_number = first_number
        self.consumed: list[tuple[int, str]] = []  # the lines handed out since the last `take_consumed`
        self.last: tuple[int, str] = (first_number - 1, "")  # the last line read from the stream

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        if self._pending:
            number, text = self._pending.popleft()
        else:
            raw = next(self._source)
            number, text = self._next_number, raw.decode("utf-8", "surrogateescape")
            self._next_number += 1
            self.last = (number, text)
        self.consumed.append((number, text))
        return text

    def take_consumed(self) -> list[tuple[int, str]]:
        taken, self.consumed = self.consumed, []
        return taken

    def put_back(self, lines: list[tuple[int, str]]) -> None:
        self._pending.extendleft(reversed(lines))


def physical_lines(handle: IO[bytes]) -> Iterator[bytes]:
    """Lines ending in LF, CRLF or a lone CR (as the engines split them), each with its break."""
    carry = b""
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        data = carry + chunk
        carry = b""
        start = 0
        length = len(data)
        while True:
            cr, lf = data.find(b"\r", start), data.find(b"\n", start)
            if cr < 0 and lf < 0:
                break
            if lf >= 0 and (cr < 0 or lf < cr):
                yield data[start:lf + 1]
                start = lf + 1
            elif cr + 1 < length:
                end = cr + 2 if data[cr + 1:cr + 2] == b"\n" else cr + 1
                yield data[start:end]
                start = end
            else:  # a CR at the end of the chunk: its LF may be in the next one
                break
        carry = data[start:]
    if carry:
        yield carry


def _shown(lines: list[tuple[int, str]]) -> str:
    """The raw text of lines, line breaks kept, invalid bytes as \\xNN."""
    text = "".join(line for _, line in lines)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _has_invalid_bytes(text: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in text)


def split_file(path: Path, options: CsvOptions, columns: int, canonical: IO[str], skip_bytes: int = 0,
               first_line: int = 2) -> Split:
    """Read the data records of `path`, write the well-formed ones to `canonical`, and list the others.

    `skip_bytes` bytes are skipped first: the header line, or the earlier version of an appended file whose
    new lines alone are read; `first_line` is the number of the first line read. The canonical file gets no
    header (the caller writes one). Blank lines are not records, as for the engines.
    """
    split = Split()
    writer = csv.writer(canonical, delimiter=",", quotechar='"', doublequote=True, lineterminator="\n",
                        quoting=csv.QUOTE_MINIMAL)
    escape = None if options.escape == options.quote else options.escape

    def reader_of(lines: _Lines) -> Iterator[list[str]]:
        return csv.reader(lines, delimiter=options.delimiter, quotechar=options.quote, escapechar=escape,
                          doublequote=escape is None, strict=True)

    with open_raw(path) as handle:
        _skip(handle, skip_bytes)
        lines = _Lines(physical_lines(handle), first_line)
        reader = reader_of(lines)
        while True:
            try:
                fields, error = next(reader), None
            except StopIteration:
                break
            except csv.Error as exc:
                fields, error = None, str(exc)
            record = lines.take_consumed()
            if not record:
                break
            reason = _judge(fields, error, record, columns, options)
            if reason is None:
                if fields:  # a blank line is no record
                    writer.writerow(fields[:columns])
                    split.records += 1
            elif len(record) > 1:
                # A quote left open swallowed the lines after it: refuse the first line, read the rest again.
                lines.put_back(record[1:])
                first = record[0][1]
                reason = INVALID_UTF8 if _has_invalid_bytes(first) else \
                    UNTERMINATED_QUOTE if _opens_quote(first, options) else reason
                split.malformed.append(Malformed(record[0][0], reason, _shown(record[:1])))
                reader = reader_of(lines)
            else:
                split.malformed.append(Malformed(record[0][0], reason, _shown(record)))
        last_number, last = lines.last
        open_at_end = bool(split.malformed) and split.malformed[-1].reason == UNTERMINATED_QUOTE \
            and split.malformed[-1].line == last_number
        split.ends_cleanly = (last == "" or last.endswith(("\n", "\r"))) and not open_at_end
    return split


def _skip(handle: IO[bytes], count: int) -> None:
    while count > 0:
        block = handle.read(min(count, 1 << 20))
        if not block:
            break
        count -= len(block)


def _judge(fields: list[str] | None, error: str | None, record: list[tuple[int, str]], columns: int,
           options: CsvOptions) -> str | None:
    """Why a record is malformed, or None when it is a well-formed record (or a blank line)."""
    if any(_has_invalid_bytes(text) for _, text in record):
        return INVALID_UTF8
    if error is not None:
        return UNTERMINATED_QUOTE if "unexpected end of data" in error else BAD_QUOTING
    assert fields is not None
    if not fields:
        return None
    if len(record) > 1 and not options.multiline:  # a record is one line: its quote is left open
        return UNTERMINATED_QUOTE
    if len(fields) < columns:
        return SHORT_ROW
    if len(fields) > columns and any(fields[columns:]):
        return LONG_ROW  # empty fields after the last column are no data (DuckDB reads `a,b,c,,` so too)
    return None


def _opens_quote(line: str, options: CsvOptions) -> bool:
    """Whether a line ends inside a quoted field (an odd number of quotes, escapes aside)."""
    if options.escape == options.quote:
        return line.count(options.quote) % 2 == 1
    inside, escaped = False, False
    for char in line:
        if escaped:
            escaped = False
        elif char == options.escape and inside:
            escaped = True
        elif char == options.quote:
            inside = not inside
    return inside


def utf8_checker() -> "codecs.IncrementalDecoder":
    """A strict incremental UTF-8 decoder: feed it blocks, it raises at the first invalid byte."""
    return codecs.getincrementaldecoder("utf-8")("strict")
