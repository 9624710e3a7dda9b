"""The clickstream benchmark: the project against hand-written baselines, on cached generated datasets.

    make bench                                   # DuckDB at 2m, Spark at 1m, 3 runs each, incremental/no-op/watch
    make bench SIZES=100m RUNS=3
    .venv/bin/python benchmarks/run.py --sizes 200k --runs 1 [--no-incremental] [--check]
        [--variants project-duckdb,project-spark,plain-duckdb,plain-pyspark] [--cache-dir DIR]

For each size the dataset is generated once by the project's seeded generator and cached. The variants
then run back to back, interleaved A B C D A B C D ..., so that drift of a shared machine falls on all of
them alike; each run is a separate process in a fresh output directory (raw/ hard-linked from the cache),
measured as a whole: wall time, peak memory of its process tree, and the per-layer times it reports.
Unless --no-incremental, each project variant also runs: a full run, then one new file with 1% more rows
(timed: "incremental"), then the same again with nothing new ("noop"), then `clickstream watch` for one batch
while the next day's file is dropped in ("watch": its latency from arrival to analytics updated); and a full run
from scratch on the base and +1% files ("full_with_increment") to compare with.
With --check, the baselines' outputs are first compared with the project's on a small dataset.
Medians (min-max), the target ratios and every raw measurement are printed and written to
benchmarks/results/ (latest.json, latest.md and a dated copy). Nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import datasets, report, variants  # noqa: E402
from benchmarks.measure import run_measured  # noqa: E402

log = logging.getLogger("bench")
WATCH_TIMEOUT_SECONDS = 600
WATCH_SETTLE_SECONDS = 3.0  # after the watch starts, as a file would come at any moment of its interval


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the clickstream pipeline against hand-written "
                                     "DuckDB and PySpark baselines; prints and writes numbers, asserts nothing.")
    parser.add_argument("--sizes", default="2m,10m", help="comma-separated row counts, e.g. 200k,2m,10m,100m "
                        "(default 2m,10m)")
    parser.add_argument("--spark-sizes", default=None,
                        help="the sizes the Spark variants run at instead of --sizes (e.g. 1m: a Spark run takes "
                        "minutes where DuckDB's takes seconds); the other variants run at --sizes only")
    parser.add_argument("--runs", type=int, default=3, help="runs per variant and size (default 3)")
    parser.add_argument("--variants", default=",".join(variants.VARIANTS),
                        help=f"comma-separated subset of {', '.join(variants.VARIANTS)} (default: all of them)")
    parser.add_argument("--incremental", action=argparse.BooleanOptionalAction, default=True,
                        help="also time, per project variant: a run with one new file of +1%% rows against a full "
                             "run, a run with nothing new, and a watched folder's latency for a next-day file "
                             "(default on; --no-incremental: full runs only)")
    parser.add_argument("--check", action="store_true",
                        help="first compare the baselines' outputs with the project's on a small dataset")
    parser.add_argument("--check-rows", type=int, default=20_000, help="rows of the check's dataset (default 20000)")
    parser.add_argument("--cache-dir", type=Path, default=variants.BENCH_DIR / ".cache",
                        help="datasets and run directories (default benchmarks/.cache)")
    parser.add_argument("--results-dir", type=Path, default=variants.BENCH_DIR / "results",
                        help="where results are written (default benchmarks/results)")
    parser.add_argument("--config", type=Path, default=variants.DEFAULT_CONFIG,
                        help="the project's config, used by the project runs (default config/config.yaml)")
    parser.add_argument("--duckdb-memory-limit", default="6GB",
                        help="DuckDB memory limit for the project and the plain script alike, unless the config "
                        "sets one (default 6GB, so 100M rows stay within 8 GiB by spilling; 'none': DuckDB's own "
                        "default of 80%% of RAM)")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument("--files", type=int, default=None,
                        help="CSV files per dataset (default: about one per million rows, 1 to 100)")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds before a run is killed "
                        "(default 14400)")
    parser.add_argument("--keep-outputs", action="store_true", help="keep each run's output directory")
    args = parser.parse_args(argv)
    try:
        args.size_rows = [datasets.parse_size(s) for s in args.sizes.split(",") if s.strip()]
        args.spark_size_rows = args.size_rows if args.spark_sizes is None else [
            datasets.parse_size(s) for s in args.spark_sizes.split(",") if s.strip()]
        args.variant_names = variants.parse_variants(args.variants)
    except ValueError as exc:
        parser.error(str(exc))
    if not args.size_rows:
        parser.error("--sizes: give at least one size")
    if not args.spark_size_rows:
        parser.error("--spark-sizes: give at least one size")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.cache_dir = args.cache_dir.resolve()
    args.results_dir = args.results_dir.resolve()
    args.config = args.config.resolve()
    if args.duckdb_memory_limit.strip().lower() in ("", "none", "null"):
        args.duckdb_memory_limit = None
    return args


def _sizes_of(args: argparse.Namespace, variant: str) -> list[int]:
    """The sizes `variant` runs at: a Spark variant's --spark-sizes, any other's --sizes."""
    return args.spark_size_rows if variants.VARIANTS[variant].uses_spark else args.size_rows


def all_sizes(args: argparse.Namespace) -> list[int]:
    """Every size some selected variant runs at, smallest first."""
    return sorted({rows for variant in args.variant_names for rows in _sizes_of(args, variant)})


def variants_at(args: argparse.Namespace, rows: int) -> list[str]:
    """The selected variants that run at `rows`, in their order."""
    return [variant for variant in args.variant_names if rows in _sizes_of(args, variant)]


def bench_config(args: argparse.Namespace) -> Path:
    """The config the runs use: the given one, with the benchmark's DuckDB memory limit if it sets none."""
    from clickstream.config import load_config

    config = load_config(args.config)  # a bad config stops here, before any dataset is made
    if not args.duckdb_memory_limit or config.duckdb.memory_limit:
        return args.config
    raw = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
    raw["duckdb"] = {**(raw.get("duckdb") or {}), "memory_limit": args.duckdb_memory_limit}
    path = args.cache_dir / "bench-config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {args.config} with the benchmark's DuckDB memory limit (benchmarks/run.py)\n"
                    + yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    load_config(path)
    return path


