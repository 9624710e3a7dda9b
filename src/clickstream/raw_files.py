"""The raw folder as bronze sees it: which files there are, which source each belongs to, what each holds.

Files are listed by the pipeline and handed to the engines as exact paths, never as patterns. Each file is read
once per change for its SHA-256 and a few facts that decide how it is ingested: whether it is text CSV at all,
whether it is valid UTF-8 (Spark would replace invalid bytes silently, DuckDB refuses them: such a file is split
by `csv_lines` for both), how many lines it has and whether it ends with a line break (for appended files).
Bronze first copies the file into a snapshot and reads only that: the bytes hashed are the bytes counted and
parsed, whatever is written to the raw file meanwhile.
"""
from __future__ import annotations

import codecs
import csv
import errno
import fnmatch
import gzip
import hashlib
import os
import stat as stat_kind
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from clickstream.report.escape import shorten
from clickstream.config import CsvOptions, Source
from clickstream.csv_lines import (MAX_RECORD_BYTES, HeaderTooLong, Split, header_record, line_count, open_raw,
                                   split_file)
from clickstream.json_lines import split_json_file

# Files in raw/ that are never ingested nor warned about: hidden files and files still being written under a
# temporary name (write `name.csv.tmp`, then rename it to `name.csv` when complete).
IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")
_HEAD_BYTES = 1 << 16
_BLOCK = 1 << 20

_MAGIC = [
    (b"\x1f\x8b", "gzip-compressed data; name the file .csv.gz to have it read decompressed"),
    (b"PK\x03\x04", "a ZIP archive (an Excel workbook?); export it as UTF-8 CSV"),
    (b"PAR1", "a Parquet file, not CSV"),
    (b"\xff\xfe\x00\x00", "UTF-32 text; save it as UTF-8"),
    (b"\x00\x00\xfe\xff", "UTF-32 text; save it as UTF-8"),
    (b"\xff\xfe", "UTF-16 text; save it as UTF-8"),
    (b"\xfe\xff", "UTF-16 text; save it as UTF-8"),
    (b"%PDF", "a PDF document, not CSV"),
]


def is_listed(relative: str) -> bool:
    """Whether a path under raw/ is a candidate at all (not hidden, not a file still being written)."""
    parts = relative.split("/")
    return not any(part.startswith(".") for part in parts) and not relative.lower().endswith(IN_PROGRESS_SUFFIXES)


LINKED_AGAIN = ("a link to a folder under raw/ or listed already: its files are listed once, where they are (a "
                "link back to a folder above it would list them again and again)")


def raw_folders(raw_dir: Path, skipped: dict[str, str] | None = None) -> Iterator[tuple[str, list[str], list[str]]]:
    """`os.walk` of raw/, hidden folders left out and symbolic links followed, each folder once: a link to a
    folder under raw/ itself, or to one already walked (a link back up makes a loop), is not followed; it is
    added to `skipped` (relative path -> why)."""
    top = os.path.realpath(raw_dir)
    walked = {top}  # the folders walked or about to be, as real paths
    for root, dirs, files in os.walk(raw_dir, followlinks=True):
        names = sorted(d for d in dirs if not d.startswith("."))
        links = {d for d in names if os.path.islink(os.path.join(root, d))}
        passed = set()
        # a folder's own subfolders first: a link beside one to it is the one not followed
        for name in [d for d in names if d not in links] + [d for d in names if d in links]:
            real = os.path.realpath(os.path.join(root, name))
            if name in links and (real.startswith(top + os.sep) or real in walked):
                if skipped is not None:
                    skipped[(Path(root) / name).relative_to(raw_dir).as_posix()] = LINKED_AGAIN
                continue
            walked.add(real)
            passed.add(name)
        dirs[:] = [d for d in names if d in passed]
        yield root, dirs, files


