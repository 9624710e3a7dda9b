"""The things the benchmark times, as command lines, and where each writes its per-layer times.

  project-duckdb  the project's CLI on the embedded engine:   clickstream run --engine duckdb
  project-spark   the project's CLI on Spark:                 clickstream run --engine spark
  plain-duckdb    benchmarks/baselines/plain_duckdb.py        hand-written, same work
  plain-pyspark   benchmarks/baselines/plain_pyspark.py       hand-written, same work
  minimal-duckdb  benchmarks/baselines/minimal_duckdb.py      hand-written, same rules, the least work
  project-duckdb-no-report   the project on DuckDB with analytics.html_report false: what the HTML report costs
  project-duckdb-ndjson      the project on DuckDB reading the same events written as JSON lines
  project-duckdb-no-models   the project on DuckDB with analytics.churn and analytics.clusters off: the same work
                             as plain-duckdb, which fits no predictive model
  project-spark-no-models    the project on Spark, the same: the same work as plain-pyspark

The plain scripts get the same engine settings as the project's config (DuckDB threads and memory limit;
Spark master, driver memory, shuffle partitions and extra settings), so engine tuning is not what differs.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEFAULT_CONFIG = REPO / "config" / "config.yaml"
LAYERS = ["bronze", "silver", "gold", "analytics"]


@dataclass(frozen=True)
class Variant:
    name: str
    letter: str
    uses_spark: bool
    is_project: bool
    incremental: bool = True  # also timed with --incremental (project variants only)
    reads_ndjson: bool = False  # reads the dataset written as JSON lines (datasets.ndjson_dataset)


VARIANTS = {
    "project-duckdb": Variant("project-duckdb", "A", uses_spark=False, is_project=True),
    "project-spark": Variant("project-spark", "B", uses_spark=True, is_project=True),
    "plain-duckdb": Variant("plain-duckdb", "C", uses_spark=False, is_project=False),
    "plain-pyspark": Variant("plain-pyspark", "D", uses_spark=True, is_project=False),
    "minimal-duckdb": Variant("minimal-duckdb", "E", uses_spark=False, is_project=False),
    "project-duckdb-no-report": Variant("project-duckdb-no-report", "F", uses_spark=False, is_project=True,
                                        incremental=False),
    "project-duckdb-ndjson": Variant("project-duckdb-ndjson", "G", uses_spark=False, is_project=True,
                                     incremental=False, reads_ndjson=True),
    "project-duckdb-no-models": Variant("project-duckdb-no-models", "H", uses_spark=False, is_project=True,
                                        incremental=False),
    "project-spark-no-models": Variant("project-spark-no-models", "I", uses_spark=True, is_project=True,
                                       incremental=False),
}
NO_REPORT_CONFIG = "config-no-report.yaml"
NO_MODELS_CONFIG = "config-no-models.yaml"
NDJSON_CONFIG = "config-ndjson.yaml"


def parse_variants(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise ValueError(f"unknown variant(s) {unknown or text!r}; choose among {', '.join(VARIANTS)}")
    return list(dict.fromkeys(names))


def reads_ndjson(names: list[str]) -> bool:
    """Whether one of the variants `names` reads the dataset written as JSON lines (datasets.ndjson_dataset)."""
    return any(VARIANTS[name].reads_ndjson for name in names)


def raw_files(variant: str, csv: list[Path], ndjson: list[Path] | None) -> list[Path]:
    """The files `variant` reads: the dataset's JSON-lines copy for a variant that reads JSON lines, else its CSV
    files."""
    if not VARIANTS[variant].reads_ndjson:
        return csv
    if ndjson is None:
        raise ValueError(f"{variant} reads JSON lines: give it the dataset's JSON-lines copy")
    return ndjson


def engine_settings(config_path: Path) -> dict[str, Any]:
    """The project's engine settings from its config, to give the plain scripts the same ones."""
    from clickstream.config import load_config

    config = load_config(config_path)
    return {
        "duckdb": {"threads": config.duckdb.threads, "memory_limit": config.duckdb.memory_limit},
        "spark": {"master": config.spark.master, "driver_memory": config.spark.driver_memory,
                  "shuffle_partitions": config.spark.shuffle_partitions, "conf": dict(config.spark.conf)},
    }