class Bench:
    """One benchmark session: the runs done so far and the results they make."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        args.config = bench_config(args)
        self.settings = variants.engine_settings(args.config)
        self.failed: set[tuple[str, str]] = set()  # (size, variant) that failed: not run again at that size
        self.sequence = 0
        self.session = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self.logs_dir = args.cache_dir / "logs" / self.session
        self.runs_dir = args.cache_dir / "runs"
        sizes = report.sizes_dict(all_sizes(args))
        self.results: dict[str, Any] = {
            "schema_version": 1,
            "status": "running",
            "started_at": report.now_utc(),
            "finished_at": None,
            "machine": report.machine_info(),
            "versions": report.software_versions(),
            "settings": {
                "sizes": sizes, "runs": args.runs, "variants": args.variant_names,
                "spark_sizes": report.sizes_dict(args.spark_size_rows),
                "other_sizes": report.sizes_dict(args.size_rows),
                "order": [variants.VARIANTS[v].letter + "=" + v for v in args.variant_names],
                "incremental": args.incremental, "seed": args.seed, "files": args.files or "auto",
                "config": str(args.config), "engine_settings": self.settings,
                "generator_sha256_12": datasets.generator_hash(), "timeout_seconds": args.timeout,
                "rss_sampling_seconds": 0.1,
            },
            "datasets": {},
            "check": None,
            "runs": [],
            "summary": {},
            "ratios": [],
            "row_count_consistency": [],
        }

    # ---- one measured run
    def measure(self, size: str, rows: int, variant: str, kind: str, index: int, data_dir: Path) -> dict[str, Any]:
        self.sequence += 1
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{self.sequence:03d}-{size}-{variant}-{kind}-{index + 1}"
        stdout, stderr = self.logs_dir / f"{stem}.out", self.logs_dir / f"{stem}.err"
        cmd = variants.command(variant, data_dir, self.args.config, self.settings)
        load_before = report.load_average()
        started_at = report.now_utc()
        measured = run_measured(cmd, cwd=data_dir, stdout=stdout, stderr=stderr, timeout=self.args.timeout)
        layers, rows_reported = variants.read_layers(variant, data_dir)
        ok = measured.returncode == 0 and not measured.timed_out
        error = None
        if measured.timed_out:
            error = f"killed after the {self.args.timeout:g} s timeout"
        elif measured.returncode != 0:
            error = f"exit status {measured.returncode}: {_last_error_line(stderr)}"
        run = {
            "sequence": self.sequence, "size": size, "rows": rows, "variant": variant, "kind": kind,
            "run_index": index, "started_at": started_at, "ok": ok, "error": error,
            **measured.as_dict(), "layers": layers, "rows_reported": rows_reported,
            "load_average_before": load_before, "command": cmd,
            "stdout_file": str(stdout), "stderr_file": str(stderr),
            "stderr_tail": None if ok else _tail(stderr),
        }
        self.results["runs"].append(run)
        layer_text = ", ".join(f"{k} {v:.2f}" for k, v in layers.items())
        if ok:
            log.info("%s %-14s %-20s #%d: %8.2f s  peak tree RSS %6.2f GiB  (%s)", size, variant, kind, index + 1,
                     measured.wall_seconds, measured.peak_tree_rss_bytes / report.GIB, layer_text or "no layer times")
        else:
            log.error("%s %-14s %-20s #%d: FAILED after %.1f s: %s (log: %s)", size, variant, kind, index + 1,
                      measured.wall_seconds, error, stderr)
            self.failed.add((size, variant))
        return run

    def measure_watch(self, size: str, rows: int, variant: str, index: int, data_dir: Path,
                      files: list[Path]) -> dict[str, Any]:
        """`clickstream watch --max-batches 1` on `data_dir` (everything in it already ingested): once it watches,
        the next day's file is hard-linked into raw/; the measure is the batch's own latency, from the file's
        arrival to analytics updated, as the watch records it in the quality report (the process's wall time,
        start-up and the wait for the file included, is kept beside it)."""
        self.sequence += 1
        stem = f"{self.sequence:03d}-{size}-{variant}-watch-{index + 1}"
        stdout, stderr = self.logs_dir / f"{stem}.out", self.logs_dir / f"{stem}.err"
        cmd = variants.watch_command(variant, data_dir, self.args.config)
        dropper = threading.Thread(target=_drop_when_watching, args=(stderr, files, data_dir / "raw"), daemon=True)
        load_before = report.load_average()
        started_at = report.now_utc()
        dropper.start()
        measured = run_measured(cmd, cwd=data_dir, stdout=stdout, stderr=stderr, timeout=WATCH_TIMEOUT_SECONDS)
        dropper.join(timeout=1)
        latency = variants.read_watch_latency(data_dir)
        ok = measured.returncode == 0 and not measured.timed_out and latency is not None
        error = None if ok else (f"exit status {measured.returncode}, timed out {measured.timed_out}, latency "
                                 f"{latency}: {_last_error_line(stderr)}")
        run = {
            "sequence": self.sequence, "size": size, "rows": rows, "variant": variant, "kind": "watch",
            "run_index": index, "started_at": started_at, "ok": ok, "error": error,
            **measured.as_dict(), "process_wall_seconds": measured.wall_seconds,
            "wall_seconds": latency if latency is not None else measured.wall_seconds,
            "layers": {}, "rows_reported": {}, "load_average_before": load_before, "command": cmd,
            "stdout_file": str(stdout), "stderr_file": str(stderr), "stderr_tail": None if ok else _tail(stderr),
        }
        self.results["runs"].append(run)
        if ok:
            log.info("%s %-14s %-20s #%d: latency %6.2f s from arrival to analytics updated (process %.2f s)", size,
                     variant, "watch", index + 1, latency, measured.wall_seconds)
        else:
            log.error("%s %-14s %-20s #%d: FAILED: %s (log: %s)", size, variant, "watch", index + 1, error, stderr)
        return run

    def fresh_dir(self, name: str, files: list[Path]) -> Path:
        data_dir = self.runs_dir / name
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        datasets.link_files(files, data_dir / "raw")
        return data_dir

    def cleanup(self, data_dir: Path) -> None:
        if not self.args.keep_outputs:
            shutil.rmtree(data_dir, ignore_errors=True)

    # ---- one size
    def run_size(self, rows: int) -> None:
        size = datasets.size_label(rows)
        base = datasets.base_dataset(self.args.cache_dir, rows, self.args.seed, self.args.files)
        self.results["datasets"][size] = base.as_dict()
        selected = variants_at(self.args, rows)
        ndjson = None
        if variants.reads_ndjson(selected):
            ndjson = datasets.ndjson_dataset(self.args.cache_dir, base)
            self.results["datasets"][size]["ndjson"] = ndjson.as_dict()
        for index in range(self.args.runs):
            for variant in selected:
                if (size, variant) in self.failed:
                    log.warning("%s %s: skipped (failed earlier at this size)", size, variant)
                    continue
                files = variants.raw_files(variant, base.files, ndjson.files if ndjson else None)
                data_dir = self.fresh_dir(f"{size}-{variant}", files)
                self.measure(size, rows, variant, "full", index, data_dir)
                self.cleanup(data_dir)
        project = [v for v in selected if variants.VARIANTS[v].is_project and variants.VARIANTS[v].incremental]
        if not self.args.incremental or not project:
            return
        increment = datasets.increment_dataset(self.args.cache_dir, rows, self.args.seed)
        watched = datasets.increment_dataset(self.args.cache_dir, rows, self.args.seed, day=1)
        self.results["datasets"][size]["increment"] = increment.as_dict()
        self.results["datasets"][size]["watched_file"] = watched.as_dict()
        for index in range(self.args.runs):
            for variant in project:
                if (size, variant) in self.failed:
                    log.warning("%s %s: incremental skipped (failed earlier at this size)", size, variant)
                    continue
                data_dir = self.fresh_dir(f"{size}-{variant}-incremental", base.files)
                first = self.measure(size, rows, variant, "incremental_base", index, data_dir)
                if first["ok"]:
                    datasets.link_files(increment.files, data_dir / "raw")
                    if self.measure(size, rows, variant, "incremental", index, data_dir)["ok"]:
                        self.measure(size, rows, variant, "noop", index, data_dir)
                        self.measure_watch(size, rows, variant, index, data_dir, watched.files)
                self.cleanup(data_dir)
                if (size, variant) in self.failed:
                    continue
                data_dir = self.fresh_dir(f"{size}-{variant}-full-with-increment", base.files + increment.files)
                self.measure(size, rows, variant, "full_with_increment", index, data_dir)
                self.cleanup(data_dir)

    # ---- the whole session
    def run(self) -> int:
        others = [v for v in self.args.variant_names if v != "project-duckdb"]
        if self.args.check and not others:
            log.warning("--check: no variant besides project-duckdb selected, nothing to compare")
        elif self.args.check:
            from benchmarks.check_baselines import run_check, summary_lines

            log.info("checking the baselines' outputs against the project's on %s rows ...",
                     f"{self.args.check_rows:,}")
            self.results["check"] = run_check(self.args.cache_dir, others, self.args.check_rows, self.args.seed,
                                              self.args.config)
            print("\n".join(summary_lines(self.results["check"])), flush=True)
        for rows in all_sizes(self.args):
            self.run_size(rows)
            self.finish("running")
        return 0

    def finish(self, status: str) -> list[Path]:
        results = self.results
        results["status"] = status
        results["summary"] = report.summarize(results["runs"])
        results["ratios"] = report.ratios(results["summary"], results["settings"]["sizes"])
        results["row_count_consistency"] = consistency(results["runs"])
        if status != "running":
            results["finished_at"] = report.now_utc()
            results["machine"]["load_average_at_end"] = report.load_average()
        return report.write_results(results, self.args.results_dir)


def consistency(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per size and kind of run, the silver and fact rows each variant reported: they should all agree."""
    out = []
    keys = sorted({(r["size"], r["kind"]) for r in runs if r["ok"]})
    for size, kind in keys:
        reported = {}
        for run in runs:
            if run["ok"] and run["size"] == size and run["kind"] == kind and run["rows_reported"]:
                counts = run["rows_reported"]
                reported.setdefault(run["variant"], set()).add((counts.get("silver_rows"), counts.get("fct_events")))
        values = {v: sorted(s, key=str) for v, s in reported.items()}
        distinct = {t for s in reported.values() for t in s}
        # An incremental run's silver rows are the new batch's only: compare the fact table there.
        if kind == "incremental":
            distinct = {t[1] for t in distinct}
        out.append({"size": size, "kind": kind, "agree": len(distinct) <= 1,
                    "silver_rows_and_fct_events": {v: [list(t) for t in s] for v, s in values.items()}})
    # After an incremental run the fact table must hold what a run from scratch on the same files holds.
    for size in sorted({r["size"] for r in runs}):
        facts = {}
        for run in runs:
            if run["ok"] and run["size"] == size and run["kind"] in ("incremental", "full_with_increment"):
                facts.setdefault(run["variant"], set()).add(run["rows_reported"].get("fct_events"))
        if facts:
            out.append({"size": size, "kind": "incremental vs full_with_increment",
                        "agree": all(len(v) == 1 for v in facts.values()),
                        "fct_events": {v: sorted(s, key=str) for v, s in facts.items()}})
    return out


