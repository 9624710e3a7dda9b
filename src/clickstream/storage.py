"""Atomic publishing of tables and state files: write aside, then rename, so a crash leaves the last good copy."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

from clickstream.context import PipelineError

STAGING_DIR = "_staging"


def staging_path(data_dir: Path, name: str) -> Path:
    """A fresh, empty place to write a table before it is published."""
    path = data_dir / STAGING_DIR / f"{name}-{uuid.uuid4().hex[:12]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def clear_staging(data_dir: Path) -> None:
    """Remove what an interrupted run left half-written; published tables are never under staging."""
    shutil.rmtree(data_dir / STAGING_DIR, ignore_errors=True)


def publish_table(staged: Path, dest: Path) -> None:
    """Replace `dest` by the completely written `staged` directory.

    The old copy is moved aside first and deleted only after the new one is in place; a crash between
    the two renames leaves `<dest>.previous`, which `recover_table` puts back.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    previous = dest.with_name(dest.name + ".previous")
    recover_table(dest)
    if dest.exists():
        os.replace(dest, previous)
    os.replace(staged, dest)
    shutil.rmtree(previous, ignore_errors=True)


def recover_table(dest: Path) -> None:
    previous = dest.with_name(dest.name + ".previous")
    if previous.exists():
        if dest.exists():
            shutil.rmtree(previous)
        else:
            os.replace(previous, dest)


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


def recover_tables(parent: Path) -> None:
    """Put back every table of `parent` whose replacement a crash interrupted."""
    if parent.exists():
        for previous in parent.glob("*.previous"):
            recover_table(previous.with_name(previous.name.removesuffix(".previous")))


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


def batch_files(dest: Path, batches: set[str]) -> list[Path]:
    if not dest.exists():
        return []
    return sorted(f for f in dest.rglob("*.parquet") if batch_of(f) in batches)


def parquet_files(dest: Path) -> list[Path]:
    return sorted(dest.rglob("*.parquet")) if dest.exists() else []


def read_json(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PipelineError(f"state file {path} is not valid JSON ({exc}); restore it or remove the data "
                            f"directory") from exc


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically: a reader sees the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
