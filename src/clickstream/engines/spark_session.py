"""Starting Spark for the engine: the Java process, its log lines forwarded to Python's logging, the session's
settings.

A CLI run starts its own Java process, with the project's log4j2 file (warnings and errors only), and reads what
it writes to stderr line by line, so Spark's lines reach the terminal and the job's log file with their level.
Under `spark-submit` the Java process exists already: the session connects to it, and makes its logging quiet
unless the spark-submit command line chose the logging itself.
"""
from __future__ import annotations

import collections
import logging
import os
import re
import shutil
import subprocess
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from pyspark import SparkConf, SparkContext
from pyspark.java_gateway import launch_gateway
from pyspark.sql import SparkSession

from clickstream.config import ConfigError, SparkSettings
from clickstream.engines import EngineUnavailable

log = logging.getLogger(__name__)

LOG4J2_CONFIG = Path(__file__).with_name("spark-log4j2.properties")

# SQL settings the results depend on: set on every session the engine runs on, whoever started it.
REQUIRED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # ANSI stays on: bad casts and overflows fail loudly; the models parse dirty text with try_ forms.
    "spark.sql.ansi.enabled": "true",
    # `timestamp` is a wall-clock time without zone, as in DuckDB (and as both engines write to Parquet).
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    # "UserID" names a column, as in DuckDB and standard SQL.
    "spark.sql.ansi.doubleQuotedIdentifiers": "true",
    # Text no format parses is NULL, never a "different result since Spark 3.0" error.
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    # Proleptic Gregorian calendar for old dates, as DuckDB; no rebase error on a year-24 timestamp.
    "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.datetimeRebaseModeInRead": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInRead": "CORRECTED",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": "snappy",
}

_LOG4J_LEVELS = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
                 "WARNING:": logging.WARNING, "ERROR": logging.ERROR, "FATAL": logging.CRITICAL}
# Printed by the JVM itself (Spark 4 always loads this module); it says nothing about the run.
_JVM_NOISE = ("WARNING: Using incubator modules",)


def active_context() -> SparkContext | None:
    """The SparkContext running in this process, or None."""
    return SparkContext._active_spark_context


def running_session() -> SparkSession | None:
    """The SparkSession already running in this process (a test suite's, a notebook's), or None."""
    if active_context() is None:
        return None
    return SparkSession.builder.getOrCreate()


def start_session(settings: SparkSettings) -> SparkSession:
    """Start a session from `settings`: its own Java process, or the one spark-submit started."""
    under_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    conf = SparkConf()
    for key, value in session_conf(settings, under_spark_submit).items():
        conf.set(key, value)
    if SparkContext._gateway is None:  # no Java process yet, or spark-submit's, not yet connected to
        if not under_spark_submit:
            SparkContext(conf=conf, gateway=_launch_jvm(conf))
            return SparkSession.builder.getOrCreate()
        # spark-submit's Java process logs at INFO (pages per run) unless its command line chose otherwise
        gateway = launch_gateway(conf)  # connects to it
        quiet = not _spark_submit_chose_logging(gateway.jvm, conf)
        if quiet:
            conf.set("spark.log.level", "WARN")
        SparkContext(conf=conf, gateway=gateway)
        if quiet:
            _set_quiet_logger_levels(gateway.jvm)
        return SparkSession.builder.getOrCreate()
    # the Java process of a session stopped earlier in this process
    return SparkSession.builder.config(conf=conf).getOrCreate()


def jvm_cpu_seconds() -> float:
    """User and system CPU seconds of the Java process this process talks to, so far, read from /proc: the
    child PySpark launched (its `gateway.proc`), or spark-submit's, which started this process. 0 where it
    cannot be read (no /proc, the process gone: a child that ended and was waited for is in getrusage's
    RUSAGE_CHILDREN instead)."""
    pid = jvm_pid()
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # after the name in parentheses (which may hold spaces): state, ... utime stime cutime cstime (fields 14-17)
    fields = stat[stat.rindex(")") + 2:].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def jvm_pid() -> int | None:
    """The Java process this process talks to: the child PySpark launched (its `gateway.proc`), or
    spark-submit's, which started this process; None before a session started."""
    gateway = SparkContext._gateway
    if gateway is None:
        return None
    proc = getattr(gateway, "proc", None)
    return proc.pid if proc is not None else os.getppid() if "PYSPARK_GATEWAY_PORT" in os.environ else None


_FINISHED_STAGES = ("COMPLETE", "FAILED")


def stage_metrics(context: SparkContext) -> dict[str, tuple[int, ...]]:
    """Each finished stage the status store keeps ("<stage>.<attempt>"): executor run time (ms), executor CPU
    time (ns), shuffle bytes read and written."""
    gateway = context._gateway
    store = context._jsc.sc().statusStore()
    stages = store.stageList(None, False, False, gateway.new_array(gateway.jvm.double, 0),
                             gateway.jvm.java.util.ArrayList())
    found = {}
    for index in range(stages.size()):
        stage = stages.apply(index)
        if stage.status().toString() in _FINISHED_STAGES:
            found[f"{stage.stageId()}.{stage.attemptId()}"] = (
                int(stage.executorRunTime()), int(stage.executorCpuTime()), int(stage.shuffleReadBytes()),
                int(stage.shuffleWriteBytes()))
    return found


