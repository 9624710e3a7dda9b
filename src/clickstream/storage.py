"""Atomic publishing of tables and state files: write aside, then rename, so a crash leaves the last good copy."""
from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

from clickstream.context import PipelineError

STAGING_DIR = "_staging"
RAW_DIR = "raw"  # the input: recovery never looks inside it
PREVIOUS = ".previous"
_TMP_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")  # as named by write_json


def staging_path(data_dir: Path, name: str) -> Path:
    """A fresh, empty place to write a table before it is published."""
    path = data_dir / STAGING_DIR / f"{name}-{uuid.uuid4().hex[:12]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def clear_staging(data_dir: Path) -> None:
    """Remove what an interrupted run left half-written; published tables are never under staging."""
    shutil.rmtree(data_dir / STAGING_DIR, ignore_errors=True)


# Swap the staged and the published directory in one step where the system can (Linux renameat2); False forces
# the two renames used elsewhere.
EXCHANGE = True
_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}  # by this file system or kernel


@functools.cache
def _renameat2() -> Any:
    """The C library's renameat2 (glibc 2.28 or later), or None."""
    if os.uname().sysname != "Linux":
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange_paths(first: Path, second: Path) -> bool:
    """Swap two existing paths in one step; False where the kernel, C library or file system cannot."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def publish_table(staged: Path, dest: Path) -> str:
    """Replace `dest` by the completely written `staged` directory; return how: exchange, renames or rename.

    Where the system can, the two directories are swapped in one step (a reader always finds `dest`) and the
    old copy, now at the staged path, is deleted. Elsewhere the old copy is moved to `<dest>.previous` first
    and deleted only after the new one is in place; a crash between the two renames leaves `<dest>.previous`,
    which `recover` puts back. A first publish is one rename.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    recover_table(dest)
    if not dest.exists():
        os.replace(staged, dest)
        return "rename"
    if EXCHANGE and exchange_paths(staged, dest):
        shutil.rmtree(staged, ignore_errors=True)  # the old copy; left to `recover` (under staging) if interrupted
        return "exchange"
    previous = dest.with_name(dest.name + PREVIOUS)
    os.replace(dest, previous)
    os.replace(staged, dest)
    shutil.rmtree(previous, ignore_errors=True)
    return "renames"


def recover_table(dest: Path) -> str | None:
    """Finish or undo a replacement of `dest` that a crash interrupted; say what was done, if anything."""
    previous = dest.with_name(dest.name + PREVIOUS)
    if not previous.exists():
        return None
    if dest.exists():
        shutil.rmtree(previous)
        return f"removed {previous} (left by a crash after {dest} was replaced)"
    os.replace(previous, dest)
    return f"put back {dest} from {previous} (a crash interrupted its replacement)"


def recover(data_dir: Path) -> list[str]:
    """Undo what interrupted runs left in `data_dir` and say what was done; run only by the writer.

    Removes the staging folder and the temporary files of `write_json`, and puts back or drops every
    `<table>.previous` that `publish_table` left, wherever the table is. Raw input is never touched.
    """
    done = []
    staging = data_dir / STAGING_DIR
    if staging.exists():
        shutil.rmtree(staging)
        done.append(f"removed {staging} (tables an interrupted run was writing)")
    for parent, dirs, files in os.walk(data_dir):
        here = Path(parent)
        dirs.sort()  # the same order on every file system
        if here == data_dir:
            dirs[:] = [d for d in dirs if d not in (RAW_DIR, STAGING_DIR)]
        for name in sorted(d for d in dirs if d.endswith(PREVIOUS)):
            dirs.remove(name)
            action = recover_table(here / name.removesuffix(PREVIOUS))
            if action:
                done.append(action)
        for name in sorted(f for f in files if _TMP_NAME.fullmatch(f)):
            (here / name).unlink()
            done.append(f"removed {here / name} (a state file an interrupted run was writing)")
    return done


