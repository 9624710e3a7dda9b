"""Benchmark datasets: generated once by the project's seeded generator, cached, and linked into run directories.

A cached dataset lives in `<cache>/datasets/<key>/raw/*.csv` with a `dataset.json` beside it, written last,
so a half-generated dataset is never used. The key holds the row count, the seed, the number of files and
the first 12 hex digits of the sha256 of src/clickstream/generate.py: a change to the generator makes a new
dataset (older versions of the same size are removed). Each run gets a fresh directory whose raw/ holds
hard links to the cached files (symbolic links across file systems): no copy, and the original can't be
changed by a run because nothing writes to raw/.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("bench.datasets")

ROWS_PER_FILE = 1_000_000  # default split: about one CSV file per million rows (at most 100 files)
INCREMENT_SHARE = 0.01  # the incremental benchmark adds one file with 1% more rows
# The generator's default time span; the increment is the next day, as a new daily file would be.
BASE_START, BASE_DAYS = "2024-01-01", 90
INCREMENT_START = "2024-03-31"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgb]?)\s*$", re.IGNORECASE)
_MULTIPLIER = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000, "b": 1_000_000_000}


def parse_size(text: str) -> int:
    """'200k' -> 200000, '2m' -> 2000000, '1.5m' -> 1500000, '5000' -> 5000."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"size {text!r}: expected a row count such as 200k, 2m, 10m, 100m or 5000")
    rows = float(match.group(1)) * _MULTIPLIER[match.group(2).lower()]
    if rows < 1 or rows != int(rows):
        raise ValueError(f"size {text!r}: must be a whole number of rows >= 1")
    return int(rows)


def size_label(rows: int) -> str:
    for suffix, factor in (("b", 1_000_000_000), ("m", 1_000_000), ("k", 1_000)):
        if rows >= factor and rows % factor == 0:
            return f"{rows // factor}{suffix}"
    return str(rows)


def default_files(rows: int) -> int:
    return max(1, min(100, round(rows / ROWS_PER_FILE)))


def generator_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("clickstream.generate")
    if spec is None or spec.origin is None:
        raise RuntimeError("clickstream is not importable: run with the project's venv (make bench)")
    return Path(spec.origin)


def generator_hash() -> str:
    return hashlib.sha256(generator_path().read_bytes()).hexdigest()[:12]


@dataclass(frozen=True)
class Dataset:
    key: str
    rows: int
    seed: int
    files: list[Path]
    bytes: int
    generate_seconds: float | None  # None when it came from the cache

    def as_dict(self) -> dict:
        return {"key": self.key, "rows": self.rows, "seed": self.seed, "files": [f.name for f in self.files],
                "bytes": self.bytes, "generate_seconds": self.generate_seconds}


def _generate(target: Path, rows: int, seed: int, files: int, start: str, days: int, prefix: str) -> None:
    """Run the project's generator in its own process, so its memory never stays in the harness."""
    arguments = json.dumps({"out_dir": str(target), "rows": rows, "seed": seed, "files": files, "start": start,
                            "days": days, "prefix": prefix})
    code = ("import json, sys; from clickstream.generate import generate; "
            "generate(**json.loads(sys.argv[1]))")
    subprocess.run([sys.executable, "-c", code, arguments], check=True)


def _cached(cache_dir: Path, key: str, rows: int, seed: int, files: int, start: str, days: int,
            prefix: str) -> Dataset:
    root = cache_dir / "datasets"
    final = root / key
    meta = final / "dataset.json"
    if meta.is_file():
        info = json.loads(meta.read_text(encoding="utf-8"))
        paths = [final / "raw" / name for name in info["files"]]
        if all(p.is_file() for p in paths):
            log.info("dataset %s: cached (%s)", key, final)
            return Dataset(key, rows, seed, paths, sum(p.stat().st_size for p in paths), None)
    shutil.rmtree(final, ignore_errors=True)
    staging = root / f".{key}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    log.info("dataset %s: generating %s rows in %d file(s) with seed %d ...", key, f"{rows:,}", files, seed)
    started = time.perf_counter()
    _generate(staging / "raw", rows, seed, files, start, days, prefix)
    seconds = round(time.perf_counter() - started, 3)
    names = sorted(p.name for p in (staging / "raw").glob("*.csv"))
    (staging / "dataset.json").write_text(json.dumps(
        {"key": key, "rows": rows, "seed": seed, "files": names, "start": start, "days": days, "prefix": prefix,
         "generator_sha256_12": key.rsplit("-g", 1)[-1], "generate_seconds": seconds}, indent=2) + "\n",
        encoding="utf-8")
    os.replace(staging, final)
    paths = [final / "raw" / name for name in names]
    log.info("dataset %s: generated in %.1f s", key, seconds)
    return Dataset(key, rows, seed, paths, sum(p.stat().st_size for p in paths), seconds)


