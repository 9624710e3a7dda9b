"""Apache Spark (PySpark): the same SQL models, run on a SparkSession.

Sessions: one per process. If a SparkSession is already running (a test suite's, a notebook's), the engine
uses it, sets only the SQL settings the results depend on (REQUIRED_CONF, put back by `close()`), and never
stops it. Otherwise the engine starts one from `config.spark` (master, memory, shuffle partitions, extra
conf, quiet logs) and `close()` stops it: a CLI run starts and stops exactly one. Under `spark-submit` the
Java process already exists, so the master and driver settings given to spark-submit are the ones in force.

Files are read and written as local paths (`file://`), since storage.py stages and publishes tables with
local renames: the data directory must be on the driver's disk, and executors must see the same paths.
Tried: `local[N]` masters, from the CLI and under `spark-submit` (jobs/spark_submit.py).
"""
from __future__ import annotations

import collections
import csv
import errno
import logging
import os
import re
import shutil
import subprocess
import threading
import uuid
from importlib import resources
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from py4j.protocol import Py4JError, Py4JJavaError
from pyspark import SparkConf, SparkContext
from pyspark.errors import PySparkException
from pyspark.java_gateway import launch_gateway
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (BooleanType, DateType, DoubleType, IntegerType, LongType, StringType, StructField,
                               StructType, TimestampNTZType)

from clickstream.config import ConfigError, CsvOptions, SparkSettings
from clickstream.context import PipelineError, ResourceError
from clickstream.engines import EngineUnavailable
from clickstream.engines.base import Engine, InputError, strftime_exact_shape, strftime_shape, strftime_to_java
from clickstream.report.escape import shorten
from clickstream.schema import Schema

log = logging.getLogger(__name__)

T = TypeVar("T")

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
_SPARK_TYPES = {"string": StringType, "bigint": LongType, "integer": IntegerType, "boolean": BooleanType,
                "timestamp": TimestampNTZType, "date": DateType, "double": DoubleType}
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]{}])")
_WHITESPACE_RUN = "'\\\\s+'"  # the regex \s+ as a Spark SQL literal


class SparkJobError(PipelineError):
    """A Spark job failed on the data; the message is Spark's error line, the job log holds the rest."""


def _literal(value: str) -> str:
    """A Spark SQL string literal: backslashes are escapes in Spark, so they are doubled, and a quote gets a
    backslash too (Spark 3.5 reads `'it''s'` as two literals side by side, `its`)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _local_uri(path: Path | str) -> str:
    """The file:// URI of a local path, as Hadoop reads it (no percent-encoding)."""
    return "file://" + os.path.abspath(path)


def _input_uri(path: Path | str) -> str:
    """Like _local_uri, with glob characters escaped: Spark treats the paths it reads as glob patterns."""
    return "file://" + _GLOB_SPECIAL.sub(r"\\\1", os.path.abspath(path))


def _uri_to_path(uri: str) -> str:
    """`file:/a%20b.csv` -> `/a b.csv`: Spark's file paths are URIs, percent-encoded ('+' stays '+')."""
    return unquote(re.sub(r"^file:/+", "/", uri))


def _table_root(files: list[Path]) -> Path:
    """The directory above the `key=value` partition folders of `files` (Spark's basePath)."""
    roots = set()
    for file in files:
        directory = Path(os.path.abspath(file)).parent
        while "=" in directory.name:
            directory = directory.parent
        roots.add(directory)
    if len(roots) != 1:
        raise ValueError(f"partitioned files of one table must share one root directory, got {sorted(roots)}")
    return roots.pop()


def _footer_rows(files: list[Path]) -> int:
    """Rows in Parquet files, from their footers: no data read, no Spark job."""
    total = 0
    for file in files:
        try:
            total += pq.read_metadata(file).num_rows
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot read the Parquet footer of {file}: {exc}") from exc
    return total


def _remove_side_files(path: Path) -> None:
    """Hadoop's commit markers and checksum files: not part of the table."""
    for side in [*path.rglob("_SUCCESS"), *path.rglob(".*.crc")]:
        side.unlink(missing_ok=True)


# ---- starting Spark

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


