"""Fixtures of the engine tests: one SparkSession per test process (engine_support.TEST_SPARK: local[1], one shuffle
partition, adaptive execution off, UI off),
and a Spark standalone cluster on this machine for the tests that run the pipeline on one.

The session is started by a SparkEngine, so it gets the engine's quiet logging; every other SparkEngine of
the run (including those `run_layers` creates) finds it running, uses it and leaves it running.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from clickstream.config import DuckDBSettings
from clickstream.engines.duckdb_engine import DuckDBEngine

sys.path.insert(0, str(Path(__file__).parent))  # engine_support, the helpers of these tests
from engine_support import TEST_SPARK, spark_unavailable  # noqa: E402


@pytest.fixture(scope="session")
def spark_session_owner() -> Iterator[object]:
    """The engine that starts the run's one SparkSession, and stops it when the run ends."""
    reason = spark_unavailable()
    if reason:
        pytest.skip(reason)
    from clickstream.engines.spark_engine import SparkEngine

    owner = SparkEngine(TEST_SPARK)
    owner.open()  # started now, not at its first query (as `clickstream watch` keeps one for every batch)
    assert owner.owns_session
    yield owner
    owner.close()


@pytest.fixture
def spark(spark_session_owner) -> Iterator[object]:
    """A SparkEngine on the shared session; its views and cached tables are dropped after the test."""
    from clickstream.engines.spark_engine import SparkEngine

    engine = SparkEngine(TEST_SPARK)
    assert engine.spark is not None and not engine.owns_session
    yield engine
    engine.close()


@pytest.fixture
def duckdb_engine() -> Iterator[DuckDBEngine]:
    engine = DuckDBEngine(DuckDBSettings(threads=2))
    yield engine
    engine.close()


# ---- a Spark standalone cluster: one master and two workers, each in its own JVM, on 127.0.0.1

CLUSTER_WORKERS = 2
WORKER_CORES = 1
WORKER_MEMORY = "1g"
CLUSTER_START_SECONDS = 120  # three JVMs starting at once on a busy 2-core machine


@dataclass(frozen=True)
class SparkWorker:
    webui_url: str
    work_dir: Path  # where the worker keeps each executor's stdout and stderr: <app id>/<executor id>/


@dataclass(frozen=True)
class SparkCluster:
    master_url: str  # spark://127.0.0.1:PORT
    webui_url: str  # the master's web UI; `<webui_url>/json/` is its status
    workers: tuple[SparkWorker, ...]
    env: dict[str, str]  # the environment of a driver that runs on this cluster from this machine

    def status(self, url: str | None = None) -> dict:
        """The JSON status of the master (or of a worker, given its web UI)."""
        with urllib.request.urlopen(f"{url or self.webui_url}/json/", timeout=10) as response:
            return json.load(response)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the daemon's process group (its executors included), SIGKILL if it has not ended in 20 s."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)  # started in a session of its own: the group is the daemon's pid
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory) -> Iterator[SparkCluster]:
    """A Spark standalone master and two workers (1 core, 1 GB each), started with PySpark's own launcher
    (`bin/spark-class`) on free ports of 127.0.0.1, and stopped by pid at the end, or as soon as starting
    them fails."""
    reason = spark_unavailable()
    if reason:
        pytest.skip(reason)
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    launcher = spark_home / "bin" / "spark-class"
    if not launcher.is_file():
        pytest.skip(f"PySpark at {spark_home} has no bin/spark-class to start a standalone cluster with")
    root = tmp_path_factory.mktemp("spark-cluster")
    (root / "conf").mkdir()  # an empty SPARK_CONF_DIR: nothing from the installation's conf/ applies
    env = {**os.environ, "SPARK_HOME": str(spark_home), "SPARK_CONF_DIR": str(root / "conf"),
           "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_DAEMON_MEMORY": "256m"}
    master_port, master_webui = _free_port(), _free_port()
    master_url, webui_url = f"spark://127.0.0.1:{master_port}", f"http://127.0.0.1:{master_webui}"
    daemons = [("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                           "--port", str(master_port), "--webui-port", str(master_webui)])]
    workers = []
    for number in range(1, CLUSTER_WORKERS + 1):
        work_dir, worker_webui = root / f"worker-{number}", _free_port()
        workers.append(SparkWorker(f"http://127.0.0.1:{worker_webui}", work_dir))
        daemons.append((f"worker-{number}", [
            "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port", str(_free_port()),
            "--webui-port", str(worker_webui), "--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY,
            "--work-dir", str(work_dir), master_url]))
    cluster = SparkCluster(master_url, webui_url, tuple(workers),
                           env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1",
                                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    processes: list[tuple[str, subprocess.Popen]] = []
    try:
        for name, args in daemons:  # the workers keep trying to register until the master is up
            with (root / f"{name}.log").open("wb") as log_file:
                processes.append((name, subprocess.Popen([str(launcher), *args], env=env, cwd=root,
                                                         stdin=subprocess.DEVNULL, stdout=log_file,
                                                         stderr=subprocess.STDOUT, start_new_session=True)))
        deadline = time.monotonic() + CLUSTER_START_SECONDS
        while True:
            ended = [(name, p.returncode) for name, p in processes if p.poll() is not None]
            if ended:
                name, code = ended[0]
                raise RuntimeError(f"the Spark {name} exited with status {code} while starting:\n"
                                   f"{_tail(root / f'{name}.log')}")
            try:
                status = cluster.status()
                if status.get("status") == "ALIVE" and status.get("aliveworkers") == CLUSTER_WORKERS:
                    break
            except (OSError, ValueError):  # not listening yet
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Spark cluster did not have {CLUSTER_WORKERS} workers after "
                                   f"{CLUSTER_START_SECONDS} s; master log:\n{_tail(root / 'master.log')}")
            time.sleep(0.5)
        yield cluster
    finally:
        for _, process in reversed(processes):  # workers first, so none tries to reach a stopped master
            _stop(process)
