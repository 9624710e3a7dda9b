"""The benchmark gives both DuckDB variants a memory limit, unless the project's config sets one; it reads a
watch batch's latency."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import variants  # noqa: E402
from benchmarks.run import all_sizes, bench_config, parse_args, variants_at  # noqa: E402
from clickstream.config import load_config  # noqa: E402


def args_for(tmp_path: Path, *extra: str):
    return parse_args(["--cache-dir", str(tmp_path / "cache"), *extra])


def test_the_default_limit_goes_to_both_duckdb_variants_and_nothing_else_changes(tmp_path):
    path = bench_config(args_for(tmp_path))
    assert path == tmp_path / "cache" / "bench-config.yaml"
    given, project = load_config(variants.DEFAULT_CONFIG), load_config(path)
    assert project.duckdb.memory_limit == "6GB"
    assert project.model_dump(exclude={"duckdb"}) == given.model_dump(exclude={"duckdb"})
    command = variants.command("plain-duckdb", tmp_path, path, variants.engine_settings(path))
    assert command[command.index("--memory-limit") + 1] == "6GB"


def test_a_limit_in_the_config_is_kept_and_none_leaves_duckdbs_own(tmp_path):
    own = tmp_path / "own.yaml"
    own.write_text("duckdb:\n  memory_limit: 3GB\n", encoding="utf-8")
    assert bench_config(args_for(tmp_path, "--config", str(own))) == own
    assert bench_config(args_for(tmp_path, "--duckdb-memory-limit", "none")) == variants.DEFAULT_CONFIG
    assert not (tmp_path / "cache" / "bench-config.yaml").exists()


def test_a_bad_config_stops_the_benchmark_with_one_line_naming_the_key(tmp_path, capsys):
    from benchmarks.run import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("duckdb:\n  memory_limt: 3GB\n", encoding="utf-8")
    assert main(["--config", str(bad), "--sizes", "200k", "--runs", "1", "--cache-dir", str(tmp_path / "c"),
                 "--results-dir", str(tmp_path / "r")]) == 2
    expected = f"benchmarks/run.py: invalid config {bad}: unknown key 'duckdb.memory_limt' (did you mean 'memory_limit'?)"
    assert capsys.readouterr().err.strip() == expected
    assert not (tmp_path / "r").exists() and not (tmp_path / "c" / "datasets").exists()


def test_the_no_report_variant_is_the_project_run_with_only_html_report_off(tmp_path):
    path = bench_config(args_for(tmp_path))
    data_dir = tmp_path / "runs" / "2m-project-duckdb-no-report-0"
    settings = variants.engine_settings(path)
    command = variants.command("project-duckdb-no-report", data_dir, path, settings)
    config = Path(command[command.index("--config") + 1])
    assert config == tmp_path / "runs" / variants.NO_REPORT_CONFIG
    project = variants.command("project-duckdb", data_dir, path, settings)
    assert [a for a in command if a != str(config)] == [a for a in project if a != str(path)]
    given, without = load_config(path), load_config(config)
    assert without.analytics.html_report is False and given.analytics.html_report is True
    assert without.model_dump(exclude={"analytics": {"html_report"}}) == given.model_dump(
        exclude={"analytics": {"html_report"}})


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_the_no_models_variant_is_the_project_run_with_only_the_models_off(tmp_path, engine):
    """The plain scripts fit no model: their same-work comparison runs the project with churn and clusters off,
    every other setting (the models' own included) as given."""
    given_path = tmp_path / "given.yaml"
    given_path.write_text("analytics:\n  churn:\n    horizon: 21d\n  clusters:\n    k: 3\n", encoding="utf-8")
    path = bench_config(args_for(tmp_path, "--config", str(given_path)))
    data_dir = tmp_path / "runs" / f"2m-project-{engine}-no-models-0"
    settings = variants.engine_settings(path)
    command = variants.command(f"project-{engine}-no-models", data_dir, path, settings)
    config = Path(command[command.index("--config") + 1])
    assert config == tmp_path / "runs" / variants.NO_MODELS_CONFIG
    project = variants.command(f"project-{engine}", data_dir, path, settings)
    assert [a for a in command if a != str(config)] == [a for a in project if a != str(path)]
    given, without = load_config(path), load_config(config)
    assert (given.analytics.churn.enabled, given.analytics.clusters.enabled) == (True, True)
    assert (without.analytics.churn.enabled, without.analytics.clusters.enabled) == (False, False)
    assert (without.analytics.churn.horizon, without.analytics.clusters.k) == ("21d", 3)
    off = {"analytics": {"churn": {"enabled"}, "clusters": {"enabled"}}}
    assert without.model_dump(exclude=off) == given.model_dump(exclude=off)


def test_the_watch_latency_is_the_last_batchs_even_when_a_run_fitting_the_models_came_after(tmp_path):
    history = tmp_path / "reports" / "history"
    history.mkdir(parents=True)
    (history / "quality_20240101T000000000000z000001.json").write_text(json.dumps({"watch": {"latency_seconds": 9.5}}))
    (history / "quality_20240101T000001000000z000002.json").write_text(json.dumps({"watch": {"latency_seconds": 2.25}}))
    (history / "quality_20240101T000009000000z000003.json").write_text(json.dumps({"layers": ["analytics"]}))
    assert variants.read_watch_latency(tmp_path) == 2.25
    assert variants.read_watch_latency(tmp_path / "nothing") is None


def test_the_spark_variants_run_at_their_own_sizes_and_the_others_at_theirs(tmp_path):
    args = args_for(tmp_path, "--sizes", "2m", "--spark-sizes", "1m", "--variants",
                    "project-duckdb,project-spark,plain-pyspark,minimal-duckdb")
    assert all_sizes(args) == [1_000_000, 2_000_000]
    assert variants_at(args, 1_000_000) == ["project-spark", "plain-pyspark"]
    assert variants_at(args, 2_000_000) == ["project-duckdb", "minimal-duckdb"]
    both = args_for(tmp_path, "--sizes", "1m,2m", "--spark-sizes", "1m", "--variants", "project-duckdb,project-spark")
    assert variants_at(both, 1_000_000) == ["project-duckdb", "project-spark"]
    assert variants_at(both, 2_000_000) == ["project-duckdb"]
    same = args_for(tmp_path, "--sizes", "200k", "--variants", "project-spark,plain-duckdb")  # no --spark-sizes
    assert all_sizes(same) == [200_000] and variants_at(same, 200_000) == ["project-spark", "plain-duckdb"]
    duckdb_only = args_for(tmp_path, "--sizes", "100m", "--spark-sizes", "1m", "--variants", "project-duckdb")
    assert all_sizes(duckdb_only) == [100_000_000]  # a Spark size adds nothing without a Spark variant


def test_the_results_say_at_which_sizes_the_spark_variants_ran_when_not_at_the_others(tmp_path):
    from benchmarks import report
    from benchmarks.run import Bench

    both = ("--variants", "project-duckdb,project-spark")
    apart = Bench(args_for(tmp_path, "--sizes", "2m", "--spark-sizes", "1m", *both))
    header = next(line for line in report.render_markdown(apart.results).splitlines() if line.startswith("- sizes:"))
    assert header.startswith("- sizes: 1m = 1,000,000 rows, 2m = 2,000,000 rows;")
    assert header.endswith("; the Spark variants at 1m, the others at 2m")
    together = Bench(args_for(tmp_path, "--sizes", "2m", *both))
    header = next(line for line in report.render_markdown(together.results).splitlines() if line.startswith("- sizes:"))
    assert "Spark variants" not in header


def test_each_variant_reads_its_own_copy_of_the_dataset():
    csv, ndjson = [Path("a.csv")], [Path("a.jsonl")]
    assert variants.raw_files("project-duckdb-ndjson", csv, ndjson) == ndjson
    assert [variants.raw_files(name, csv, ndjson) for name in ("project-duckdb", "plain-duckdb", "project-spark")] \
        == [csv, csv, csv]
    with pytest.raises(ValueError, match="project-duckdb-ndjson reads JSON lines"):
        variants.raw_files("project-duckdb-ndjson", csv, None)
    assert variants.reads_ndjson(["plain-duckdb", "project-duckdb-ndjson"])
    assert not variants.reads_ndjson(["plain-duckdb", "project-duckdb"])
