"""Splitting a raw CSV file into well-formed records and malformed lines, the same way for every engine.

The engines read a raw file directly while it is well-formed. When one refuses it (a short or long row, an
unterminated quote, a stray quote, invalid UTF-8, a record longer than `MAX_RECORD_BYTES`), this module reads it
instead: every well-formed record is written again as canonical CSV (comma, double quotes) that both engines read
to the same values, and every malformed record is kept with its line number, its raw text and why it was refused.
The rest of the file proceeds; the malformed lines go to quarantine.

A record is what Python's `csv` module reads in strict mode with the source's delimiter, quote and escape: the
same records DuckDB and Spark accept, checked line by line in tests/test_csv_lines.py. A record that spans
several lines and turns out malformed (a quote left open swallows the lines after it) is refused as its first
line alone, and the lines after it are read again, so one broken line never takes the rest of the file with it.

A record longer than `MAX_RECORD_BYTES` is one malformed record (`malformed_too_long`), never several: it ends
where its quotes are balanced at a line break (the rule `raw_files.scan` counts records by), and only its first
`SHOWN_BYTES` are kept. No line is ever held whole beyond that limit, so a file of one endless line is read in
linear time and bounded memory. If the quote it opened is never closed, or closed where no field can end (another
stray quote), it too is refused as its first line alone, and the lines after it are read again.
"""
from __future__ import annotations

import csv
import gzip
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator

from clickstream.config import CsvOptions

# The longest record read (its bytes, its last line feed aside): longer ones are malformed_too_long. The same
# limit decides, from `raw_files.scan`, that a file holding a longer record is split here rather than read by an
# engine, so a record is kept or refused the same way on every path.
MAX_RECORD_BYTES = 1 << 20
# What the engines are told to accept (DuckDB's `max_line_size`, Spark's `maxCharsPerColumn`): a record this
# module keeps may grow when written as canonical CSV (a quote doubled, a field quoted), to at most 3 times its
# bytes and 3 more; the engines' own defaults (DuckDB 2,000,000 bytes a record, Spark unlimited) are not relied on.
ENGINE_MAX_RECORD_BYTES = 4 * MAX_RECORD_BYTES
SHOWN_BYTES = 1024  # of a record too long, the first bytes kept as its raw text
_CHUNK = 1 << 20

# Python's csv refuses a field of more than 131,072 characters; a record passed to it is at most MAX_RECORD_BYTES.
csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES))

# Why a line was refused (its quarantine reason).
SHORT_ROW = "malformed_short_row"  # fewer fields than the header
LONG_ROW = "malformed_long_row"  # more fields than the header
UNTERMINATED_QUOTE = "malformed_unterminated_quote"  # a quoted field never closed
BAD_QUOTING = "malformed_quoting"  # a quote where the field cannot have one (`"x"y`)
INVALID_UTF8 = "malformed_invalid_utf8"  # bytes that are not UTF-8
TOO_LONG = "malformed_too_long"  # more than MAX_RECORD_BYTES
MALFORMED_REASONS = (SHORT_ROW, LONG_ROW, UNTERMINATED_QUOTE, BAD_QUOTING, INVALID_UTF8, TOO_LONG)

# The format of the canonical files this module writes, as the engines are told to read them.
CANONICAL_CSV = CsvOptions(delimiter=",", quote='"', escape='"', multiline=True)


@dataclass(frozen=True)
class Malformed:
    line: int  # the line number of the record's first line in the raw file (the header is line 1)
    reason: str
    raw_text: str  # the record's lines as they were (of a record too long, its first bytes), invalid bytes as \xNN


@dataclass
class Split:
    """What `split_file` found: the well-formed records written, the malformed ones, how the part read ended."""

    records: int = 0  # well-formed data records written to the canonical file
    malformed: list[Malformed] = field(default_factory=list)
    ends_cleanly: bool = True  # the part read ends with a line break, outside any quoted field
    unit_separator: bool = False  # a value written holds chr(31) the raw bytes did not (a JSON \u001f escape)


def open_raw(path: Path) -> IO[bytes]:
    """A raw file's bytes: gzip-compressed files (`.gz`) are read decompressed."""
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def quote_counter(options: CsvOptions) -> Callable[[bytes], int]:
    """The quotes of some bytes that open or close a field: all of them where the quote is doubled to escape
    it; with another escape, those not right after it (an escape escaping itself before a quote is not told
    apart, nor an escape and its quote split between two reads)."""
    quote = options.quote.encode()
    if options.escape == options.quote:
        return lambda data: data.count(quote)
    escaped = options.escape.encode() + quote
    return lambda data: data.count(quote) - data.count(escaped)


