"""Apache Spark (PySpark): the same SQL models, run on a SparkSession.

Sessions: one per process. If a SparkSession is already running (a test suite's, a notebook's), the engine
uses it, sets only the SQL settings the results depend on (REQUIRED_CONF, put back by `close()`), and never
stops it. Otherwise the engine starts one from `config.spark` (master, memory, shuffle partitions, extra
conf, quiet logs) and `close()` stops it: a CLI run starts and stops exactly one. Under `spark-submit` the
Java process already exists, so the master and driver settings given to spark-submit are the ones in force.

Files are read and written as local paths (`file://`), since storage.py stages and publishes tables with
local renames: the data directory must be on the driver's disk, and executors must see the same paths.
Tried: `local[N]` masters, from the CLI and under `spark-submit` (jobs/spark_submit.py).

Starting Spark and forwarding its logs: spark_session.py; Spark's failures as the project's errors:
spark_errors.py; strftime formats as Java patterns: spark_formats.py.
"""
from __future__ import annotations

import csv
import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from py4j.protocol import Py4JError, Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (BooleanType, DateType, DoubleType, IntegerType, LongType, StringType, StructField,
                               StructType, TimestampNTZType)

from clickstream.config import CsvOptions, SparkSettings
from clickstream.csv_lines import ENGINE_MAX_RECORD_BYTES
from clickstream.engines import spark_session
from clickstream.engines.base import WHITESPACE, Engine, InputError
from clickstream.engines.spark_errors import translate_failure
from clickstream.engines.spark_formats import strftime_exact_shape, strftime_shape, strftime_to_java
from clickstream.engines.spark_session import REQUIRED_CONF
from clickstream.schema import Schema

log = logging.getLogger(__name__)

T = TypeVar("T")

