"""DuckDB, the embedded default engine."""
from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, TypeVar

import duckdb
import pyarrow as pa

from clickstream.config import CsvOptions, DuckDBSettings
from clickstream.context import ResourceError
from clickstream.csv_lines import ENGINE_MAX_RECORD_BYTES
from clickstream.engines.base import WHITESPACE, Engine, InputError, QueryInterrupted
from clickstream.report.escape import shorten
from clickstream.schema import ADDED_LATER, PARTITION_COLUMN, Schema


T = TypeVar("T")

_ARROW_TYPES = {"string": pa.string(), "bigint": pa.int64(), "integer": pa.int32(), "boolean": pa.bool_(),
                "timestamp": pa.timestamp("us"), "date": pa.date32(), "double": pa.float64()}


def _path_list(files: list[Path]) -> str:
    return "[" + ", ".join(Engine.quote_literal(str(f)) for f in files) + "]"


def _short_csv_error(message: str) -> str:
    """DuckDB's CSV errors run to twenty lines; keep the line number, the offending line and the file."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    kept = [line for line in lines[:3] if not line.startswith("Possible fixes")]
    file = next((line for line in lines if line.startswith("file =")), "")
    return " | ".join(kept + ([file] if file else []))


# The errors DuckDB reports by their C library text, e.g. 'Cannot open file "x": Read-only file system'.
_ERRNO_TEXTS = {os.strerror(code): code for code in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM,
                                                     errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENOENT,
                                                     errno.EMFILE, errno.ENFILE)}


def _io_failure(message: str) -> ResourceError:
    """DuckDB's I/O error as one line naming the path: its errno where it gives one, else its C library text."""
    code = None
    detail = message.strip().splitlines()[0] if message.strip() else "I/O error"
    blob = re.search(r"\{\s*\"exception_type\".*\}", message)  # an async write's error, as JSON
    if blob:
        try:
            fields = json.loads(blob.group(0))
            detail = str(fields.get("exception_message", detail))
            code = int(fields["errno"]) if str(fields.get("errno", "")).isdigit() else None
        except ValueError:
            pass
    if code is None:
        code = next((c for text, c in _ERRNO_TEXTS.items() if text in detail), None)
    if code is None:
        detail = shorten(re.sub(r"^IO Error:\s*", "", detail))
        return ResourceError(f"DuckDB I/O error: {detail} (run again with --verbose for the traceback)")
    path = re.search(r'"(.*)"', detail)
    return ResourceError.from_errno(code, path.group(1) if path else None, reason=detail)


# How DuckDB's Python client reports a query that Ctrl-C (SIGINT) stopped, besides InterruptException.
_INTERRUPTED = re.compile(r"Query interrupted|Interrupted!|failed: KeyboardInterrupt")