def _java_executable() -> str:
    """The `java` Spark's launcher will run (JAVA_HOME first, as spark-class does), or a plain error."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home, "bin", "java")
        if not java.is_file():
            raise EngineUnavailable(f"the Spark engine needs Java 17 or later: JAVA_HOME is {home}, which has no "
                                    f"bin/java (set JAVA_HOME to a Java 17+ installation)")
        return str(java)
    java_on_path = shutil.which("java")
    if not java_on_path:
        raise EngineUnavailable("the Spark engine needs Java 17 or later, and none was found: no `java` on PATH "
                                "and JAVA_HOME is not set (install Java 17+, e.g. openjdk-17-jre-headless)")
    return java_on_path


def _java_version(java: str) -> str:
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`{java} -version` failed: {exc}"
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0] if lines else "unknown version"


def _forward_jvm_output(fd: int, tail: collections.deque[str]) -> None:
    """Log each line the Java process writes to stderr (log4j lines keep their level); keep the last few."""
    level = logging.WARNING
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as stream:
        for raw_line in stream:
            line = raw_line.rstrip()
            if not line:
                continue
            tail.append(line)
            if line.startswith(_JVM_NOISE):
                log.debug("spark: %s", line)
                continue
            level = _LOG4J_LEVELS.get(line.split(" ", 1)[0], level)  # a stack trace line keeps the level
            log.log(level, "spark: %s", line)


def _launch_jvm(conf: SparkConf) -> Any:
    """Start Spark's Java process with its stderr read by a thread that logs it (see _forward_jvm_output)."""
    java = _java_executable()
    read_fd, write_fd = os.pipe()
    tail: collections.deque[str] = collections.deque(maxlen=20)
    reader = threading.Thread(target=_forward_jvm_output, args=(read_fd, tail), name="spark-jvm-stderr",
                              daemon=True)
    reader.start()
    try:
        return launch_gateway(conf, popen_kwargs={"stderr": write_fd})
    except Exception as exc:
        os.close(write_fd)
        write_fd = -1
        reader.join(timeout=5)
        said = [line for line in tail if not line.startswith(_JVM_NOISE)]
        raise EngineUnavailable(
            f"Spark could not start its Java process; the Spark engine needs Java 17 or later, and {java} is "
            f"{_java_version(java)}" + (f". Java said: {said[-1]}" if said else "")
        ) from exc
    finally:
        if write_fd >= 0:
            os.close(write_fd)  # the child holds its own copy; ours would keep the pipe open forever


def _spark_submit_chose_logging(jvm: Any, conf: SparkConf) -> bool:
    """Whether the spark-submit command line set the logging (--conf spark.log.level, or a log4j2 file)."""
    system = jvm.java.lang.System
    return bool(system.getProperty("spark.log.level") or system.getProperty("log4j2.configurationFile")
                or conf.contains("spark.log.level"))


def _set_quiet_logger_levels(jvm: Any) -> None:
    """The per-logger levels of our log4j2 file, applied to a running Java process (spark-submit's)."""
    text = resources.files(__package__).joinpath(LOG4J2_CONFIG.name).read_text(encoding="utf-8")  # zip-safe
    settings = dict(re.findall(r"^(logger\.[\w.]+)\s*=\s*(\S+)\s*$", text, re.MULTILINE))
    configurator, level = jvm.org.apache.logging.log4j.core.config.Configurator, jvm.org.apache.logging.log4j.Level
    for key, name in settings.items():
        if key.endswith(".name"):
            configurator.setLevel(name, level.toLevel(settings[key[:-len(".name")] + ".level"]))


def session_conf(settings: SparkSettings, under_spark_submit: bool) -> dict[str, str]:
    """Everything the engine sets when it starts a session: small-machine defaults, config, REQUIRED_CONF."""
    conf = {
        "spark.app.name": settings.app_name,
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    }
    if settings.executor_memory:
        conf["spark.executor.memory"] = settings.executor_memory
    if not under_spark_submit:  # spark-submit has started the driver already, with its own options
        conf["spark.master"] = settings.master
        conf["spark.driver.memory"] = settings.driver_memory
        if LOG4J2_CONFIG.is_file():
            conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={LOG4J2_CONFIG.as_uri()}"
        if settings.master.startswith("local"):
            # one machine: no need to resolve the host name (and no warning when it resolves to loopback)
            conf["spark.driver.host"] = "127.0.0.1"
            conf["spark.driver.bindAddress"] = "127.0.0.1"
    conf.update(REQUIRED_CONF)
    for key, value in settings.conf.items():
        if key in REQUIRED_CONF and value.strip().lower() != REQUIRED_CONF[key].lower():
            raise ConfigError(f"spark.conf sets {key}={value!r}, but the Spark engine needs "
                              f"{REQUIRED_CONF[key]!r} for results equal to the DuckDB engine's")
        if key == "spark.driver.extraJavaOptions" and "log4j2.configurationFile" not in value and key in conf:
            value = f"{value} {conf[key]}"
        conf[key] = str(value)
    return conf
