"""The compiled SQL and page templates, kept between runs: a run loads them instead of compiling them again.

Jinja compiles each template to Python code the first time a process loads it. A run loads every model's and
query's template, so each run paid that again; Jinja's bytecode cache keeps the compiled code in files.

The files are Jinja's: one per template (`clickstream-<hash of its name and path>.cache`), in the directory Jinja
makes for this user under the temporary directory and refuses unless only this user may read or write it (not
another owner, other permissions or a link). Each holds the checksum of the source it was compiled from, and
Jinja compiles again when the source differs, so an upgrade or an edited template is never served stale.

The cache is only ever a saving: a directory that cannot be made safe, or a file that cannot be read or written,
means compiling as before, never a failed run. `CLICKSTREAM_TEMPLATE_CACHE=off` turns it off.
"""
from __future__ import annotations

import logging
import os
from functools import lru_cache

from jinja2 import BytecodeCache, FileSystemBytecodeCache
from jinja2.bccache import Bucket

log = logging.getLogger(__name__)

SWITCH = "CLICKSTREAM_TEMPLATE_CACHE"


class _SavingOnly(FileSystemBytecodeCache):
    """Jinja's file cache, where a file that cannot be read or written is compiled again, not an error."""

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception as exc:  # unreadable, cut short or damaged: compiled again
            log.debug("template cache: %s not loaded: %s", bucket.key, exc)
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError as exc:  # a full or read-only disk: the next run compiles it again
            log.debug("template cache: %s not kept: %s", bucket.key, exc)


@lru_cache(maxsize=None)
def bytecode_cache() -> BytecodeCache | None:
    """The cache every template environment of this process shares, or None (off, or no safe directory)."""
    if os.environ.get(SWITCH, "").strip().lower() in ("off", "0", "false", "no"):
        return None
    try:
        return _SavingOnly(pattern="clickstream-%s.cache")
    except (OSError, RuntimeError) as exc:  # Jinja found no directory it could make private to this user
        log.debug("template cache: off: %s", exc)
        return None
