"""The raw folder as bronze sees it: which files there are, which source each belongs to, what each holds.

Files are listed by the pipeline and handed to the engines as exact paths, never as patterns. Each file is read
once per change for its SHA-256 and a few facts that decide how it is ingested: whether it is text CSV at all,
whether it is valid UTF-8 (Spark would replace invalid bytes silently, DuckDB refuses them: such a file is split
by `csv_lines` for both), how many lines it has and whether it ends with a line break (for appended files).
"""
from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from clickstream.config import Source
from clickstream.csv_lines import open_raw, physical_lines

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


def list_files(raw_dir: Path) -> list[str]:
    """Every candidate file under raw/ (recursively, symbolic links followed), as sorted relative paths."""
    found = []
    for root, dirs, files in os.walk(raw_dir, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(root).relative_to(raw_dir)
        for name in files:
            relative = (base / name).as_posix()
            if is_listed(relative) and (Path(root) / name).is_file():
                found.append(relative)
    return sorted(found)


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


def match_sources(raw_dir: Path, sources: list[Source]) -> tuple[dict[str, Source], dict[str, str]]:
    """Each matched file's source, and the files refused because two sources' globs match them equally.

    A glob also matches the gzip-compressed form of what it names (`*.csv` matches `x.csv.gz`).
    """
    matches: dict[str, list[Source]] = {}
    for source in sources:
        for pattern in (source.glob, source.glob + ".gz"):
            for path in raw_dir.glob(pattern):
                relative = path.relative_to(raw_dir).as_posix()
                if is_listed(relative) and path.is_file() and source not in matches.setdefault(relative, []):
                    matches[relative].append(source)
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


def scan(path: Path, prefix_size: int | None = None) -> Scan:
    """Read a file once: SHA-256 (and of a prefix), line count, UTF-8 validity, and whether it is CSV at all."""
    stat = path.stat()
    digest = hashlib.sha256()
    prefix_digest = None
    done = 0
    is_gzip = path.name.lower().endswith(".gz")
    text = _TextFacts()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
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
            with gzip.open(path, "rb") as handle:
                for block in iter(lambda: handle.read(_BLOCK), b""):
                    text.feed(block)
        except (OSError, EOFError, zlib.error) as exc:
            refusal = f"not a readable gzip file ({exc})"
    text.finish()
    refusal = refusal or _sniff(text.head, path.name)
    return Scan(stat.st_size, stat.st_mtime_ns, digest.hexdigest(), prefix_digest if prefix_size else None,
                text.lines, text.ends_with_break, text.is_utf8, refusal)


class _TextFacts:
    """Line breaks, UTF-8 validity and the first bytes of a stream of text blocks."""

    def __init__(self) -> None:
        self.head = b""
        self.lines = 0
        self.is_utf8 = True
        self.ends_with_break = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._last = b""

    def feed(self, block: bytes) -> None:
        if not block:
            return
        if len(self.head) < _HEAD_BYTES:
            self.head += block[:_HEAD_BYTES - len(self.head)]
        # a CRLF split between blocks counts once: a block starting with LF after one ending with CR
        self.lines += block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
        if self._last == b"\r" and block[:1] == b"\n":
            self.lines -= 1
        self._last = block[-1:]
        if self.is_utf8:
            try:
                self._decoder.decode(block)
            except UnicodeDecodeError:
                self.is_utf8 = False

    def finish(self) -> None:
        self.ends_with_break = self._last in (b"\n", b"\r")
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


def header_line(path: Path) -> bytes:
    """The first line of a file, with its line break (LF, CRLF or a lone CR), as the engines split lines."""
    with open_raw(path) as handle:
        return next(physical_lines(handle), b"")


def read_header(path: Path, source: Source) -> tuple[list[str] | None, str | None]:
    """The file's column names and None, or None and why the header is refused (one line, with a fix)."""
    line = header_line(path)
    if not line:
        return [], None  # an empty file: no header, no rows
    options = source.csv
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
        return None, (f"the header has one column ({_cut(header[0])!r}), not the {len(expected)} source "
                      f"'{source.name}' maps{hint}")
    duplicated = sorted({column for column in header if header.count(column) > 1})
    if duplicated:
        return None, f"duplicate column names in the header: {_cut(str(duplicated))}"
    missing = sorted(set(expected) - set(header))
    if missing:
        return None, (f"missing column(s) {_cut(str(missing))} required by source '{source.name}' "
                      f"(header has {_cut(str(header))})")
    return header, None


def _delimiter_hint(text: str, delimiter: str) -> str:
    counts = {candidate: text.count(candidate) for candidate in ";,\t|" if candidate != delimiter}
    best = max(counts, key=lambda c: counts[c])
    if counts[best]:
        shown = "\\t" if best == "\t" else best
        return f"; the line holds '{shown}': set sources[].csv.delimiter to '{shown}'?"
    return f"; is sources[].csv.delimiter ({delimiter!r}) right?"


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"