class DuckDBEngine(Engine):
    name = "duckdb"

    def __init__(self, settings: DuckDBSettings, default_spill_dir: Path | None = None) -> None:
        self.con = duckdb.connect(config={"preserve_insertion_order": False})
        spill_dir = Path(settings.temp_directory) if settings.temp_directory else default_spill_dir
        self.memory_limit = settings.memory_limit
        self._run("set TimeZone = 'UTC'")
        if settings.threads:
            self._run(f"set threads = {int(settings.threads)}")
        if settings.memory_limit:
            self._run(f"set memory_limit = {self.quote_literal(settings.memory_limit)}")
        if spill_dir is not None:  # DuckDB creates it on the first spill and removes it on close
            spill_dir.parent.mkdir(parents=True, exist_ok=True)  # but makes no parent directories
            self._run(f"set temp_directory = {self.quote_literal(str(spill_dir))}")

    # ---- dialect
    def epoch_us(self, expr: str) -> str:
        return f"epoch_us({expr})"

    def strptime(self, expr: str, formats: list[str]) -> str:
        fmts = "[" + ", ".join(self.quote_literal(f) for f in formats) + "]"
        return f"try_strptime({expr}, {fmts})"

    def timestamp_from_micros(self, expr: str) -> str:
        return f"make_timestamp({expr})"

    def minus_minutes(self, expr: str, minutes: str) -> str:
        return f"({expr} - to_minutes(cast({minutes} as bigint)))"

    def matches(self, expr: str, pattern: str) -> str:
        return f"regexp_matches({expr}, {self.quote_literal(pattern)})"

    def to_utc(self, expr: str, timezone: str) -> str:
        if timezone.upper() == "UTC":
            return expr
        # wall clock in `timezone` -> instant -> naive UTC wall clock (the session zone is UTC)
        return f"cast(timezone({self.quote_literal(timezone)}, {expr}) as timestamp)"

    def from_utc(self, expr: str, timezone: str) -> str:
        return f"cast(timezone({self.quote_literal(timezone)}, cast({expr} as timestamptz)) as timestamp)"

    def trim_whitespace(self, expr: str) -> str:
        chars = self.quote_literal(WHITESPACE)  # plain trim() keeps tab, CR and LF
        if not re.fullmatch(r"\w+", expr):
            return f"trim({expr}, {chars})"
        # A column: trimmed only when its first or last character is whitespace, as few values are; a trim over
        # this set of characters costs many times the test.
        return (f"case when contains({chars}, substr({expr}, 1, 1)) "
                f"or contains({chars}, substr({expr}, length({expr}), 1)) then trim({expr}, {chars}) else {expr} end")

    def extra_value(self, expr: str, key: str) -> str:
        # a JSON pointer names one key exactly, whatever it holds ('~' and '/' escaped as RFC 6901 says)
        pointer = "/" + key.replace("~", "~0").replace("/", "~1")
        return f"json_extract_string({expr}, {self.quote_literal(pointer)})"

    def iso_day_of_week(self, expr: str) -> str:
        return f"isodow({expr})"

    def json_with(self, expr: str, pairs: list[tuple[str, str]]) -> str:
        added = ", ".join(f"{self.quote_literal(key)}, {value}" for key, value in pairs)
        return f"cast(json_merge_patch(coalesce({expr}, '{{}}'), json_object({added})) as varchar)"

    def json_object(self, pairs: list[tuple[str, str]]) -> str:
        return f"cast(json_object({', '.join(f'{key}, {value}' for key, value in pairs)}) as varchar)"

    def date_series(self, start: str, end: str) -> str:
        return (
            f"(select cast(unnest(generate_series(cast({start} as timestamp), cast({end} as timestamp), "
            f"interval 1 day)) as date) as date_day)"
        )

    # ---- reading
    def read_csv(self, name: str, files: list[Path], columns: int, options: CsvOptions) -> None:
        # Paths are read as they are given: the caller hands over names without glob characters (DuckDB reads
        # each listed path as a pattern).
        names = [f"c{index}" for index in range(columns)]
        types = "{" + ", ".join(f"{self.quote_literal(c)}: 'VARCHAR'" for c in names) + "}"
        self._run(
            f"create or replace temp view {name} as "
            f"select {', '.join(names)}, parse_filename(filename) as input_file "
            f"from read_csv({_path_list([Path(os.path.abspath(f)) for f in files])}, columns = {types}, "
            f"header = {'true' if options.header else 'false'}, auto_detect = false, "
            f"delim = {self.quote_literal(options.delimiter)}, "
            f"quote = {self.quote_literal(options.quote)}, escape = {self.quote_literal(options.escape)}, "
            f"filename = true, strict_mode = true, null_padding = false, "
            f"max_line_size = {ENGINE_MAX_RECORD_BYTES})"
        )

    def read_parquet(self, name: str, files: list[Path], schema: Schema | None, partitioned: bool = False,
                     file_column: str | None = None) -> None:
        if not files:
            if schema is None:
                raise InputError(f"no Parquet files to read for table '{name}'")
            empty = self.empty_select(schema + ([(file_column, "string")] if file_column else []))
            self._run(f"create or replace temp view {name} as {empty}")
            return
        # Without `partitioned`, folder names are layout only (a table stored by week): never columns.
        hive = (f", hive_partitioning = true, hive_types = {{'{PARTITION_COLUMN}': 'DATE'}}" if partitioned
                else ", hive_partitioning = false")
        cols = ", ".join(c for c, _ in schema) if schema else "*"
        if schema and ADDED_LATER & {c for c, _ in schema}:
            cols = self._with_added_later(files, schema, hive)
            hive += ", union_by_name = true"  # a column some files lack is NULL in their rows
        if file_column:
            cols += f", filename as {file_column}"
            hive += ", filename = true"
        self._run(f"create or replace temp view {name} as select {cols} from read_parquet({_path_list(files)}{hive})")

    def _with_added_later(self, files: list[Path], schema: Schema, hive: str) -> str:
        """The schema's columns, those added later that no file holds as NULL (DuckDB refuses to select them)."""
        _, rows = self.fetch(f"select name from parquet_schema({_path_list(files)})")
        held = {row[0] for row in rows}
        return ", ".join(column if column in held or column not in ADDED_LATER
                         else f"cast(null as {sql_type}) as {column}" for column, sql_type in schema)

    def register_rows(self, name: str, schema: Schema, rows: list[tuple[Any, ...]]) -> None:
        columns = {column: [row[index] for row in rows] for index, (column, _) in enumerate(schema)}
        arrow = pa.table({column: pa.array(values, type=_ARROW_TYPES[sql_type])
                          for (column, sql_type), values in zip(schema, columns.values())})
        self._translated(lambda: self.con.register(f"{name}__rows", arrow))
        try:
            self._run(f"create or replace temp table {name} as select * from {name}__rows")
        finally:
            self._translated(lambda: self.con.unregister(f"{name}__rows"))

    # ---- transforming
    def create_view(self, name: str, sql: str) -> None:
        self._run(f"create or replace temp view {name} as {sql}")

    def materialize(self, name: str, sql: str) -> None:
        self._run(f"create or replace temp table {name} as {sql}")

    def drop(self, name: str) -> None:
        for stmt in ("drop view if exists", "drop table if exists"):
            try:
                self._run(f"{stmt} {name}")
            except duckdb.CatalogException:
                pass  # the name is the other kind of relation

    def text_columns(self, name: str) -> list[str]:
        relation = self.con.sql(f"select * from {name} limit 0")
        return [column for column, kind in zip(relation.columns, relation.types) if str(kind) == "VARCHAR"]

    def fetch(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        cursor = self._run(sql)
        return [d[0] for d in cursor.description], self._translated(cursor.fetchall)

    def fetch_arrow(self, sql: str) -> pa.Table:
        relation = self._translated(lambda: self.con.sql(sql))
        # DuckDB 2 names it to_arrow_table; 1.x arrow
        return self._translated(getattr(relation, "to_arrow_table", None) or relation.arrow)

    # ---- writing
    def write_parquet(self, name: str, path: Path, partition_by: list[str] | None = None,
                      metrics: dict[str, str] | None = None) -> dict[str, Any]:
        if partition_by:
            target = path
            options = f", partition_by ({', '.join(partition_by)})"
        else:
            path.mkdir(parents=True, exist_ok=True)
            target = path / "part-00000.parquet"
            options = ""
        self._run(f"copy (select * from {name}) to {self.quote_literal(str(target))} "
                  f"(format parquet, compression snappy{options})")
        path.mkdir(parents=True, exist_ok=True)  # an empty partitioned table is still a (empty) table
        if not metrics:
            return {}
        # Measured on what was written, read back: a scan of Parquet costs DuckDB little.
        files = sorted(path.rglob("*.parquet"))
        source = (f"read_parquet({_path_list(files)}, hive_partitioning = {str(bool(partition_by)).lower()})"
                  if files else f"(select * from {name} where 1 = 0)")
        cursor = self._run(f"select {', '.join(f'{sql} as {key}' for key, sql in metrics.items())} from {source}")
        return dict(zip(metrics, self._translated(cursor.fetchall)[0]))

    def write_csv(self, name: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._run(f"copy (select * from {name}) to {self.quote_literal(str(path))} (format csv, header true)")

    def close(self) -> None:
        self.con.close()

    def _run(self, sql: str) -> duckdb.DuckDBPyConnection:
        """Every statement goes through here, so each of DuckDB's failures reaches the jobs as the project's."""
        return self._translated(lambda: self.con.execute(sql))

    def _translated(self, action: Callable[[], T]) -> T:
        """`action` (a statement, or fetching its rows), DuckDB's failures raised as the project's."""
        try:
            return action()
        except duckdb.InterruptException as exc:
            raise QueryInterrupted() from exc
        except duckdb.InvalidInputException as exc:
            message = str(exc)
            if _INTERRUPTED.search(message):  # Ctrl-C while DuckDB read a registered Python table
                raise QueryInterrupted() from exc
            if "CSV Error" in message or re.search(r"\bfile\s*=", message):
                raise InputError(_short_csv_error(message)) from exc
            raise
        except duckdb.OutOfMemoryException as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ResourceError.out_of_memory(re.sub(r"^Out of Memory Error:\s*", "", first),
                                              self.memory_limit) from exc
        except duckdb.IOException as exc:
            raise _io_failure(str(exc)) from exc
        except RuntimeError as exc:  # the Python client's own words for a query Ctrl-C stopped
            if _INTERRUPTED.search(str(exc)):
                raise QueryInterrupted() from exc
            raise
