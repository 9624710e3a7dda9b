"""Spark's failures as the project's errors: a malformed or unreadable input file named (with its line where it
can be found), a machine that refused a write, a job Ctrl-C cancelled, or else Spark's own error line.

Spark reports a failed job as a Java exception's text; these functions read that text only, so they need no
running Spark.
"""
from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from urllib.parse import unquote

from clickstream.context import PipelineError, ResourceError
from clickstream.engines.base import InputError, QueryInterrupted
from clickstream.report.escape import shorten


class SparkJobError(PipelineError):
    """A Spark job failed on the data; the message is Spark's error line, the job log holds the rest."""


def _uri_to_path(uri: str) -> str:
    """`file:/a%20b.csv` -> `/a b.csv`: Spark's file paths are URIs, percent-encoded ('+' stays '+')."""
    return unquote(re.sub(r"^file:/+", "/", uri))


def translate_failure(text: str, csv_inputs: list[Path]) -> BaseException:
    if re.search(r"Job \d+ cancelled as part of cancellation of all jobs", text):
        # PySpark's SIGINT handler cancels every job, and the job running fails with this: a Ctrl-C
        return QueryInterrupted()
    # Spark 4 ends the sentence with its SQLSTATE, Spark 3.5 with "Details:"
    read = re.search(r"Encountered error while reading file (.+?)\.?(?:\s+SQLSTATE|\s+Details:|$)", text,
                     re.MULTILINE)
    record = re.search(r"Malformed CSV record: (.*?)(?: SQLSTATE: \w+)?$", text, re.MULTILINE)
    if record:
        row = record.group(1)
        # Spark 3.5 does not name the file when the read feeds a write: the first CSV holding the row does.
        candidates = [Path(_uri_to_path(read.group(1)))] if read else csv_inputs
        place = str(candidates[0]) if len(candidates) == 1 else "one of the input files"
        for path in candidates:
            line = _line_number(path, row)
            if line:
                place = f"{path} on line {line}"
                break
        return InputError(f"CSV error in {place}: malformed row {shorten(row)!r} (not the header's number of fields, "
                          f"or broken quoting)")
    parsing = re.search(r"TextParsingException(?: - |: )(?!com\.univocity)(.+?)(?:\.\s|$)", text, re.MULTILINE)
    if parsing:  # the CSV parser itself refused the text (a quote where none may be); Spark 3.5 names no file
        place = shorten(_uri_to_path(read.group(1))) if read else (
            str(csv_inputs[0]) if len(csv_inputs) == 1 else "one of the input files")
        return InputError(f"CSV error in {place}: {shorten(parsing.group(1))}")
    if read:
        path = _uri_to_path(read.group(1))
        cause = re.findall(r"Caused by: [\w.$]+: (.+)", text)
        return InputError(f"cannot read {shorten(path)}: {shorten(cause[-1] if cause else _first_error_line(text))}")
    # The machine refused a write. Java names the C library's reason; Hadoop's local file system says only
    # "Mkdirs failed", for a read-only file system and a denied permission alike: the file system tells which.
    scratch = "spark.local.dir in spark.conf"
    where = re.search(r"writing rows to (\S+?)\.?(?:\s|$)|(?:AccessDenied|FileNotFound|FileSystem)Exception: "
                      r"(\S+?)(?::| \(|$)|Mkdirs failed to create (\S+)", text, re.MULTILINE)
    path = _uri_to_path(next(g for g in where.groups() if g)).split("/_temporary/")[0] if where else None
    for reason, code in (("No space left on device", errno.ENOSPC), ("Disk quota exceeded", errno.EDQUOT),
                         ("Read-only file system", errno.EROFS), ("Permission denied|AccessDeniedException",
                                                                  errno.EACCES)):
        if re.search(reason, text):
            return ResourceError.from_errno(code, path, scratch=scratch)
    if path and "Mkdirs failed to create" in text:
        existing = next((p for p in Path(path).parents if p.exists()), Path("/"))
        code = errno.EROFS if os.statvfs(existing).f_flag & os.ST_RDONLY else errno.EACCES
        return ResourceError.from_errno(code, path, scratch=scratch)
    return SparkJobError(f"spark: {_first_error_line(text)}")


def _first_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if re.search(r"\[[A-Z_.]+\]", line):  # Spark's error class, e.g. [DIVIDE_BY_ZERO] ...
            return re.sub(r"^[\w.$:]*?(Exception|Error):\s*", "", line)
    return lines[0] if lines else "unknown error"


def _line_number(path: Path, record: str) -> int | None:
    """The first line of `path` that is exactly `record` (Spark names the row, not its line)."""
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            for number, line in enumerate(handle, start=1):
                if line.rstrip("\r\n") == record:
                    return number
    except OSError:
        return None
    return None
