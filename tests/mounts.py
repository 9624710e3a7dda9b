"""Real full and read-only disks for the failure tests: a tiny tmpfs, mounted for one test (needs root)."""
from __future__ import annotations

import errno
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


@contextmanager
def tmpfs(path: Path, size: str = "256k") -> Iterator[Path]:
    """A `size` tmpfs mounted at `path` (made if missing), unmounted afterwards; skips the test where not allowed."""
    if shutil.which("mount") is None:
        pytest.skip("no `mount` command here: the disk-full and read-only tests mount a tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        # lazily if busy: a failed Spark task can leave a file open in it until the JVM lets go
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], check=True)


def make_read_only(mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)


def fill(mount: Path) -> None:
    """Write zeros into `mount` until the file system says it is full."""
    with open(mount / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
