"""Logging set up once per process: concise lines on the terminal, a full file per job run under logs/.

Messages carry data (file names, values): both handlers show their control characters as escapes, so one
record is one line that cannot move the cursor, recolour the terminal or forge another record.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from clickstream.report.escape import escape_terminal, escape_terminal_lines

_FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_TERMINAL_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
_ROOT = "clickstream"


class EscapingFormatter(logging.Formatter):
    """The message on one line with control characters escaped; a traceback keeps its lines, each escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        shown = logging.makeLogRecord(record.__dict__)
        shown.message = escape_terminal(record.message)
        return super().formatMessage(shown)

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]
        return escape_terminal_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return escape_terminal_lines(super().formatStack(stack_info))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (JSON escapes every control character): for log shippers."""

    def __init__(self, job: str) -> None:
        super().__init__()
        self.job = job

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="microseconds"),
                 "level": record.levelname, "logger": record.name, "job": self.job, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (a caller may have replaced it since set-up)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Attach the terminal handler once; later calls only adjust the level (quiet: warnings and errors only)."""
    logger = logging.getLogger(_ROOT)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    for handler in logger.handlers:
        if getattr(handler, "_clickstream_terminal", False):
            handler.setLevel(level)
            return
    handler = _StderrHandler()
    handler.setFormatter(EscapingFormatter(_TERMINAL_FORMAT, datefmt="%H:%M:%S"))
    handler.addFilter(lambda record: getattr(record, "on_terminal", True))
    handler.setLevel(level)
    handler._clickstream_terminal = True  # type: ignore[attr-defined]
    logger.addHandler(handler)


@contextmanager
def job_log(logs_dir: Path, job: str, fmt: str = "text") -> Iterator[Path]:
    """Log everything of one job run to `logs/<job>_<utc time>.log` (`.jsonl` with `fmt` json), with start, end,
    duration and errors."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S_%fZ")
    path = logs_dir / f"{job}_{stamp}.{'jsonl' if fmt == 'json' else 'log'}"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter(job) if fmt == "json" else EscapingFormatter(_FILE_FORMAT))
    handler.setLevel(logging.DEBUG)
    logger = logging.getLogger(_ROOT)
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.DEBUG:  # the file gets everything, even without setup_logging
        logger.setLevel(logging.DEBUG)
    log = logging.getLogger(f"{_ROOT}.{job}")
    started = time.perf_counter()
    log.info("job %s started (log file %s)", job, path)
    try:
        yield path
    except BaseException as exc:
        # in the file only: on the terminal the command's last line says it, once
        log.error("job %s failed after %.2f s: %s", job, time.perf_counter() - started,
                  "interrupted (SIGINT)" if isinstance(exc, KeyboardInterrupt) else exc, extra={"on_terminal": False})
        raise
    else:
        log.info("job %s finished in %.2f s", job, time.perf_counter() - started)
    finally:
        logger.removeHandler(handler)
        handler.close()