def list_files(raw_dir: Path) -> tuple[list[str], dict[str, str]]:
    """Every candidate file under raw/ (recursively, symbolic links followed, each folder once: `raw_folders`), as
    sorted relative paths; and the candidates that are not regular files (a FIFO, a device, a dangling link, a
    link to a folder walked already), each with what it is."""
    found = []
    special: dict[str, str] = {}
    for root, dirs, files in raw_folders(raw_dir, special):
        base = Path(root).relative_to(raw_dir)
        for name in files:
            relative = (base / name).as_posix()
            if not is_listed(relative):
                continue
            what = not_regular(Path(root) / name)
            if what is None:
                found.append(relative)
            else:
                special[relative] = what
    return sorted(found), dict(sorted(special.items()))


def not_regular(path: Path) -> str | None:
    """What a path is when it is not a regular file (it is never opened: a FIFO would block), or None."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        try:
            return f"a symbolic link to nothing ({shorten(os.readlink(path))!r} does not exist)"
        except OSError:
            return None  # gone since it was listed
    except OSError as exc:
        return f"a path that cannot be followed ({exc.strerror})"
    if stat_kind.S_ISREG(info.st_mode) or stat_kind.S_ISDIR(info.st_mode):
        return None
    if stat_kind.S_ISFIFO(info.st_mode):
        kind = "a named pipe (FIFO)"
    elif stat_kind.S_ISCHR(info.st_mode) or stat_kind.S_ISBLK(info.st_mode):
        kind = "a device"
    elif stat_kind.S_ISSOCK(info.st_mode):
        kind = "a socket"
    else:
        kind = "a special file"
    if path.is_symlink():
        kind += f" (through a symbolic link to {shorten(os.readlink(path))!r})"
    return f"{kind}, not a regular file: never read"


def glob_matches(pattern: str, relative: str) -> bool:
    """Whether `pattern` names the file `relative` (under raw/, parts joined by '/') as pathlib's glob would: each
    part of the pattern matches one folder or file name by fnmatch's rules, case counting; a `**` part matches any
    number of folders, none included; a pattern ending in '/' names folders only."""
    parts = _glob_parts(pattern)
    return parts is not None and _parts_match(parts, tuple(relative.split("/")))


@lru_cache(maxsize=256)
def _glob_parts(pattern: str) -> tuple[str, ...] | None:
    """A glob's parts, split once for every file it is matched against; None for one naming folders only."""
    if pattern.endswith("/"):
        return None
    return tuple(part for part in pattern.split("/") if part not in ("", "."))


def _parts_match(parts: tuple[str, ...], names: tuple[str, ...]) -> bool:
    if not parts:
        return not names
    if parts[0] == "**":  # folders only: the file's own name is left for the parts after it
        return any(_parts_match(parts[1:], names[skipped:]) for skipped in range(len(names)))
    return bool(names) and fnmatch.fnmatchcase(names[0], parts[0]) and _parts_match(parts[1:], names[1:])


def glob_specificity(pattern: str) -> int:
    """How much of a glob is literal: where globs overlap, the file goes to the source whose glob says most."""
    literal, inside = 0, False
    for char in pattern:
        if char == "[":
            inside = True
        elif char == "]" and inside:
            inside = False
        elif not inside and char not in "*?":
            literal += 1
    return literal


def match_sources(raw_dir: Path, sources: list[Source],
                  listed: list[str] | None = None) -> tuple[dict[str, Source], dict[str, str]]:
    """Each matched file's source, and the files refused because two sources' globs match them equally.

    The globs are matched against the files `list_files` lists (`listed`, else listed here), so a glob reaches a
    linked folder as the listing does, and nothing the listing leaves out. A glob also matches the
    gzip-compressed form of what it names (`*.csv` matches `x.csv.gz`).
    """
    files = list_files(raw_dir)[0] if listed is None else listed
    matches: dict[str, list[Source]] = {}
    for source in sources:
        for relative in files:
            if glob_matches(source.glob, relative) or glob_matches(source.glob + ".gz", relative):
                matches.setdefault(relative, []).append(source)
    owners: dict[str, Source] = {}
    ambiguous: dict[str, str] = {}
    for relative, candidates in sorted(matches.items()):
        best = max(glob_specificity(s.glob) for s in candidates)
        top = [s for s in candidates if glob_specificity(s.glob) == best]
        if len(top) == 1:
            owners[relative] = top[0]
        else:
            names = " and ".join(f"'{s.name}' ({s.glob})" for s in top)
            ambiguous[relative] = f"matched equally by the globs of sources {names}; make one of them more specific"
    return owners, ambiguous