def command(variant: str, data_dir: Path, config_path: Path, settings: dict[str, Any]) -> list[str]:
    python = sys.executable
    if variant == "project-duckdb-no-report":
        return command("project-duckdb", data_dir, no_report_config(config_path, data_dir.parent), settings)
    if variant.endswith("-no-models"):
        return command(variant.removesuffix("-no-models"), data_dir, no_models_config(config_path, data_dir.parent),
                       settings)
    if variant == "project-duckdb-ndjson":
        return command("project-duckdb", data_dir, ndjson_config(config_path, data_dir.parent), settings)
    if variant in ("project-duckdb", "project-spark"):
        engine = variant.split("-", 1)[1]
        return [python, "-m", "clickstream", "run", "--data-dir", str(data_dir), "--engine", engine,
                "--config", str(config_path)]
    if variant in ("plain-duckdb", "minimal-duckdb"):
        duck = settings["duckdb"]
        script = "plain_duckdb.py" if variant == "plain-duckdb" else "minimal_duckdb.py"
        cmd = [python, str(BENCH_DIR / "baselines" / script), "--data-dir", str(data_dir)]
        if duck["threads"]:
            cmd += ["--threads", str(duck["threads"])]
        if duck["memory_limit"]:
            cmd += ["--memory-limit", str(duck["memory_limit"])]
        return cmd
    if variant == "plain-pyspark":
        spark = settings["spark"]
        cmd = [python, str(BENCH_DIR / "baselines" / "plain_pyspark.py"), "--data-dir", str(data_dir),
               "--master", spark["master"], "--driver-memory", spark["driver_memory"],
               "--shuffle-partitions", str(spark["shuffle_partitions"])]
        for key, value in spark["conf"].items():
            cmd += ["--conf", f"{key}={value}"]
        return cmd
    raise ValueError(f"unknown variant {variant!r}")


def _write_copy(config_path: Path, folder: Path, name: str, what: str, raw: dict[str, Any]) -> Path:
    """`raw` (the config as read, changed) written in `folder` as `name`, its first line saying what changed."""
    import yaml

    path = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {config_path} {what} (benchmarks/variants.py)\n" + yaml.safe_dump(raw, sort_keys=False),
                    encoding="utf-8")
    return path


def _read(config_path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}


def _analytics_changed(config_path: Path, folder: Path, name: str, what: str, changes: dict[str, Any]) -> Path:
    """A copy of the config with `changes` merged into its analytics settings (a key's own mapping updated, not
    replaced), written in `folder` as `name`."""
    raw = _read(config_path)
    analytics = dict(raw.get("analytics") or {})
    for key, value in changes.items():
        analytics[key] = {**(analytics.get(key) or {}), **value} if isinstance(value, dict) else value
    raw["analytics"] = analytics
    return _write_copy(config_path, folder, name, what, raw)


def no_report_config(config_path: Path, folder: Path) -> Path:
    """A copy of the config with analytics.html_report false, written in `folder`: the same run without the page."""
    return _analytics_changed(config_path, folder, NO_REPORT_CONFIG, "without analytics/report.html",
                              {"html_report": False})


def no_models_config(config_path: Path, folder: Path) -> Path:
    """A copy of the config with the predictive models off (analytics.churn and analytics.clusters), written in
    `folder`: the same run without them, the work the plain scripts do."""
    return _analytics_changed(config_path, folder, NO_MODELS_CONFIG, "without the predictive models",
                              {"churn": {"enabled": False}, "clusters": {"enabled": False}})


def ndjson_config(config_path: Path, folder: Path) -> Path:
    """A copy of the config whose sources read `*.jsonl` (JSON lines, by the name), keys as the CSV header's."""
    raw = _read(config_path)
    raw["sources"] = [{**source, "glob": "*.jsonl"} for source in raw.get("sources") or [{"name": "clickstream"}]]
    for source in raw["sources"]:
        source.pop("csv", None)
    return _write_copy(config_path, folder, NDJSON_CONFIG, "reading JSON lines", raw)


def read_layers(variant: str, data_dir: Path) -> tuple[dict[str, float], dict[str, int]]:
    """(seconds per layer, row counts) as the run reported them; empty when it wrote no report."""
    if VARIANTS[variant].is_project:
        path = data_dir / "reports" / "quality_report.json"
    else:
        path = data_dir / "reports" / "timings.json"
    if not path.is_file():
        return {}, {}
    report = json.loads(path.read_text(encoding="utf-8"))
    report = report.get("last_run", report)  # the project's report: the run's own record
    reported = report.get("timings_seconds", {})
    # in pipeline order (the project's report is written with sorted keys)
    order = [k for k in LAYERS if k in reported] + sorted(set(reported) - set(LAYERS))
    timings = {k: float(reported[k]) for k in order}
    if not VARIANTS[variant].is_project:
        return timings, {k: int(v) for k, v in report.get("row_counts", {}).items()}
    rows = dict(report.get("silver", {}).get("totals", {}))
    gold_counts = report.get("gold", {}).get("row_counts", {})
    if "fct_events" in gold_counts:
        rows["fct_events"] = gold_counts["fct_events"]
    return timings, {k: int(v) for k, v in rows.items()}


def watch_command(variant: str, data_dir: Path, config_path: Path) -> list[str]:
    """`clickstream watch` for one batch on the variant's engine (project variants only)."""
    engine = variant.split("-")[1]
    return [sys.executable, "-m", "clickstream", "watch", "--data-dir", str(data_dir), "--engine", engine,
            "--config", str(config_path), "--max-batches", "1"]


def read_watch_latency(data_dir: Path) -> float | None:
    """The last watch batch's latency (its file's arrival to analytics updated), from its run's record: the
    newest run in reports/history that was a watch batch (a run after it may fit the models it left due)."""
    for path in sorted((data_dir / "reports" / "history").glob("*.json"), reverse=True):
        batch = json.loads(path.read_text(encoding="utf-8")).get("watch") or {}
        if batch.get("latency_seconds") is not None:
            return float(batch["latency_seconds"])
    return None