@dataclass
class _Line:
    """A physical line: its bytes (only the first SHOWN_BYTES of one longer than the limit), size and quotes."""

    data: bytes
    size: int  # bytes, its line break included
    quotes: int
    offset: int = 0  # of its first byte, from where the reading started
    number: int = 0
    is_whole: bool = True
    ends_with_break: bool = True

    @property
    def is_too_long(self) -> bool:
        return not self.is_whole or self.size - self.data.endswith(b"\n") > MAX_RECORD_BYTES

    @property
    def after(self) -> "_Line":
        """Where the line after it starts."""
        return _Line(b"", 0, 0, self.offset + self.size, self.number + 1)


def _physical(handle: IO[bytes], limit: int, count_quotes: Callable[[bytes], int]) -> Iterator[_Line]:
    """The lines of a byte stream ending in LF, CRLF or a lone CR (as the engines split them), each with its break.

    Linear in the stream: a line is gathered as a list of pieces, and a line longer than `limit` bytes keeps its
    first SHOWN_BYTES only (its size and quotes are still counted).
    """
    parts: list[bytes] = []
    size = quotes = offset = 0
    whole = True
    carriage = False  # the line ends in a CR that was the last byte read: an LF may follow

    def add(piece: bytes) -> None:
        nonlocal size, quotes, whole
        size += len(piece)
        quotes += count_quotes(piece)
        if whole:
            parts.append(piece)
            if size > limit:
                whole = False
                parts[:] = [b"".join(parts)[:SHOWN_BYTES]]

    def done(ends: bool) -> _Line:
        nonlocal parts, size, quotes, offset, whole
        line = _Line(b"".join(parts), size, quotes, offset, is_whole=whole, ends_with_break=ends)
        offset += size
        parts, size, quotes, whole = [], 0, 0, True
        return line

    for chunk in iter(lambda: handle.read(_CHUNK), b""):
        start, length = 0, len(chunk)
        if carriage:
            carriage = False
            if chunk[:1] == b"\n":
                add(b"\n")
                start = 1
            yield done(True)
        next_cr, next_lf = chunk.find(b"\r", start), chunk.find(b"\n", start)
        while start < length:
            if 0 <= next_cr < start:
                next_cr = chunk.find(b"\r", start)
            if 0 <= next_lf < start:
                next_lf = chunk.find(b"\n", start)
            if next_cr < 0 and next_lf < 0:
                add(chunk[start:])
                break
            if next_lf >= 0 and (next_cr < 0 or next_lf < next_cr):
                end = next_lf + 1
            elif next_cr + 1 == length:  # a CR ending the chunk: its LF may start the next one
                add(chunk[start:])
                carriage = True
                break
            else:
                end = next_cr + 2 if chunk[next_cr + 1:next_cr + 2] == b"\n" else next_cr + 1
            add(chunk[start:end])
            start = end
            yield done(True)
    if carriage or size:
        yield done(carriage)


class HeaderTooLong(ValueError):
    pass


def header_record(handle: IO[bytes], options: CsvOptions) -> bytes:
    """The header record of a stream: its first line, and the lines after it while a quote it opened is open,
    with their breaks. Raises HeaderTooLong beyond MAX_RECORD_BYTES."""
    count_quotes = quote_counter(options)
    lines, quotes, size = [], 0, 0
    for line in _physical(handle, MAX_RECORD_BYTES + 2, count_quotes):
        lines.append(line.data)
        quotes += line.quotes
        size += line.size
        if not line.is_whole or size - line.data.endswith(b"\n") > MAX_RECORD_BYTES:
            raise HeaderTooLong(f"the header (line 1) is longer than {MAX_RECORD_BYTES:,} bytes, the limit of a record")
        if quotes % 2 == 0:
            break
    return b"".join(lines)


class _TooLong(Exception):
    """Raised to the csv reader by `_Lines` when the record it reads grows beyond MAX_RECORD_BYTES."""