@dataclass(frozen=True)
class Scan:
    """What one read of a raw file tells: its identity, and the facts that decide how it is ingested."""

    size: int
    mtime_ns: int
    sha256: str
    prefix_sha256: str | None  # of its first `prefix_size` bytes, when asked (an appended file starts so)
    lines: int  # line breaks (LF, CRLF or a lone CR) in the text
    ends_with_break: bool
    is_utf8: bool
    refusal: str | None  # why the file is not text CSV at all, or None
    records: int | None  # data records (header and blank lines aside), counted apart from any engine; None: unknown
    unit_separator: bool  # the text holds chr(31) somewhere (see sql.key_of)
    longest_record: int = 0  # bytes of its longest record (of its longest line where records are not counted)

    @property
    def needs_splitting(self) -> bool:
        """Read by csv_lines rather than by an engine: bytes that are not UTF-8 (Spark would replace them, DuckDB
        refuses them), or a record longer than csv_lines.MAX_RECORD_BYTES (refused alone there)."""
        return not self.is_utf8 or self.longest_record > MAX_RECORD_BYTES


def scan(path: Path, prefix_size: int | None = None, quote: str | None = '"', escape: str | None = '"',
         header: bool = True, snapshot: Path | None = None, limit: int | None = None) -> Scan:
    """Read a file once: SHA-256 (and of a prefix), line and record counts, UTF-8 validity, and whether it is
    CSV at all. Records are counted only where the escape is the quote doubled (their parity then tells whether a
    line break is inside a quoted field); without a `header`, the first line is a record too.

    `snapshot`: a new file that first receives a copy of the file, as long as it was when opened; the facts are
    those of the copy, which every later read of this version reads. `limit`: read only the first `limit`
    bytes. Raises OSError if the file cannot be opened or read, or is not a regular file (it is opened without
    blocking, so a FIFO put in its place is never waited for)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with open(descriptor, "rb") as source:
        # the time of the open file, before its bytes are read: a write during the read makes it read again
        stat = os.fstat(source.fileno())
        if not stat_kind.S_ISREG(stat.st_mode):
            raise IsADirectoryError(f"not a regular file: {path}")
        if snapshot is None:
            return _scan_open(source, path, stat.st_mtime_ns, prefix_size, quote, escape, header, limit)
        _copy(source, snapshot, stat.st_size if limit is None else min(limit, stat.st_size))
    with snapshot.open("rb") as copied:
        return _scan_open(copied, snapshot, stat.st_mtime_ns, prefix_size, quote, escape, header, None)


def _copy(source: IO[bytes], target: Path, size: int) -> None:
    """Copy the first `size` bytes of an open file into a new file, in the kernel where it can (a reflink where
    the file system shares blocks), else block by block."""
    done = 0
    with target.open("xb") as copy:
        try:
            while done < size:
                copied = os.copy_file_range(source.fileno(), copy.fileno(), size - done, offset_src=done)
                if copied == 0:
                    return  # cut short meanwhile
                done += copied
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
        source.seek(done)
        copy.seek(done)
        while done < size:
            block = source.read(min(_BLOCK, size - done))
            if not block:
                return
            copy.write(block)
            done += len(block)


def _scan_open(handle: IO[bytes], path: Path, mtime_ns: int, prefix_size: int | None, quote: str | None,
               escape: str | None,
               header: bool, limit: int | None) -> Scan:
    """The facts of an open file's bytes (see `scan`); a gzip file's text is read from `path` again."""
    digest = hashlib.sha256()
    prefix_digest = None
    done = 0
    is_gzip = path.name.lower().endswith(".gz")
    text = _TextFacts(quote if quote is not None and escape == quote and len(quote.encode()) == 1 else None)
    text.header_lines = 1 if header else 0
    while limit is None or done < limit:
        block = handle.read(_BLOCK if limit is None else min(_BLOCK, limit - done))
        if not block:
            break
        if prefix_size is not None and prefix_digest is None and done + len(block) >= prefix_size:
            cut = prefix_size - done
            digest.update(block[:cut])
            prefix_digest = digest.copy().hexdigest()
            digest.update(block[cut:])
        else:
            digest.update(block)
        done += len(block)
        if not is_gzip:
            text.feed(block)
    if prefix_size is not None and prefix_digest is None and done == prefix_size:
        prefix_digest = digest.hexdigest()
    refusal = None
    if is_gzip:
        try:
            with gzip.open(path, "rb") as unpacked:
                for block in iter(lambda: unpacked.read(_BLOCK), b""):
                    text.feed(block)
        except (OSError, EOFError, zlib.error) as exc:
            refusal = f"not a readable gzip file ({exc})"
    text.finish()
    refusal = refusal or _sniff(text.head, path.name)
    return Scan(done, mtime_ns, digest.hexdigest(), prefix_digest if prefix_size else None,
                text.lines, text.ends_with_break, text.is_utf8, refusal, text.records(), text.unit_separator,
                text.longest_record())


class _TextFacts:
    """Line breaks, records, UTF-8 validity and the first bytes of a stream of text blocks.

    A record ends at a line feed outside quotes: with the quote doubled as its escape, a line feed is inside a
    quoted field exactly when an odd number of quotes comes before it. Blank lines are no records, the first
    line is the header, and text after the last line break is one more record. (A lone CR ending a line is
    not counted here: such a file's count differs from the engine's, and the file is split by csv_lines.)
    """

    def __init__(self, quote: str | None) -> None:
        self.head = b""
        self.lines = 0
        self.is_utf8 = True
        self.ends_with_break = False
        self.unit_separator = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._last = b""
        self._quote = ord(quote) if quote else None
        self._quote_byte = quote.encode() if quote else b""
        self._quotes = 0  # quotes so far
        self._boundaries = 0  # line feeds outside quotes
        self._blank = 0  # of which ending a line with nothing but an optional CR
        self._line_start = 0  # where the line after the last boundary starts (offset in the stream)
        self._offset = 0
        self._tail = b""  # the text after the last boundary, up to a few bytes (is it blank?)
        self.header_lines = 1  # lines before the first record
        self._longest = 0  # bytes of the longest record ended so far (of the longest line without counting)
        self._feed_start = 0  # where the line after the last line feed starts

    def feed(self, block: bytes) -> None:
        if not block:
            return
        if len(self.head) < _HEAD_BYTES:
            self.head += block[:_HEAD_BYTES - len(self.head)]
        feeds = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 0x0A)
        self.unit_separator = self.unit_separator or block.find(b"\x1f") >= 0
        has_carriage = block.find(b"\r") >= 0
        self.lines += len(feeds)
        if has_carriage:  # lone CRs end lines too; a CRLF split between blocks counts once
            self.lines += block.count(b"\r") - block.count(b"\r\n") - (block[-1:] == b"\r")
        if self._last == b"\r" and block[:1] != b"\n":
            self.lines += 1
        if self.is_utf8 and not (block.isascii() and not self._decoder.getstate()[0]):  # ASCII: valid, no copy
            try:
                self._decoder.decode(block)
            except UnicodeDecodeError:
                self.is_utf8 = False
        if self._quote is not None:
            self._count_records(block, feeds, has_carriage)
        elif len(feeds):
            starts = np.concatenate(([self._feed_start - self._offset], feeds[:-1] + 1))
            self._longest = max(self._longest, int((feeds - starts).max()))
            self._feed_start = self._offset + int(feeds[-1]) + 1
        self._last = block[-1:]
        self._offset += len(block)

    def _count_records(self, block: bytes, feeds: np.ndarray, has_carriage: bool) -> None:
        if block.find(self._quote_byte) < 0:  # no quote in the block: every feed is on the same side of one
            outside = feeds if self._quotes % 2 == 0 else feeds[:0]
        else:
            quotes = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == self._quote)
            outside = feeds[((np.searchsorted(quotes, feeds) + self._quotes) & 1) == 0]
            self._quotes += len(quotes)
        if len(outside):
            starts = np.concatenate(([self._line_start - self._offset], outside[:-1] + 1))
            length = outside - starts
            carriage = np.zeros(len(outside), dtype=bool)
            if has_carriage:
                has_byte = outside >= 1
                carriage[has_byte] = np.frombuffer(block, dtype=np.uint8)[outside[has_byte] - 1] == 0x0D
            if outside[0] == 0 and self._last == b"\r":  # the CR is the last byte of the block before
                carriage[0] = True
            self._blank += int(np.count_nonzero((length == 0) | ((length == 1) & carriage)))
            self._longest = max(self._longest, int(length.max()))
            self._boundaries += len(outside)
            self._line_start = self._offset + int(outside[-1]) + 1
            self._tail = block[int(outside[-1]) + 1:][:2]
        elif len(self._tail) < 2:
            self._tail += block[:2 - len(self._tail)]

    def records(self) -> int | None:
        if self._quote is None or self._offset == 0:
            return None if self._quote is None else 0
        after_last = self._offset > self._line_start and self._tail not in (b"", b"\r")
        lines = self._boundaries + (1 if after_last else 0)
        blank = self._blank
        return max(lines - blank - self.header_lines, 0)  # the header (if any) is the first line

    def longest_record(self) -> int:
        """Bytes of the longest record (line, without counting records), its last line feed aside."""
        start = self._line_start if self._quote is not None else self._feed_start
        return max(self._longest, self._offset - start)

    def finish(self) -> None:
        self.ends_with_break = self._last in (b"\n", b"\r")
        if self._last == b"\r":  # a CR ending the text ends a line
            self.lines += 1
        if self.is_utf8:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self.is_utf8 = False


def _sniff(head: bytes, name: str) -> str | None:
    """Why bytes that start a file are not text CSV, or None."""
    if not head:
        return None
    for magic, reason in _MAGIC:
        if head.startswith(magic):
            if magic == b"\x1f\x8b" and name.lower().endswith(".gz"):
                continue
            return reason
    if b"\x00" in head:
        return "binary content (NUL bytes): not text CSV"
    first = head.split(b"\n", 1)[0]
    try:
        first.decode("utf-8-sig")
    except UnicodeDecodeError:
        # cut inside a multi-byte character only if the header line is longer than the bytes read
        if len(first) < len(head) or len(head) < _HEAD_BYTES:
            return "the header line is not UTF-8 text (save the file as UTF-8)"
    return None


def scan_options(source: Source, relative: str) -> dict[str, Any]:
    """How `scan` reads a source's file: its CSV quoting and header; a JSON-lines file's records are counted
    by json_lines instead (a line is a record there, and quotes are escaped with a backslash)."""
    if source.format_of(relative) == "ndjson":
        return {"quote": None, "escape": None, "header": False}
    return {"quote": source.csv.quote, "escape": source.csv.escape, "header": source.csv.header}


def header_line(path: Path, options: CsvOptions = CsvOptions()) -> bytes:
    """The header record of a file with its line break (LF, CRLF or a lone CR), as the engines read it: its first
    line, and the lines after it while a quoted name holds a line break. Raises HeaderTooLong."""
    with open_raw(path) as handle:
        return header_record(handle, options)


def read_header(path: Path, source: Source) -> tuple[list[str] | None, str | None]:
    """The file's column names and None, or None and why the header is refused (one line, with a fix)."""
    if not source.csv.header:
        return read_positions(path, source)
    options = source.csv
    try:
        line = header_line(path, options)
    except HeaderTooLong as exc:
        return None, str(exc)
    if not line:
        return [], None  # an empty file: no header, no rows
    try:
        text = line.decode("utf-8-sig").rstrip("\r\n")
        header = next(csv.reader([text], delimiter=options.delimiter, quotechar=options.quote), [])
    except (csv.Error, UnicodeDecodeError) as exc:
        return None, f"unreadable header line ({exc})"
    header = [column.strip() for column in header]
    if not any(header):
        return None, "the first line is blank; expected a header naming the columns"
    expected = [column for column in source.columns.values() if column]
    if len(header) == 1 and len(expected) > 1:
        hint = _delimiter_hint(text, options.delimiter)
        return None, (f"the header has one column ({shorten(header[0])!r}), not the {len(expected)} source "
                      f"'{source.name}' maps{hint}")
    duplicated = sorted({column for column in header if header.count(column) > 1})
    if duplicated:
        return None, f"duplicate column names in the header: {shorten(str(duplicated))}"
    missing = sorted(set(expected) - set(header))
    if missing:
        hint = "; dotted paths name the values of JSON lines: set sources[].format: ndjson?" if any(
            "." in str(column) for column in missing) else ""
        return None, (f"missing column(s) {shorten(str(missing))} required by source '{source.name}' "
                      f"(header has {shorten(str(header))}){hint}")
    return header, None


