"""Check that the hand-written baselines do the same work as the project, so timing them is honest.

On a small generated dataset (two files, so late rows and cross-file duplicates occur), runs the project on
DuckDB and each other selected variant, then compares every output table with the project's: row counts of
bronze, silver, quarantine, every gold table and every analytics table, and whole content (run-specific
batch columns excepted) of every table of the small dataset.

    .venv/bin/python benchmarks/check_baselines.py [--rows 20000] [--variants plain-duckdb,plain-pyspark]

Exit status 0 when every compared variant matches, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import datasets, variants  # noqa: E402
from benchmarks.compare import compare_dirs  # noqa: E402
from benchmarks.measure import run_measured  # noqa: E402

log = logging.getLogger("bench.check")

CHECK_ROWS = 20_000
CHECK_FILES = 2


def run_check(cache_dir: Path, variant_names: list[str], rows: int = CHECK_ROWS, seed: int = 42,
              config_path: Path = variants.DEFAULT_CONFIG, work_dir: Path | None = None) -> dict[str, Any]:
    """Run the project (DuckDB) and the given variants on one small dataset and compare their outputs."""
    dataset = datasets.base_dataset(cache_dir, rows, seed, files=CHECK_FILES)
    # a variant reading JSON lines gets the same events written so (as the timed runs give it)
    ndjson = datasets.ndjson_dataset(cache_dir, dataset) if variants.reads_ndjson(variant_names) else None
    settings = variants.engine_settings(config_path)
    work = Path(tempfile.mkdtemp(prefix="check-", dir=work_dir or cache_dir))
    result: dict[str, Any] = {"rows": rows, "seed": seed, "files": CHECK_FILES, "dataset": dataset.key,
                              "reference": "project-duckdb", "variants": {}}
    try:
        outputs = {}
        for name in ["project-duckdb", *[v for v in variant_names if v != "project-duckdb"]]:
            data_dir = work / name
            datasets.link_files(variants.raw_files(name, dataset.files, ndjson.files if ndjson else None),
                                data_dir / "raw")
            cmd = variants.command(name, data_dir, config_path, settings)
            measured = run_measured(cmd, cwd=data_dir, stdout=work / f"{name}.out", stderr=work / f"{name}.err")
            if measured.returncode != 0:
                tail = _tail(work / f"{name}.err")
                log.error("check: %s failed (exit %d):\n%s", name, measured.returncode, tail)
                result["variants"][name] = {"ok": False, "error": f"exit {measured.returncode}", "stderr_tail": tail}
                continue
            outputs[name] = data_dir
            log.info("check: %s ran in %.1f s", name, measured.wall_seconds)
        if "project-duckdb" not in outputs:
            result["ok"] = False
            result["error"] = "the project on DuckDB failed; nothing to compare against"
            return result
        for name, data_dir in outputs.items():
            if name == "project-duckdb":
                continue
            if name == "minimal-duckdb":  # other tables, the same rules: its ledger must be the project's
                problems = ledger_problems(outputs["project-duckdb"], data_dir)
                log.info("check: minimal-duckdb's ledger against project-duckdb: %s", "; ".join(problems) or "same")
                result["variants"][name] = {"ok": not problems, "problems": problems, "tables": []}
                continue
            # the same events from files named *.jsonl: every column but the file's name must agree
            excepted = ("source_file",) if variants.VARIANTS[name].reads_ndjson else ()
            comparison = compare_dirs(outputs["project-duckdb"], data_dir, full_content_max_rows=10 * rows,
                                      excepted=excepted)
            log.info("check: %s against project-duckdb:\n%s", name, comparison.render())
            result["variants"][name] = {"ok": comparison.ok, "problems": comparison.problems(),
                                        "tables": comparison.as_dict()["tables"]}
        compared = [v for v in result["variants"].values()]
        result["ok"] = bool(compared) and all(v["ok"] for v in compared)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


LEDGER = ("bronze_rows", "silver_rows", "quarantine_rows", "duplicate_rows")


def ledger_problems(project_dir: Path, minimal_dir: Path) -> list[str]:
    """Where the minimal baseline's row counts differ from the project's ledger totals (bronze rows, silver,
    quarantined and duplicates; the project's re-delivered rows count as duplicates there)."""
    totals = json.loads((project_dir / "reports" / "quality_report.json").read_text(encoding="utf-8"))["silver"][
        "totals"]
    expected = {k: totals[k] for k in LEDGER}
    expected["duplicate_rows"] += totals.get("redelivered_rows", 0)
    actual = json.loads((minimal_dir / "reports" / "timings.json").read_text(encoding="utf-8"))["row_counts"]
    problems = [f"{k}: project {expected[k]:,}, minimal {actual.get(k)}" for k in LEDGER if actual.get(k) != expected[k]]
    return problems + _reason_problems(project_dir, minimal_dir)


def _reason_problems(project_dir: Path, minimal_dir: Path) -> list[str]:
    """Where the minimal baseline quarantines rows for other reasons than the project (rows per reason list)."""
    import duckdb

    def counts(query: str, path: Path) -> dict[str, int]:
        return dict(duckdb.execute(query, [str(path)]).fetchall())

    expected = counts("select rejection_reasons::varchar, count(*) from read_parquet($1, hive_partitioning=false) "
                      "group by all", project_dir / "quarantine" / "*" / "*.parquet")
    actual = counts("select rejection_reasons::varchar, count(*) from read_parquet($1) group by all",
                    minimal_dir / "minimal" / "quarantine.parquet")
    return [f"quarantine rows for {reasons}: project {expected.get(reasons, 0):,}, minimal {actual.get(reasons, 0):,}"
            for reasons in sorted({*expected, *actual}) if expected.get(reasons) != actual.get(reasons)]


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"Baseline check on {result['rows']:,} rows ({result['files']} files, seed {result['seed']}), "
             f"against {result['reference']}:"]
    if "error" in result:
        lines.append(f"  FAILED: {result['error']}")
    for name, outcome in result["variants"].items():
        if "error" in outcome:
            lines.append(f"  {name:<15} did not run: {outcome['error']}")
            continue
        tables = outcome["tables"]
        if not tables:  # minimal-duckdb: its ledger only
            verdict = "same ledger" if outcome["ok"] else "DIFFERENT ledger"
            lines.append(f"  {name:<15} {verdict}: bronze, silver, quarantine and duplicate rows, quarantine reasons")
            lines.extend(f"      ! {p}" for p in outcome["problems"])
            continue
        full = sum(t["content_compared"] for t in tables)
        verdict = "same outputs" if outcome["ok"] else f"DIFFERENT ({len(outcome['problems'])} problem(s))"
        lines.append(f"  {name:<15} {verdict}: {len(tables)} tables' row counts, {full} compared in full")
        lines.extend(f"      ! {p}" for p in outcome["problems"][:10])
        notes = sorted({n for t in tables for n in t["notes"]})
        lines.extend(f"      note: {n}" for n in notes)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description="Compare the baselines' outputs with the project's.")
    parser.add_argument("--rows", type=int, default=CHECK_ROWS, help=f"rows of the dataset (default {CHECK_ROWS})")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--variants", default="plain-duckdb,plain-pyspark",
                        help="variants to compare with project-duckdb (default plain-duckdb,plain-pyspark; minimal-duckdb is "
                             "compared by its ledger only)")
    parser.add_argument("--config", type=Path, default=variants.DEFAULT_CONFIG, help="the project's config")
    parser.add_argument("--cache-dir", type=Path, default=variants.BENCH_DIR / ".cache")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    result = run_check(args.cache_dir.resolve(), variants.parse_variants(args.variants), args.rows, args.seed,
                       args.config.resolve())
    print("\n".join(summary_lines(result)))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