class _Lines:
    """The physical lines of a file, decoded, numbered, with a way to put lines back and to read again from a line.

    Invalid UTF-8 bytes become lone surrogates (`surrogateescape`), so a line holding them can be told apart
    and shown with its bytes, and nothing stops the reader. A line that would make the record being read longer
    than MAX_RECORD_BYTES is not handed out: `_TooLong` is raised, and the line is `overflow`.
    """

    def __init__(self, path: Path, options: CsvOptions, skip_bytes: int, first_number: int) -> None:
        self._path, self._skip = path, skip_bytes
        self._count_quotes = quote_counter(options)
        self._pending: deque[_Line] = deque()
        self._handle: IO[bytes] | None = None
        self._open(_Line(b"", 0, 0, 0, first_number))
        self.consumed: list[_Line] = []  # the lines handed out since the last `take_consumed`
        self._consumed_size = 0
        self.overflow: _Line | None = None
        self.last: _Line | None = None  # the last line read from the file

    def _open(self, at: _Line) -> None:
        """Read the file from line `at` (its offset and number) on."""
        self.close()
        self._handle = open_raw(self._path)
        skip_ahead(self._handle, self._skip + at.offset)
        self._source = _physical(self._handle, MAX_RECORD_BYTES + 2, self._count_quotes)
        self._pending.clear()
        self._base, self._next_number = at.offset, at.number

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def read(self) -> _Line:
        """The next line, as it is: put back, or from the file."""
        if self._pending:
            return self._pending.popleft()
        line = next(self._source)
        line.offset += self._base
        line.number = self._next_number
        self._next_number += 1
        self.last = line
        return line

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        line = self.read()
        if not line.is_whole or self._consumed_size + line.size - line.data.endswith(b"\n") > MAX_RECORD_BYTES:
            self.overflow = line
            raise _TooLong()
        self.consumed.append(line)
        self._consumed_size += line.size
        return line.data.decode("utf-8", "surrogateescape")

    def take_consumed(self) -> list[_Line]:
        taken, self.consumed, self._consumed_size = self.consumed, [], 0
        if self.overflow is not None:
            taken.append(self.overflow)
            self.overflow = None
        return taken

    def put_back(self, lines: list[_Line]) -> None:
        self._pending.extendleft(reversed(lines))

    def read_again_from(self, line: _Line) -> None:
        self._open(line)


def _text(line: _Line) -> str:
    return line.data.decode("utf-8", "surrogateescape")


def _shown(lines: list[_Line]) -> str:
    """The raw text of lines, line breaks kept, invalid bytes as \\xNN."""
    return b"".join(line.data for line in lines).decode("utf-8", "backslashreplace")


def _shown_start(line: _Line) -> str:
    """The first SHOWN_BYTES of a line, invalid bytes (or a character cut short) as \\xNN."""
    return line.data[:SHOWN_BYTES].decode("utf-8", "backslashreplace")


def _has_invalid_bytes(text: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in text)


def split_file(path: Path, options: CsvOptions, columns: int, canonical: IO[str], skip_bytes: int = 0,
               first_line: int = 2) -> Split:
    """Read the data records of `path`, write the well-formed ones to `canonical`, and list the others.

    `skip_bytes` bytes are skipped first: the header, or the earlier version of an appended file whose
    new lines alone are read; `first_line` is the number of the first line read. The canonical file gets no
    header (the caller writes one). Blank lines are not records, as for the engines.
    """
    lines = _Lines(path, options, skip_bytes, first_line)
    try:
        split = _Splitter(lines, options, columns, canonical).run()
    finally:
        lines.close()
    last = lines.last
    open_at_end = bool(split.malformed) and split.malformed[-1].reason == UNTERMINATED_QUOTE \
        and last is not None and split.malformed[-1].line == last.number
    split.ends_cleanly = (last is None or last.ends_with_break) and not open_at_end
    return split


class _Splitter:
    """One pass of split_file over a file's lines: Python's csv reader on the lines, started again after every
    line it must not have taken (the lines after a first line whose quote was left open are read again)."""

    def __init__(self, lines: _Lines, options: CsvOptions, columns: int, canonical: IO[str]) -> None:
        self.lines, self.options, self.columns = lines, options, columns
        self.split = Split()
        self.writer = csv.writer(canonical, delimiter=",", quotechar='"', doublequote=True, lineterminator="\n",
                                 quoting=csv.QUOTE_MINIMAL)
        self.escape = None if options.escape == options.quote else options.escape
        self.reader = self._reader()

    def _reader(self) -> Iterator[list[str]]:
        return csv.reader(self.lines, delimiter=self.options.delimiter, quotechar=self.options.quote,
                          escapechar=self.escape, doublequote=self.escape is None, strict=True)

    def run(self) -> Split:
        while True:
            try:
                fields, error = next(self.reader), None
            except StopIteration:
                break
            except csv.Error as exc:
                fields, error = None, str(exc)
            except _TooLong:
                self._too_long()
                continue
            record = self.lines.take_consumed()
            if not record:
                break
            self._judged(fields, error, record)
        return self.split

    def _judged(self, fields: list[str] | None, error: str | None, record: list[_Line]) -> None:
        """Write a well-formed record, or list the malformed one (its first line alone if it took more)."""
        reason = _judge(fields, error, record, self.columns, self.options)
        if reason is None:
            if fields:  # a blank line is no record
                self.writer.writerow(fields[:self.columns])
                self.split.records += 1
        elif len(record) > 1:
            self._refuse_first_line(record, reason)
            self.lines.put_back(record[1:])
            self.reader = self._reader()
        else:
            self.split.malformed.append(Malformed(record[0].number, reason, _shown(record)))

    def _too_long(self) -> None:
        """A record grew beyond MAX_RECORD_BYTES: it, or its first line alone, is malformed (_too_long)."""
        record = self.lines.take_consumed()
        ending = _too_long(self.lines, record, self.options)
        if ending == "one record":
            self.split.malformed.append(Malformed(record[0].number, TOO_LONG, _shown_start(record[0])))
        else:
            self._refuse_first_line(record, None)
            if ending == "read again":
                self.lines.read_again_from(record[0].after)
            else:
                self.lines.put_back(record[1:])
        self.reader = self._reader()

    def _refuse_first_line(self, record: list[_Line], reason: str | None) -> None:
        """A quote left open swallowed the lines after the first: refuse it, the rest is read again."""
        first = _text(record[0])
        reason = TOO_LONG if record[0].is_too_long else INVALID_UTF8 if _has_invalid_bytes(first) else \
            UNTERMINATED_QUOTE if _opens_quote(first, self.options) else reason or UNTERMINATED_QUOTE
        self.split.malformed.append(Malformed(record[0].number, reason, _shown_start(record[0]) if reason == TOO_LONG
                                              else _shown(record[:1])))