def carry_over(published: Path, staged: Path, keep: Callable[[Path], bool]) -> None:
    """Hard-link the published entries that `keep` selects into a staged directory (no data is copied)."""
    if not published.exists():
        return
    for entry in published.iterdir():
        if not keep(entry):
            continue
        if entry.is_dir():
            shutil.copytree(entry, staged / entry.name, copy_function=os.link)
        else:
            os.link(entry, staged / entry.name)


def publish_batch(staged: Path, dest: Path, batch_id: str) -> list[Path]:
    """Move the files of one batch (possibly partitioned) into `dest`, each renamed `<batch_id>-<name>`."""
    moved = []
    for file in sorted(staged.rglob("*.parquet")):
        target_dir = dest / file.parent.relative_to(staged)
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{batch_id}-{file.name}"
        os.replace(file, target)
        moved.append(target)
    shutil.rmtree(staged, ignore_errors=True)
    return moved


def batch_of(file: Path) -> str:
    return file.name.split("-", 1)[0]


def remove_orphan_batches(dest: Path, known_batches: set[str]) -> list[Path]:
    """Delete batch files that no state file records: the remains of a run that crashed before committing."""
    removed = []
    if not dest.exists():
        return removed
    for file in dest.rglob("*.parquet"):
        if batch_of(file) not in known_batches:
            file.unlink()
            removed.append(file)
    return removed


def unrecorded_batches(dest: Path, recorded: set[str]) -> dict[str, list[Path]]:
    """The batch files under `dest` of batches that `recorded` (a state file's) does not hold, by batch."""
    found: dict[str, list[Path]] = {}
    for file in parquet_files(dest):
        if batch_of(file) not in recorded:
            found.setdefault(batch_of(file), []).append(file)
    return found


def remove_interrupted_batch(dest: Path, recorded: set[str], publishing: str | None) -> list[Path]:
    """Delete the files of `publishing`, the batch a committed state file names as being published when its run
    stopped: the only files proved to be the remains of an interrupted run. Files of any other batch the state
    does not record are published data whose record is lost: nothing is deleted, UnrecordedBatches is raised."""
    found = unrecorded_batches(dest, recorded)
    unproved = {batch: files for batch, files in found.items() if batch != publishing}
    if unproved:
        raise UnrecordedBatches(unproved)
    removed = found.get(publishing, []) if publishing else []
    for file in removed:
        file.unlink()
    return removed


class UnrecordedBatches(PipelineError):
    """Published batch files that no state file records and none names as interrupted: never deleted."""

    def __init__(self, batches: dict[str, list[Path]]) -> None:
        self.batches = batches
        files = sorted(f for found in batches.values() for f in found)
        super().__init__(f"{len(files)} file(s) of {len(batches)} batch(es) no state file records, e.g. {files[0]}")


def batch_files(dest: Path, batches: set[str]) -> list[Path]:
    if not dest.exists():
        return []
    return sorted(f for f in dest.rglob("*.parquet") if batch_of(f) in batches)


def parquet_files(dest: Path) -> list[Path]:
    return sorted(dest.rglob("*.parquet")) if dest.exists() else []


def row_count(folder: Path) -> int:
    """The rows of the Parquet files under `folder`, from their footers (no data read, no engine)."""
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(file).num_rows for file in parquet_files(folder))


def column_range(folder: Path, column: str) -> tuple[Any, Any]:
    """The least and greatest value of `column` in the Parquet files under `folder`, from their statistics (no
    data is read); (None, None) when none has any."""
    import pyarrow.parquet as pq

    low = high = None
    for file in parquet_files(folder):
        metadata = pq.ParquetFile(file).metadata
        index = metadata.schema.to_arrow_schema().get_field_index(column)
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(index).statistics
            if stats is None or not stats.has_min_max:
                continue
            low = stats.min if low is None else min(low, stats.min)
            high = stats.max if high is None else max(high, stats.max)
    return low, high


def read_json(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PipelineError(f"state file {path} is not valid JSON ({exc}); restore it or remove the data "
                            f"directory") from exc


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically: a reader sees the old or the new content, never a mix.

    The temporary file is created new (never a link's target, never an existing file), and the rename replaces
    whatever is at `path`, a symbolic link included, rather than writing where a link points.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # matched by _TMP_NAME
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