def read_positions(path: Path, source: Source) -> tuple[list[str] | None, str | None]:
    """A file without a header: its fields named by position ('0', '1', ...) as its first line splits, and None;
    or None and why it is refused: a position the source maps beyond those fields (like a missing column)."""
    options = source.csv
    try:
        line = header_line(path, options)  # the first record, a quoted line break included
    except HeaderTooLong as exc:
        return None, str(exc)
    if not line:
        return [], None  # an empty file: no rows
    try:
        text = line.decode("utf-8-sig").rstrip("\r\n")
        fields = next(csv.reader([text], delimiter=options.delimiter, quotechar=options.quote), [])
    except (csv.Error, UnicodeDecodeError) as exc:
        return None, f"unreadable first line ({exc})"
    beyond = sorted((position, canonical) for canonical, position in source.columns.items()
                    if isinstance(position, int) and position >= len(fields))
    if beyond:
        named = ", ".join(f"{position} ({canonical})" for position, canonical in beyond)
        hint = _delimiter_hint(text, options.delimiter) if len(fields) == 1 else ""
        return None, (f"column position(s) {named} mapped by source '{source.name}' are beyond the {len(fields)} "
                      f"field(s) of the first line (csv.header: false; positions count from 0){hint}")
    return [str(position) for position in range(len(fields))], None