_SPARK_TYPES = {"string": StringType, "bigint": LongType, "integer": IntegerType, "boolean": BooleanType,
                "timestamp": TimestampNTZType, "date": DateType, "double": DoubleType}
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]{}])")
_WHITESPACE_RUN = "'\\\\s+'"  # the regex \s+ as a Spark SQL literal


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
        self._spark: SparkSession | None = None
        self.owns_session = False

    @property
    def spark(self) -> SparkSession:
        """The session, started (or joined) at first use: a run that finds nothing new never starts Java."""
        if self._spark is None:
            self._spark = self._open_session()
        return self._spark

    def open(self) -> None:
        self._spark = self.spark

    def _open_session(self) -> SparkSession:
        running = spark_session.running_session()
        if running is not None:
            for key, value in REQUIRED_CONF.items():
                self._previous_conf[key] = running.conf.get(key, None)
                running.conf.set(key, value)
            log.debug("spark: using the running session (master %s)", running.sparkContext.master)
            return running
        session = spark_session.start_session(self.settings)
        self.owns_session = True
        log.info("spark: session started (master %s, Spark %s)", session.sparkContext.master, session.version)
        return session

    # ---- dialect
    def epoch_us(self, expr: str) -> str:
        return f"unix_micros(cast({expr} as timestamp_ltz))"  # the session zone is UTC: same instant

    def strptime(self, expr: str, formats: list[str]) -> str:
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

    def timestamp_from_micros(self, expr: str) -> str:
        return f"cast(timestamp_micros({expr}) as timestamp_ntz)"  # the session zone is UTC: same wall clock

    def minus_minutes(self, expr: str, minutes: str) -> str:
        return f"({expr} - make_dt_interval(0, 0, {minutes}, 0))"

    def matches(self, expr: str, pattern: str) -> str:
        return f"({expr} rlike {_literal(pattern)})"

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

    def trim_whitespace(self, expr: str) -> str:
        return f"trim(BOTH {_literal(WHITESPACE)} FROM {expr})"  # plain trim() removes the space alone

    def extra_value(self, expr: str, key: str) -> str:
        # read as a map, so a key is looked up exactly (a JSON path would read dots and brackets in it)
        return f"from_json({expr}, 'map<string,string>')[{_literal(key)}]"

    def iso_day_of_week(self, expr: str) -> str:
        return f"(weekday({expr}) + 1)"

    def json_with(self, expr: str, pairs: list[tuple[str, str]]) -> str:
        added = ", ".join(f"{_literal(key)}, cast({value} as string)" for key, value in pairs)
        return (f"to_json(map_concat(coalesce(from_json({expr}, 'map<string,string>'), "
                f"from_json('{{}}', 'map<string,string>')), map({added})))")

    def json_object(self, pairs: list[tuple[str, str]]) -> str:
        # a map keeps its keys' order and writes a NULL value as null (a struct would leave the field out)
        return f"to_json(map({', '.join(f'{key}, cast({value} as string)' for key, value in pairs)}))"

    def date_series(self, start: str, end: str) -> str:
        return (f"(select explode(sequence(cast({start} as date), cast({end} as date), interval 1 day)) "
                f"as date_day)")

    # ---- reading
    def read_csv(self, name: str, files: list[Path], columns: int, options: CsvOptions) -> None:
        schema = StructType([StructField(f"c{index}", StringType(), True) for index in range(columns)])
        frame = (
            self.spark.read.format("csv").schema(schema)
            .option("header", "true" if options.header else "false")
            .option("enforceSchema", "true")  # names by position, never the header's
            .option("sep", options.delimiter).option("quote", options.quote).option("escape", options.escape)
            .option("encoding", options.encoding).option("mode", "FAILFAST")
            # a quote inside a quoted field that is not escaped (`"x"y`) is an error, as in DuckDB
            .option("unescapedQuoteHandling", "RAISE_ERROR")
            .option("multiLine", "true" if options.multiline else "false")
            .option("maxCharsPerColumn", str(ENGINE_MAX_RECORD_BYTES))  # as DuckDB's limit (csv_lines.py)
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
        # A table read from Parquet is counted from the files' footers: a count(*) would be a Spark job per table.
        on_disk = {name: _footer_rows(self._files[name]) for name in names if name in self._files}
        counted = super().row_counts([name for name in names if name not in on_disk])
        return {name: on_disk[name] if name in on_disk else counted[name] for name in names}

    def text_columns(self, name: str) -> list[str]:
        return [f.name for f in self.spark.table(name).schema.fields if isinstance(f.dataType, StringType)]

    def fetch(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        frame = self.spark.sql(sql)
        rows = self._action(frame.collect)
        return list(frame.columns), [tuple(row) for row in rows]

    def fetch_arrow(self, sql: str) -> pa.Table:
        frame = self.spark.sql(sql)
        if hasattr(frame, "toArrow"):  # PySpark 4
            return self._action(frame.toArrow)
        batches = self._action(frame._collect_as_arrow)  # PySpark 3.5: the same collection, as record batches
        if batches:
            return pa.Table.from_batches(batches)
        columns, _ = self.fetch(f"{sql} limit 0")
        return pa.table({column: pa.array([]) for column in columns})

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
        if self._spark is None:  # never used: no session to free
            return
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
            self._spark = None

    def outside_cpu_seconds(self) -> float:
        """The CPU seconds of Spark's Java process (and of the processes it waited for): it runs beside this one
        for the whole run and is never waited for meanwhile, so getrusage does not count it."""
        return spark_session.jvm_cpu_seconds()

    def outside_pids(self) -> list[int]:
        pid = spark_session.jvm_pid()
        return [] if pid is None else [pid]

    def stage_metrics(self) -> dict[str, tuple[int, ...]] | None:
        """Per completed or failed stage kept by Spark's status store (which exists with the UI off); none before
        a session runs."""
        context = self._spark.sparkContext if self._spark is not None else spark_session.active_context()
        if context is None:
            return {}
        try:
            return spark_session.stage_metrics(context)
        except (Py4JError, PySparkException, ConnectionError) as exc:  # a dead JVM: no metrics
            log.debug("spark: stage metrics: %s", exc)
            return {}

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
            raise translate_failure(text, list(self._csv_inputs)) from exc


def _release(frame: DataFrame) -> None:
    """Free the rows a materialized (locally checkpointed) frame keeps; left to Spark's cleaner if that fails."""
    try:
        frame._jdf.queryExecution().logical().rdd().unpersist(False)
    except (Py4JError, AttributeError) as exc:
        log.debug("spark: could not release a materialized table now: %s", exc)