def _drop_when_watching(stderr: Path, files: list[Path], raw_dir: Path) -> None:
    """Hard-link `files` into raw/ once the watch says it is watching (its first look has been taken)."""
    deadline = time.monotonic() + WATCH_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        text = stderr.read_text(encoding="utf-8", errors="replace") if stderr.is_file() else ""
        if "watch: watching" in text:
            time.sleep(WATCH_SETTLE_SECONDS)
            datasets.link_files(files, raw_dir)
            return
        time.sleep(0.05)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _last_error_line(path: Path) -> str:
    lines = [line.strip() for line in _tail(path, 60).splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line or "Exception" in line:
            return line[:300]
    return lines[-1][:300] if lines else "(no output on stderr)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        import clickstream  # noqa: F401  (the project and its engine must be importable by this python)
        import duckdb  # noqa: F401
    except ImportError as exc:
        print(f"benchmarks/run.py: {exc}; run it with the project's venv (make bench)", file=sys.stderr)
        return 2
    from clickstream.config import ConfigError

    try:
        bench = Bench(args)
    except ConfigError as exc:
        print(f"benchmarks/run.py: {exc}", file=sys.stderr)
        return 2
    log.info("benchmark: sizes %s, %d run(s), variants %s%s; cache %s", ", ".join(bench.results["settings"]["sizes"]),
             args.runs, ", ".join(args.variant_names), ", incremental" if args.incremental else "", args.cache_dir)
    status = "complete"
    try:
        bench.run()
    except KeyboardInterrupt:
        status = "interrupted"
        log.error("interrupted: writing the runs done so far")
    finally:
        written = bench.finish(status if sys.exc_info()[0] in (None, KeyboardInterrupt) else "crashed")
    results = bench.results
    print()
    print("\n".join(report.summary_table(results)))
    print()
    print("\n".join(report.ratio_table(results)) if results["ratios"] else "(no ratio could be computed)")
    for entry in results["row_count_consistency"]:
        if not entry["agree"]:
            counts = entry.get("silver_rows_and_fct_events") or entry.get("fct_events")
            print(f"WARNING: {entry['size']} {entry['kind']}: runs report different row counts {counts}")
    failed = sorted({(r["size"], r["variant"]) for r in results["runs"] if not r["ok"]})
    for size, variant in failed:
        errors = sorted({r["error"] for r in results["runs"] if r["size"] == size and r["variant"] == variant
                         and not r["ok"]})
        print(f"FAILED: {size} {variant}: {'; '.join(errors)}")
    if results.get("check") and not results["check"].get("ok"):
        print("WARNING: the baseline check did not pass (a difference, or a variant failed): see its section "
              "in the results")
    print("\nwrote " + ", ".join(str(p) for p in written if p.name.startswith("latest")) + " (and dated copies)")
    return 130 if status == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
