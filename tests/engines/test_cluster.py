"""The pipeline on a Spark standalone cluster: a master and two workers in their own JVMs on this machine.

Generated dirty data runs from the command line (`clickstream run` with `spark.master: spark://...`) and under
`spark-submit --master spark://...` of jobs/spark_submit.py, each into its own data directory. Every table of
each must equal DuckDB's on the same files, the ledger must balance alike, and the work must have been done by
executors the workers started. The drivers run in subprocesses: the test run's own SparkSession (local[2])
cannot switch masters.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clickstream import analytics, gold
from clickstream.config import Config
from clickstream.generate import generate
from clickstream.pipeline import run_layers, verify

from engine_support import read_table, table_differences

pytestmark = [pytest.mark.spark, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ROWS, SEED, FILES = 6_000, 11, 3
LAUNCHERS = ("cli", "spark-submit")
APP_NAMES = {launcher: f"clickstream-cluster-{launcher}" for launcher in LAUNCHERS}
TABLES = (["silver", "quarantine", "duplicates"]
          + [f"gold/{m['name']}" for m in gold.models() if m.get("publish", True)]
          + [f"analytics/{q['name']}" for q in analytics.queries(config=Config())])
RUN_SECONDS = 600


def cluster_config(path: Path, cluster, launcher: str, logs_dir: Path) -> Path:
    """A config for a driver on this machine: the cluster's master, and the driver reachable on 127.0.0.1."""
    path.write_text(yaml.safe_dump({
        "engine": "spark",
        "paths": {"logs_dir": str(logs_dir)},
        "spark": {"master": cluster.master_url, "app_name": APP_NAMES[launcher], "shuffle_partitions": 2,
                  "driver_memory": "1g", "executor_memory": "512m",
                  "conf": {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                           "spark.local.dir": str(path.parent / "spark-local")}},
    }))
    return path


def launch_command(launcher: str, cluster, config: Path, data_dir: Path) -> list[str]:
    """`clickstream run`, or spark-submit of jobs/spark_submit.py with the driver settings on its command line."""
    options = ["--config", str(config), "--data-dir", str(data_dir)]
    if launcher == "cli":
        return [str(Path(sys.executable).parent / "clickstream"), "run", *options]
    return [str(Path(sys.executable).parent / "spark-submit"), "--master", cluster.master_url,
            "--name", APP_NAMES[launcher], "--driver-memory", "1g",
            "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1",
            str(REPO / "jobs" / "spark_submit.py"), "run", "--engine", "spark", *options]


def link_raw(data_dir: Path, files: list[Path]) -> Path:
    (data_dir / "raw").mkdir(parents=True)
    for file in files:
        (data_dir / "raw" / file.name).symlink_to(file)
    return data_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory, spark_cluster) -> dict[str, Path]:
    """The data directories of DuckDB and of each launcher on the cluster, after a run on the same files."""
    root = tmp_path_factory.mktemp("cluster-runs")
    files = generate(root / "source", rows=ROWS, seed=SEED, files=FILES).files
    result = {"duckdb": link_raw(root / "duckdb", files)}
    run_layers(Config().with_overrides(data_dir=result["duckdb"], engine="duckdb", logs_dir=root / "logs"))
    for launcher in LAUNCHERS:
        data_dir = result[launcher] = link_raw(root / launcher, files)
        config = cluster_config(root / f"{launcher}.yaml", spark_cluster, launcher, root / "logs")
        command = launch_command(launcher, spark_cluster, config, data_dir)
        done = subprocess.run(command, env=spark_cluster.env, cwd=root, capture_output=True, text=True,
                              timeout=RUN_SECONDS)
        assert done.returncode == 0, f"{launcher} exited with {done.returncode}:\n{done.stderr[-3000:]}"
    return result


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_table_equals_duckdbs(runs, launcher, table):
    expected, actual = read_table(runs["duckdb"] / table), read_table(runs[launcher] / table)
    assert expected is not None, f"{table} is empty: nothing compared"
    assert table_differences(expected, actual) == []


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_the_ledger_balances_alike(runs, launcher):
    expected, actual = (verify(Config().with_overrides(data_dir=runs[name], engine="duckdb"))
                        for name in ("duckdb", launcher))
    assert actual == expected
    assert [(row["source_file"], row["balanced"]) for row in actual] == [
        (f"clickstream_{SEED}_{number:03d}.csv", True) for number in range(1, FILES + 1)]


def test_the_executors_ran_on_the_workers(runs, spark_cluster):
    """Each run is an application of the master, given every worker's core, and each worker started an
    executor for it that ran tasks (its log, in the worker's folder, says so)."""
    master = spark_cluster.status()
    apps = {app["name"]: app for app in master["completedapps"] + master["activeapps"]}
    assert {name: apps[name]["state"] for name in APP_NAMES.values() if name in apps} == {
        name: "FINISHED" for name in APP_NAMES.values()}
    for name in APP_NAMES.values():
        app = apps[name]
        assert app["cores"] == sum(worker["cores"] for worker in master["workers"]), app
        for worker in spark_cluster.workers:
            executors = [e for e in spark_cluster.status(worker.webui_url)["finishedexecutors"]
                         if e["appid"] == app["id"]]
            assert len(executors) == 1, (worker, executors)
            log = (worker.work_dir / app["id"] / str(executors[0]["id"]) / "stderr").read_text(errors="replace")
            assert "Finished task" in log, f"no task finished on {worker.webui_url} for {name}"