def _too_long(lines: _Lines, record: list[_Line], options: CsvOptions) -> str:
    """Where a record grown beyond MAX_RECORD_BYTES ends: "one record" (its lines read, up to the line break
    where its quotes are balanced), or, when its first line opened a quote by mistake (a stray quote), its first
    line alone: "first line" (the lines after it are those the csv reader took, put back) or "read again" (the
    file is read again from its second line: the quote closed improperly, or never).

    The lines after the first are followed without being kept only while the quotes are unbalanced at every line
    break since the record's start; a record starting at any of those lines is balanced at its first line break,
    so each line is followed at most once, and read again at most once: linear, but for a gzip file, which is
    decompressed again from its start each time it is read again."""
    quotes = 0
    for index, line in enumerate(record):
        quotes += line.quotes
        if quotes % 2 == 0:
            # a line balancing the quotes of lines before it must close a quoted field
            is_closed = index == 0 or _closes(line, options)
            return "one record" if index == len(record) - 1 and is_closed else "first line"
        if not line.ends_with_break:  # the end of the file, inside quotes
            return "first line" if len(record) > 1 else "one record"
    followed = False
    while True:  # follow the quote, without keeping the lines
        try:
            line = lines.read()
        except StopIteration:
            return "read again" if followed else "first line" if len(record) > 1 else "one record"
        followed = True
        quotes += line.quotes
        if quotes % 2 == 0:
            return "one record" if _closes(line, options) else "read again"
        if not line.ends_with_break:
            return "read again"


def _closes(line: _Line, options: CsvOptions) -> bool:
    """Whether a line that balances the quotes of the record it ends closes a quoted field, as CSV does: its
    first unescaped quote followed by the delimiter or the line break, and the rest of the line well-formed.
    (Otherwise the record's first quote was a stray one, and this line's quote another.)"""
    if not line.is_whole:
        return True  # not held: its bytes were counted only
    text = _text(line)
    quote, escape = options.quote, options.escape
    index = 0
    while True:
        index = min((at for at in (text.find(quote, index), text.find(escape, index)) if at >= 0), default=-1)
        if index < 0:
            return False
        if escape != quote and text[index] == escape or text[index + 1:index + 2] == quote == escape:
            index += 2  # an escaped character
            continue
        break
    rest = text[index + 1:]
    if rest in ("", "\n", "\r", "\r\n"):
        return True
    if rest[0] != options.delimiter:
        return False
    try:
        next(csv.reader([rest[1:]], delimiter=options.delimiter, quotechar=quote,
                        escapechar=None if escape == quote else escape, doublequote=escape == quote, strict=True), None)
    except csv.Error:
        return False
    return True


def skip_ahead(handle: IO[bytes], count: int) -> None:
    """Read past the next `count` bytes (a gzip stream cannot seek)."""
    while count > 0:
        block = handle.read(min(count, 1 << 20))
        if not block:
            break
        count -= len(block)


def _judge(fields: list[str] | None, error: str | None, record: list[_Line], columns: int,
           options: CsvOptions) -> str | None:
    """Why a record is malformed, or None when it is a well-formed record (or a blank line)."""
    if any(_has_invalid_bytes(_text(line)) for line in record):
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


def line_count(data: bytes) -> int:
    """The lines some bytes end (LF, CRLF or a lone CR each end one)."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