def _prune(cache_dir: Path, prefix: str, keep: str) -> None:
    """Remove cached versions of the same dataset made by another generator version."""
    for old in (cache_dir / "datasets").glob(f"{prefix}-g*"):
        if old.name != keep and old.is_dir():
            log.info("dataset %s: removing stale cache made by another generator version", old.name)
            shutil.rmtree(old, ignore_errors=True)


def base_dataset(cache_dir: Path, rows: int, seed: int, files: int | None = None) -> Dataset:
    files = files or default_files(rows)
    stem = f"r{rows}-s{seed}-f{files}"
    key = f"{stem}-g{generator_hash()}"
    _prune(cache_dir, stem, key)
    return _cached(cache_dir, key, rows, seed, files, BASE_START, BASE_DAYS, "clickstream")


def increment_dataset(cache_dir: Path, base_rows: int, seed: int) -> Dataset:
    """One new file with 1% of the base rows: the next day's events, from another seed."""
    rows = max(1, math.ceil(base_rows * INCREMENT_SHARE))
    stem = f"inc{rows}-s{seed + 1}"
    key = f"{stem}-g{generator_hash()}"
    _prune(cache_dir, stem, key)
    return _cached(cache_dir, key, rows, seed + 1, 1, INCREMENT_START, 1, "increment")


def ndjson_dataset(cache_dir: Path, base: Dataset) -> Dataset:
    """The base dataset's files written as JSON lines (cached beside it): each record an object of the header's
    names to its values as JSON strings (an empty field left out, as CSV reads it NULL); a line that is not one
    record of the header's fields is written as it is, which is no JSON object either (both are quarantined)."""
    final = cache_dir / "datasets" / f"{base.key}-ndjson"
    meta = final / "dataset.json"
    names = [p.name.removesuffix(".csv") + ".jsonl" for p in base.files]
    if meta.is_file() and all((final / "raw" / n).is_file() for n in names):
        log.info("dataset %s: cached (%s)", final.name, final)
        paths = [final / "raw" / n for n in names]
        return Dataset(final.name, base.rows, base.seed, paths, sum(p.stat().st_size for p in paths), None)
    shutil.rmtree(final, ignore_errors=True)
    staging = final.with_name(f".{final.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "raw").mkdir(parents=True)
    started = time.perf_counter()
    for source, name in zip(base.files, names):
        _to_ndjson(source, staging / "raw" / name)
    seconds = round(time.perf_counter() - started, 3)
    (staging / "dataset.json").write_text(json.dumps({"key": final.name, "from": base.key, "files": names,
                                                      "convert_seconds": seconds}, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, final)
    paths = [final / "raw" / n for n in names]
    log.info("dataset %s: written as JSON lines in %.1f s", final.name, seconds)
    return Dataset(final.name, base.rows, base.seed, paths, sum(p.stat().st_size for p in paths), seconds)


def _to_ndjson(source: Path, target: Path) -> None:
    with source.open(encoding="utf-8", errors="surrogateescape", newline="") as lines, \
            target.open("w", encoding="utf-8", errors="surrogateescape", newline="\n") as out:
        header = next(csv.reader([next(lines)]))
        for line in lines:
            try:
                fields = next(csv.reader([line]), [])
            except csv.Error:
                fields = []
            if len(fields) == len(header):
                out.write(json.dumps({k: v for k, v in zip(header, fields) if v}, ensure_ascii=False) + "\n")
            elif line.strip():
                out.write(line if line.endswith("\n") else line + "\n")


def link_files(files: list[Path], raw_dir: Path) -> str:
    """Put `files` into raw_dir without copying; returns how ('hardlink' or 'symlink')."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    how = "hardlink"
    for source in files:
        target = raw_dir / source.name
        try:
            os.link(source, target)
        except OSError:
            os.symlink(source.resolve(), target)
            how = "symlink"
    return how