class SparkEngine(Engine):
    """The project's SQL on a SparkSession; see the module docstring for who starts and stops the session."""

    name = "spark"

    def __init__(self, settings: SparkSettings) -> None:
        self.settings = settings
        self._views: set[str] = set()
        self._cached: dict[str, DataFrame] = {}
        # The schema of each table this engine wrote: reading it back then needs no job to infer it.
        self._written: dict[str, StructType] = {}
        self._files: dict[str, list[Path]] = {}  # tables read from Parquet: their files
        self._csv_inputs: dict[Path, None] = {}  # every CSV file read (in order), to place a malformed row
        self._previous_conf: dict[str, str | None] = {}
        if SparkContext._active_spark_context is not None:
            self.spark = SparkSession.builder.getOrCreate()
            self.owns_session = False
            for key, value in REQUIRED_CONF.items():
                self._previous_conf[key] = self.spark.conf.get(key, None)
                self.spark.conf.set(key, value)
            log.debug("spark: using the running session (master %s)", self.spark.sparkContext.master)
        else:
            self.spark = self._start_session(settings)
            self.owns_session = True
            log.info("spark: session started (master %s, Spark %s)", self.spark.sparkContext.master,
                     self.spark.version)

    @staticmethod
    def _start_session(settings: SparkSettings) -> SparkSession:
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

    # ---- dialect
    def epoch_us(self, expr: str) -> str:
        return f"unix_micros(cast({expr} as timestamp_ltz))"  # the session zone is UTC: same instant

    def parse_timestamp(self, expr: str, formats: list[str]) -> str:
        # Java's parser is stricter than DuckDB's strptime in some places (one-digit months) and laxer in
        # others (three-digit days): the text must have the shape DuckDB accepts, then lenient Java patterns
        # read it with its whitespace runs made one space. Canonical text (full-width fields, single
        # separators) goes first to the strict pattern, which reads it to the same value: a quarter to a
        # third less time on 2M rows than the lenient path alone.
        collapsed = f"trim(regexp_replace({expr}, {_WHITESPACE_RUN}, ' '))"
        tries = []
        for fmt in formats:
            exact = strftime_exact_shape(fmt)
            if exact is not None:
                tries.append(f"case when {expr} rlike {_literal(exact)} "
                             f"then try_to_timestamp({expr}, {_literal(strftime_to_java(fmt))}) end")
            lenient = _literal(strftime_to_java(fmt, lenient_widths=True))
            tries.append(f"case when {expr} rlike {_literal(strftime_shape(fmt))} "
                         f"then try_to_timestamp({collapsed}, {lenient}) end")
        return tries[0] if len(tries) == 1 else "coalesce(" + ", ".join(tries) + ")"

    def to_utc(self, expr: str, timezone: str) -> str:
        if timezone.upper() == "UTC":
            return expr
        # Wall clock in `timezone` -> instant -> UTC wall clock (the session zone is UTC). A wall time the
        # clocks pass twice (set back in autumn) is the later of its two instants, as DuckDB (ICU) decides;
        # Java picks the earlier. Six hours on, the clocks are past any such overlap: read from there.
        zone = _literal(timezone)
        early = f"to_utc_timestamp({expr}, {zone})"
        late = f"(to_utc_timestamp({expr} + interval 6 hours, {zone}) - interval 6 hours)"
        return (f"cast(case when from_utc_timestamp({late}, {zone}) = {expr} then greatest({early}, {late}) "
                f"else {early} end as timestamp_ntz)")

    def from_utc(self, expr: str, timezone: str) -> str:
        return f"cast(from_utc_timestamp({expr}, {_literal(timezone)}) as timestamp_ntz)"

    def iso_day_of_week(self, expr: str) -> str:
        return f"(weekday({expr}) + 1)"

    def date_series(self, start: str, end: str) -> str:
        return (f"(select explode(sequence(cast({start} as date), cast({end} as date), interval 1 day)) "
                f"as date_day)")

    # ---- reading
    def read_csv(self, name: str, files: list[Path], columns: int, options: CsvOptions) -> None:
        schema = StructType([StructField(f"c{index}", StringType(), True) for index in range(columns)])
        frame = (
            self.spark.read.format("csv").schema(schema)
            .option("header", "true").option("enforceSchema", "true")  # names by position, never the header's
            .option("sep", options.delimiter).option("quote", options.quote).option("escape", options.escape)
            .option("encoding", options.encoding).option("mode", "FAILFAST")
            # a quote inside a quoted field that is not escaped (`"x"y`) is an error, as in DuckDB
            .option("unescapedQuoteHandling", "RAISE_ERROR")
            .option("multiLine", "true" if options.multiline else "false")
            .load([_input_uri(f) for f in files])
        )
        input_file = "regexp_extract(_metadata.file_path, '[^/]*$', 0)"  # plain names: nothing percent-encoded
        self._register(name, frame.select(*[F.col(f.name) for f in schema.fields],
                                          F.expr(input_file).alias("input_file")))
        self._csv_inputs.update(dict.fromkeys(files))

    def read_parquet(self, name: str, files: list[Path], schema: Schema | None, partitioned: bool = False,
                     file_column: str | None = None) -> None:
        if not files:
            if schema is None:
                raise InputError(f"no Parquet files to read for table '{name}'")
            self.create_view(name, self.empty_select(schema + ([(file_column, "string")] if file_column else [])))
            return
        reader = self.spark.read
        written = None if schema is not None or partitioned else self._written_schema(files)
        if schema is not None:
            reader = reader.schema(", ".join(f"{_ident(column)} {sql_type}" for column, sql_type in schema))
        elif written is not None:
            reader = reader.schema(written)
        if partitioned:  # partition columns come from the folders under the table's root
            reader = reader.option("basePath", _local_uri(_table_root(files)))
        frame = reader.parquet(*[_input_uri(f) for f in files])
        columns = [F.col(_ident(column)) for column, _ in schema] if schema is not None else [F.col("*")]
        if file_column:  # the hidden _metadata column exists only on the scan itself
            local = "url_decode(replace(regexp_replace(_metadata.file_path, '^file:/+', '/'), '+', '%2B'))"
            columns.append(F.expr(local).alias(file_column))
        if schema is not None or file_column:
            frame = frame.select(*columns)
        self._register(name, frame)
        self._files[name] = list(files)

    def register_rows(self, name: str, schema: Schema, rows: list[tuple[Any, ...]]) -> None:
        struct = StructType([StructField(column, _SPARK_TYPES[sql_type](), True) for column, sql_type in schema])
        self._register(name, self.spark.createDataFrame(rows, struct))

    # ---- transforming
    def create_view(self, name: str, sql: str) -> None:
        self._register(name, self.spark.sql(sql))

    def materialize(self, name: str, sql: str) -> None:
        # Computed once, now, and kept (memory, then disk) as a table with no lineage: whatever reads it,
        # even through other views, scans the kept rows. (A persist()ed frame is found again only by matching
        # plans, which fails once another SQL view wraps it: its readers then recomputed it from scratch,
        # 5 to 10 times slower on 200,000 rows.)
        frame = self._action(lambda: self.spark.sql(sql).localCheckpoint(eager=True))
        self._register(name, frame)
        self._cached[name] = frame

    def drop(self, name: str) -> None:
        self._files.pop(name, None)
        frame = self._cached.pop(name, None)
        if frame is not None:
            _release(frame)
        self.spark.catalog.dropTempView(name)
        self._views.discard(name)

    @staticmethod
    def quote_literal(value: str) -> str:
        return _literal(value)

    @staticmethod
    def quote_identifier(name: str) -> str:
        return _ident(name)

    def row_counts(self, names: list[str]) -> dict[str, int]:
        # A table read from Parquet is counted from the files' footers: a count(*) would be a Spark job
        # per table (2.5 s for gold's nine and 1.1 s for analytics' ten, at 2M rows on 2 cores).
        on_disk = {name: _footer_rows(self._files[name]) for name in names if name in self._files}
        counted = super().row_counts([name for name in names if name not in on_disk])
        return {name: on_disk[name] if name in on_disk else counted[name] for name in names}

    def fetch(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        frame = self.spark.sql(sql)
        rows = self._action(frame.collect)
        return list(frame.columns), [tuple(row) for row in rows]

    # ---- writing
    def write_parquet(self, name: str, path: Path, partition_by: list[str] | None = None,
                      metrics: dict[str, str] | None = None) -> dict[str, Any]:
        frame = self.spark.table(name)
        schema = frame.schema
        observation = None
        if metrics:  # collected by the job that writes: no pass of their own
            observation = Observation(f"{name}_metrics_{uuid.uuid4().hex[:8]}")
            frame = frame.observe(observation, *[F.expr(sql).alias(key) for key, sql in metrics.items()])
        if partition_by:
            writer = frame.write.partitionBy(*partition_by)
        else:  # one file per core at most: a union of 60 one-row selects is not 60 files
            writer = frame.coalesce(self.spark.sparkContext.defaultParallelism).write
        writer = writer.mode("errorifexists").option("compression", "snappy")
        self._action(lambda: writer.parquet(_local_uri(path)))
        path.mkdir(parents=True, exist_ok=True)  # an empty partitioned table is still a (empty) table
        _remove_side_files(path)
        # as Spark writes Parquet: every column nullable, and partition columns only in the folder names
        self._written[os.path.abspath(path)] = StructType(
            [StructField(f.name, f.dataType, True) for f in schema.fields if f.name not in (partition_by or [])])
        return {key: observation.get[key] for key in metrics} if observation is not None and metrics else {}

    def write_csv(self, name: str, path: Path) -> None:
        frame = self.spark.table(name)
        # Timestamps as DuckDB writes them (`2024-01-05 10:00:00.5`): Spark's cast to text does the same.
        frame = frame.select(*[
            F.col(_ident(field.name)).cast("string").alias(field.name)
            if field.dataType.typeName().startswith("timestamp") else F.col(_ident(field.name))
            for field in frame.schema.fields
        ])
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            writer = (frame.coalesce(1).write.mode("errorifexists").option("header", "true")
                      .option("quote", '"').option("escape", '"'))
            self._action(lambda: writer.csv(_local_uri(scratch)))
            parts = sorted(p for p in scratch.glob("part-*") if p.stat().st_size > 0)
            if parts:
                os.replace(parts[0], path)
            else:  # no rows: Spark may write nothing at all, DuckDB writes the header
                with path.open("w", newline="", encoding="utf-8") as handle:
                    csv.writer(handle).writerow(frame.columns)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def close(self) -> None:
        """Uncache and drop what this engine registered; stop the session only if this engine started it."""
        try:
            for frame in self._cached.values():
                _release(frame)
            for name in self._views:
                self.spark.catalog.dropTempView(name)
            if self.owns_session:
                self.spark.stop()
            else:
                for key, value in self._previous_conf.items():
                    if value is None:
                        self.spark.conf.unset(key)
                    else:
                        self.spark.conf.set(key, value)
        except (Py4JJavaError, PySparkException, ConnectionError) as exc:  # a dead JVM: nothing left to free
            log.debug("spark: close: %s", exc)
        finally:
            self._cached.clear()
            self._views.clear()
            self._files.clear()
            self._csv_inputs.clear()

    # ---- helpers
    def _written_schema(self, files: list[Path]) -> StructType | None:
        """The schema of `files` if they are one table this engine wrote, else None (Spark reads the footers)."""
        folders = {os.path.dirname(os.path.abspath(f)) for f in files}
        if len(folders) == 1 and folders <= self._written.keys():
            return self._written[folders.pop()]
        try:
            return self._written.get(str(_table_root(files)))
        except ValueError:
            return None

    def _register(self, name: str, frame: DataFrame) -> None:
        self._files.pop(name, None)
        previous = self._cached.pop(name, None)
        if previous is not None and previous is not frame:
            _release(previous)
        frame.createOrReplaceTempView(name)
        self._views.add(name)

    def _action(self, run: Callable[[], T]) -> T:
        """Run a Spark job; a malformed or unreadable input file becomes an InputError naming it."""
        try:
            return run()
        except (Py4JJavaError, PySparkException) as exc:
            text = str(exc)
            log.debug("spark: job failed: %s", text)
            # Spark's own error stays the cause: `--verbose` shows it (and its Java stack) under the one line
            raise _translate_failure(text, list(self._csv_inputs)) from exc


def _release(frame: DataFrame) -> None:
    """Free the rows a materialized (locally checkpointed) frame keeps; left to Spark's cleaner if that fails."""
    try:
        frame._jdf.queryExecution().logical().rdd().unpersist(False)
    except (Py4JError, AttributeError) as exc:
        log.debug("spark: could not release a materialized table now: %s", exc)


def _translate_failure(text: str, csv_inputs: list[Path]) -> Exception:
    # Spark 4 ends the sentence with its SQLSTATE, Spark 3.5 with "Details:"
    read = re.search(r"Encountered error while reading file (.+?)\.?(?:\s+SQLSTATE|\s+Details:|$)", text,
                     re.MULTILINE)
    record = re.search(r"Malformed CSV record: (.*?)(?: SQLSTATE: \w+)?$", text, re.MULTILINE)
    if record:
        row = record.group(1)
        # Spark 3.5 does not name the file when the read feeds a write: the first CSV holding the row does.
        candidates = [Path(_uri_to_path(read.group(1)))] if read else csv_inputs
        place = str(candidates[0]) if len(candidates) == 1 else "one of the input files"
        for path in candidates:
            line = _line_number(path, row)
            if line:
                place = f"{path} on line {line}"
                break
        return InputError(f"CSV error in {place}: malformed row {shorten(row)!r} (not the header's number of fields, "
                          f"or broken quoting)")
    parsing = re.search(r"TextParsingException(?: - |: )(?!com\.univocity)(.+?)(?:\.\s|$)", text, re.MULTILINE)
    if parsing:  # the CSV parser itself refused the text (a quote where none may be); Spark 3.5 names no file
        place = shorten(_uri_to_path(read.group(1))) if read else (
            str(csv_inputs[0]) if len(csv_inputs) == 1 else "one of the input files")
        return InputError(f"CSV error in {place}: {shorten(parsing.group(1))}")
    if read:
        path = _uri_to_path(read.group(1))
        cause = re.findall(r"Caused by: [\w.$]+: (.+)", text)
        return InputError(f"cannot read {shorten(path)}: {shorten(cause[-1] if cause else _first_error_line(text))}")
    # The machine refused a write. Java names the C library's reason; Hadoop's local file system says only
    # "Mkdirs failed", for a read-only file system and a denied permission alike: the file system tells which.
    scratch = "spark.local.dir in spark.conf"
    where = re.search(r"writing rows to (\S+?)\.?(?:\s|$)|(?:AccessDenied|FileNotFound|FileSystem)Exception: "
                      r"(\S+?)(?::| \(|$)|Mkdirs failed to create (\S+)", text, re.MULTILINE)
    path = _uri_to_path(next(g for g in where.groups() if g)).split("/_temporary/")[0] if where else None
    for reason, code in (("No space left on device", errno.ENOSPC), ("Disk quota exceeded", errno.EDQUOT),
                         ("Read-only file system", errno.EROFS), ("Permission denied|AccessDeniedException",
                                                                  errno.EACCES)):
        if re.search(reason, text):
            return ResourceError.from_errno(code, path, scratch=scratch)
    if path and "Mkdirs failed to create" in text:
        existing = next((p for p in Path(path).parents if p.exists()), Path("/"))
        code = errno.EROFS if os.statvfs(existing).f_flag & os.ST_RDONLY else errno.EACCES
        return ResourceError.from_errno(code, path, scratch=scratch)
    return SparkJobError(f"spark: {_first_error_line(text)}")


def _first_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if re.search(r"\[[A-Z_.]+\]", line):  # Spark's error class, e.g. [DIVIDE_BY_ZERO] ...
            return re.sub(r"^[\w.$:]*?(Exception|Error):\s*", "", line)
    return lines[0] if lines else "unknown error"


def _line_number(path: Path, record: str) -> int | None:
    """The first line of `path` that is exactly `record` (Spark names the row, not its line)."""
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            for number, line in enumerate(handle, start=1):
                if line.rstrip("\r\n") == record:
                    return number
    except OSError:
        return None
    return None