def _delimiter_hint(text: str, delimiter: str) -> str:
    counts = {candidate: text.count(candidate) for candidate in ";,\t|" if candidate != delimiter}
    best = max(counts, key=lambda c: counts[c])
    if counts[best]:
        shown = "\\t" if best == "\t" else best
        return f"; the line holds '{shown}': set sources[].csv.delimiter to '{shown}'?"
    return f"; is sources[].csv.delimiter ({delimiter!r}) right?"


def split_raw_file(path: Path, relative: str, source: Source, fields: list[str], canonical: IO[str], offset: int = 0,
                  first_line: int = 1) -> Split:
    """Read a raw file (from `offset`, an appended part) through csv_lines or json_lines, as its source's format
    says: its well-formed records as canonical CSV of `fields` (a CSV file's header or positions; a JSON-lines
    file's mapped paths and `extra`), its malformed lines aside. The header line is skipped; `first_line` is the
    number of the line at `offset` (bronze and the ledger read a file alike); `relative` its name in raw/."""
    if source.format_of(relative) == "ndjson":
        return split_json_file(path, fields[:-1], canonical, skip_bytes=offset, first_line=first_line)
    header = header_line(path, source.csv) if source.csv.header else b""
    return split_file(path, source.csv, len(fields), canonical, skip_bytes=offset or len(header),
                      first_line=first_line if offset else 1 + line_count(header))
