"""Benchmark results: the machine, medians (min-max) per variant and size, the target ratios, JSON and Markdown."""
from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.datasets import size_label
from benchmarks.variants import LAYERS, REPO

GIB = 1024 ** 3


# ---- the machine and the software
def machine_info() -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"') + f" (kernel {platform.release()})"
    except OSError:
        pass
    return {
        "cpu_model": cpu_model or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_bytes": mem_total,
        "ram_gib": round(mem_total / GIB, 1) if mem_total else None,
        "os": os_name,
        "machine": platform.machine(),
        "load_average_at_start": load_average(),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: how busy the (shared) machine was."""
    return [round(x, 2) for x in os.getloadavg()]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _java_version() -> str | None:
    java = shutil.which("java")
    if not java:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (out.stderr or out.stdout).strip().splitlines()
    return lines[0] if lines else None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def software_versions() -> dict[str, Any]:
    status = _git("status", "--porcelain")
    return {
        "python": sys.version.split()[0],
        "duckdb": _version("duckdb"),
        "pyspark": _version("pyspark"),
        "java": _java_version(),
        "pyarrow": _version("pyarrow"),
        "numpy": _version("numpy"),
        "clickstream": _version("clickstream"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
    }


# ---- statistics
@dataclass(frozen=True)
class Stat:
    median: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n}


def stat(values: list[float]) -> Stat | None:
    return Stat(statistics.median(values), min(values), max(values), len(values)) if values else None


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """size label -> variant -> kind -> {wall, peak_tree_rss, max_single_rss, layers, ok, failed}."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["size"], run["variant"], run["kind"]), []).append(run)
    for (size, variant, kind), members in groups.items():
        ok = [r for r in members if r["ok"]]
        layers = {}
        found = {k for r in ok for k in r["layers"]}
        for layer in [k for k in LAYERS if k in found] + sorted(found - set(LAYERS)):
            layer_stat = stat([r["layers"][layer] for r in ok if layer in r["layers"]])
            layers[layer] = layer_stat.as_dict() if layer_stat else None
        entry = {
            "runs": len(members), "ok": len(ok), "failed": len(members) - len(ok),
            "wall_seconds": _as_dict(stat([r["wall_seconds"] for r in ok])),
            "peak_tree_rss_bytes": _as_dict(stat([r["peak_tree_rss_bytes"] for r in ok])),
            "max_single_rss_bytes": _as_dict(stat([r["max_single_rss_bytes"] for r in ok])),
            "layers_seconds": layers,
            "errors": sorted({r["error"] for r in members if r.get("error")}),
        }
        summary.setdefault(size, {}).setdefault(variant, {})[kind] = entry
    return summary


def _as_dict(value: Stat | None) -> dict[str, float | int] | None:
    return value.as_dict() if value else None


def _median(summary: dict, size: str, variant: str, kind: str = "full", metric: str = "wall_seconds") -> float | None:
    entry = summary.get(size, {}).get(variant, {}).get(kind)
    if not entry or not entry.get(metric):
        return None
    return entry[metric]["median"]


# ---- the targets of the issue
BENCH_SIZES = (2_000_000, 10_000_000, 100_000_000)  # below these, process start-up dominates
TARGETS = [
    # name, numerator (variant, kind), denominator (variant, kind), comparison, target, sizes where it applies
    # the plain scripts fit no predictive model: the project's same work is its run with the models off
    ("project-duckdb-no-models / plain-duckdb (wall): the same work", ("project-duckdb-no-models", "full"),
     ("plain-duckdb", "full"), "<=", 1.25, (2_000_000, 10_000_000)),
    ("project-duckdb / plain-duckdb (wall): the project also fits the models", ("project-duckdb", "full"),
     ("plain-duckdb", "full"), "<=", 1.25, ()),
    ("project-duckdb / minimal-duckdb (wall)", ("project-duckdb", "full"), ("minimal-duckdb", "full"), "<=", 1.5,
     (2_000_000, 10_000_000)),
    ("plain-pyspark / project-duckdb (wall)", ("plain-pyspark", "full"), ("project-duckdb", "full"), ">=", 10.0,
     (2_000_000,)),
    ("project-spark-no-models / plain-pyspark (wall): the same work", ("project-spark-no-models", "full"),
     ("plain-pyspark", "full"), "<=", 1.15, (1_000_000, 2_000_000)),
    ("project-spark / plain-pyspark (wall): the project also fits the models", ("project-spark", "full"),
     ("plain-pyspark", "full"), "<=", 1.15, ()),
    ("project-duckdb incremental / full (wall)", ("project-duckdb", "incremental"),
     ("project-duckdb", "full_with_increment"), "<=", 0.15, BENCH_SIZES),
    ("project-spark incremental / full (wall)", ("project-spark", "incremental"),
     ("project-spark", "full_with_increment"), "<=", 0.35, BENCH_SIZES),
    ("project-duckdb nothing new / full (wall)", ("project-duckdb", "noop"),
     ("project-duckdb", "full_with_increment"), "<=", 0.05, BENCH_SIZES),
    ("project-spark nothing new / full (wall)", ("project-spark", "noop"),
     ("project-spark", "full_with_increment"), "<=", 0.05, BENCH_SIZES),
    ("project-duckdb / project-duckdb-no-report (wall): the HTML report's cost", ("project-duckdb", "full"),
     ("project-duckdb-no-report", "full"), "<=", 1.05, (2_000_000,)),
    ("project-duckdb-ndjson / project-duckdb (wall): the same events as JSON lines", ("project-duckdb-ndjson", "full"),
     ("project-duckdb", "full"), "<=", 1.5, (2_000_000,)),
]
# Absolute targets: seconds of a measure that is itself a latency, not a ratio of two processes.
LATENCY_TARGETS = [
    ("project-duckdb watch: next-day file arrived -> analytics updated (s)", ("project-duckdb", "watch"), 2.5,
     (2_000_000,)),
]
RSS_TARGET_BYTES = 8 * GIB
RSS_TARGET_ROWS = 100_000_000


def ratios(summary: dict, sizes: dict[str, int]) -> list[dict[str, Any]]:
    """Every target ratio that the measurements allow, with its verdict where the target applies."""
    out = []
    for size, rows in sizes.items():
        for name, (num_variant, num_kind), (den_variant, den_kind), op, target, applies in TARGETS:
            num = _median(summary, size, num_variant, num_kind)
            den = _median(summary, size, den_variant, den_kind)
            if num is None or den is None or den == 0:
                continue
            value = num / den
            applicable = rows in applies
            meets = (value <= target) if op == "<=" else (value >= target)
            out.append({"size": size, "ratio": name, "value": round(value, 3), "target": f"{op} {target:g}",
                        "applies": applicable, "verdict": ("meets" if meets else "misses") if applicable else "n/a"})
        for name, (variant, kind), target, applies in LATENCY_TARGETS:
            value = _median(summary, size, variant, kind)
            if value is not None:
                out.append({"size": size, "ratio": name, "value": round(value, 3), "target": f"<= {target:g}",
                            "applies": rows in applies, "verdict": ("meets" if value <= target else "misses")
                            if rows in applies else "n/a"})
        for variant in ("project-duckdb", "project-spark", "plain-duckdb", "plain-pyspark", "minimal-duckdb"):
            peak = _median(summary, size, variant, "full", "peak_tree_rss_bytes")
            if peak is None:
                continue
            entry = summary[size][variant]["full"]["peak_tree_rss_bytes"]
            applicable = rows == RSS_TARGET_ROWS and variant == "project-duckdb"
            out.append({"size": size, "ratio": f"{variant} peak tree RSS (max over runs), GiB",
                        "value": round(entry["max"] / GIB, 3), "target": "<= 8", "applies": applicable,
                        "verdict": ("meets" if entry["max"] <= RSS_TARGET_BYTES else "misses") if applicable
                        else "n/a"})
    return out


# ---- rendering
def _seconds(entry: dict | None) -> str:
    if not entry:
        return "-"
    if entry["n"] == 1:
        return f"{entry['median']:.2f}"
    return f"{entry['median']:.2f} ({entry['min']:.2f}-{entry['max']:.2f})"


def _gib(entry: dict | None) -> str:
    if not entry:
        return "-"
    if entry["n"] == 1:
        return f"{entry['median'] / GIB:.2f}"
    return f"{entry['median'] / GIB:.2f} ({entry['min'] / GIB:.2f}-{entry['max'] / GIB:.2f})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    return lines


KIND_LABELS = {"full": "full run", "incremental_base": "incremental: first full run",
               "incremental": "incremental: +1% file", "noop": "nothing new: run again",
               "watch": "watch: next-day file -> analytics (latency)",
               "full_with_increment": "full run incl. +1% file"}


def summary_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for size, by_variant in results["summary"].items():
        for variant in results["settings"]["variants"]:
            for kind in ("full", "incremental", "noop", "watch", "full_with_increment"):
                entry = by_variant.get(variant, {}).get(kind)
                if not entry:
                    continue
                layers = entry["layers_seconds"] or {}
                status = f"{entry['ok']}/{entry['runs']}" + (" FAILED" if entry["failed"] else "")
                rows.append([size, variant, KIND_LABELS[kind], status, _seconds(entry["wall_seconds"]),
                             _gib(entry["peak_tree_rss_bytes"]), _gib(entry["max_single_rss_bytes"]),
                             *[_seconds(layers.get(layer)) for layer in LAYERS]])
    header = ["size", "variant", "what", "ok/runs", "wall s median (min-max)", "peak tree RSS GiB",
              "max 1-process RSS GiB", *[f"{layer} s" for layer in LAYERS]]
    return _table(header, rows)


def ratio_table(results: dict[str, Any]) -> list[str]:
    rows = [[r["size"], r["ratio"], f"{r['value']:.3f}", r["target"], r["verdict"]] for r in results["ratios"]]
    return _table(["size", "measure (ratios are of medians)", "value", "target", "verdict"], rows)


def render_markdown(results: dict[str, Any]) -> str:
    m, v, s = results["machine"], results["versions"], results["settings"]
    lines = [
        "# clickstream benchmark",
        "",
        f"- date: {results['started_at']} to {results.get('finished_at') or '(unfinished)'} (UTC); "
        f"status: {results['status']}",
        f"- machine: {m['cpu_model']}, {m['cores']} cores ({m['cores_available']} available), "
        f"{m['ram_gib']} GiB RAM, {m['os']}; load average at start {m['load_average_at_start']}, "
        f"at end {m.get('load_average_at_end')}",
        f"- versions: python {v['python']}, duckdb {v['duckdb']}, pyspark {v['pyspark']}, java {v['java']!r}, "
        f"pyarrow {v['pyarrow']}, numpy {v['numpy']}; commit {v['git_commit']}"
        + (" (uncommitted changes)" if v.get("git_dirty") else ""),
        f"- sizes: {', '.join(f'{k} = {n:,} rows' for k, n in s['sizes'].items())}; runs per variant: "
        f"{s['runs']}, interleaved {' '.join(s['order'])} ...; seed {s['seed']}; generator sha256 "
        f"{s['generator_sha256_12']}"
        + (f"; the Spark variants at {', '.join(s['spark_sizes'])}, the others at {', '.join(s['other_sizes'])}"
           if s.get("spark_sizes") and s["spark_sizes"] != s.get("other_sizes") else ""),
        f"- datasets: " + "; ".join(f"{k}: {d['rows']:,} rows in {len(d['files'])} file(s), "
                                    f"{d['bytes'] / 1e6:,.0f} MB" for k, d in results["datasets"].items()),
        f"- engine settings (project config, also given to the plain scripts): {json.dumps(s['engine_settings'])}",
        "",
        "Wall time is the whole process (interpreter start, imports and JVM launch included). Peak tree RSS is the",
        "summed resident memory of the process and all its descendants (the Spark JVM too), sampled every",
        "100 ms from /proc; max 1-process RSS is `/usr/bin/time -v`'s \"Maximum resident set size\" (the",
        "largest single process, blind to a JVM python does not wait for). Layer seconds are what each",
        "variant reports itself (the project: reports/quality_report.json; the plain scripts:",
        "reports/timings.json).",
        "",
        "## Medians",
        "",
        *summary_table(results),
        "",
        "## Ratios and targets",
        "",
        *(ratio_table(results) if results["ratios"] else ["(no ratio could be computed from these runs)"]),
        "",
    ]
    check = results.get("check")
    if check:
        from benchmarks.check_baselines import summary_lines

        lines += ["## Baseline check", "", "```", *summary_lines(check), "```", ""]
    failures = [r for r in results["runs"] if not r["ok"]]
    if failures:
        lines += ["## Failed runs", ""]
        for run in failures:
            lines.append(f"- {run['size']} {run['variant']} {run['kind']} #{run['run_index'] + 1}: {run['error']}")
            if run.get("stderr_tail"):
                lines += ["", "  ```", *[f"  {line}" for line in run["stderr_tail"].splitlines()[-8:]], "  ```", ""]
        lines.append("")
    lines += ["All raw measurements are in the JSON file beside this one.", ""]
    return "\n".join(lines)


def write_results(results: dict[str, Any], results_dir: Path) -> list[Path]:
    """latest.json and latest.md, plus a copy named after the start time and sizes."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = results["started_at"].replace(":", "").replace("-", "")[:15] + "Z"
    sizes = "-".join(results["settings"]["sizes"])
    text = json.dumps(results, indent=2, default=str) + "\n"
    markdown = render_markdown(results)
    written = []
    for name in ("latest", f"{stamp}_{sizes}"):
        for suffix, content in ((".json", text), (".md", markdown)):
            path = results_dir / f"{name}{suffix}"
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(content, encoding="utf-8")
            os.replace(tmp, path)
            written.append(path)
    return written


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def sizes_dict(rows: list[int]) -> dict[str, int]:
    return {size_label(r): r for r in rows}
