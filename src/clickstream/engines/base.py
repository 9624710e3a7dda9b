"""The engine seam: the only interface the jobs use to read, run SQL and write. Tables are named views."""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from clickstream.config import EPOCH_UNITS, ISO8601, CsvOptions
from clickstream.schema import Schema

# Epoch text: a sign, at most as many digits as the years 1-9999 need (12 for seconds ... 21 for nanoseconds, so
# the microseconds always fit in a bigint), a fraction (digits finer than a microsecond are dropped). `\z`, not
# `$`: Java's `$` also matches before a final line break, RE2's does not.
_EPOCH_TEXT = r"^[+-]?[0-9]{{1,{digits}}}([.][0-9]*)?\z"
# ISO 8601 date and time, `T` or a space between, 0-9 fraction digits, then `Z`, `+HH:MM`, `+HHMM`, `+HH` (hours
# 00-23, minutes 00-59) or nothing. Checked once; the fields are then read at their places, cheaper than a
# regular expression each.
_ISO8601_TEXT = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?"
                 r"(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?\z")


# The characters Unicode gives the White_Space property (tab, LF, VT, FF, CR, space, NEL, no-break spaces, the
# typographic spaces, line and paragraph separators, the ideographic space): trimmed from both ends of every
# silver text value. Not the ASCII separators chr(28)-chr(31) Python also calls space: they are data here.
WHITESPACE = "".join(map(chr, [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                               0x2028, 0x2029, 0x202F, 0x205F, 0x3000]))


class InputError(Exception):
    """Unreadable or malformed input; the message names the file (and the line where the engine says it)."""


class QueryInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped a query, whatever form the engine reported it in: still a KeyboardInterrupt, so
    nothing catching `Exception` swallows it on its way to the command line."""


class Engine(abc.ABC):
    """Runs the project's SQL on one engine. Models never see which one."""

    name: str

    # ---- dialect: the few expressions the engines spell differently (dbt-style cross-engine macros)
    @abc.abstractmethod
    def epoch_us(self, expr: str) -> str:
        """Microseconds since 1970-01-01 of a timestamp, as bigint."""

    @abc.abstractmethod
    def strptime(self, expr: str, formats: list[str]) -> str:
        """Text to timestamp using strftime-style formats; NULL (never an error) when none parses."""

    @abc.abstractmethod
    def timestamp_from_micros(self, expr: str) -> str:
        """A bigint of microseconds since 1970-01-01 to the UTC timestamp."""

    @abc.abstractmethod
    def minus_minutes(self, expr: str, minutes: str) -> str:
        """A timestamp `minutes` (an integer expression) earlier."""

    @abc.abstractmethod
    def matches(self, expr: str, pattern: str) -> str:
        """Whether text matches a regular expression (anchored by the pattern; RE2 and Java read it alike)."""

    @abc.abstractmethod
    def trim_whitespace(self, expr: str) -> str:
        """Text with every WHITESPACE character removed from both ends (NULL stays NULL)."""

    @abc.abstractmethod
    def json_object(self, pairs: list[tuple[str, str]]) -> str:
        """A JSON object as text, `{"key":value,...}` without spaces, of (quoted key literal, text expression)
        pairs in order; a NULL value is JSON null. Written alike by both engines (and by Python's
        json.dumps(ensure_ascii=False, separators=(",", ":")))."""

    @abc.abstractmethod
    def json_with(self, expr: str, pairs: list[tuple[str, str]]) -> str:
        """A flat JSON object of text values (bronze's `extra`, NULL as `{}`) with the (key, text expression)
        pairs added; keys it holds already are not among them. Read back with `extra_value`."""

    @abc.abstractmethod
    def iso_day_of_week(self, expr: str) -> str:
        """1 = Monday ... 7 = Sunday."""

    @abc.abstractmethod
    def extra_value(self, expr: str, key: str) -> str:
        """The text under exactly `key` in a flat JSON object of text values (bronze's `extra`): NULL when the
        object is NULL, lacks the key or holds null there."""

    def parse_timestamp(self, expr: str, formats: list[str]) -> str:
        """Text to the wall-clock time it writes, by the first of `formats` that parses it: NULL (never an error)
        when none does, or when that one reads an instant (an epoch, an ISO 8601 time with an offset)."""
        reads = self._timestamp_reads(expr, formats)
        if all(instant is None for _, _, instant in reads):
            return reads[0][0]  # strftime formats only: one read, as fast as before
        return self._first_read(reads, 1)

    def parse_instant(self, expr: str, formats: list[str]) -> str:
        """Text to the UTC instant it writes, where the first of `formats` that parses it reads an instant (an
        epoch, an ISO 8601 time with an offset); NULL otherwise. '' (no expression) when no format can."""
        reads = self._timestamp_reads(expr, formats)
        return "" if all(instant is None for _, _, instant in reads) else self._first_read(reads, 2)

    @staticmethod
    def _first_read(reads: list[tuple[str, str | None, str | None]], part: int) -> str:
        # the last read needs no test: its part is NULL wherever it parses nothing
        cases = " ".join(f"when {read[0]} is not null then {read[part] or 'null'}" for read in reads[:-1])
        last = reads[-1][part] or "null"
        return f"cast(case {cases} else {last} end as timestamp)" if cases else f"cast({last} as timestamp)"

    def _timestamp_reads(self, expr: str, formats: list[str]) -> list[tuple[str, str | None, str | None]]:
        """(parsed, wall-clock time, instant) for each format in turn; a run of strftime formats is one read."""
        reads: list[tuple[str, str | None, str | None]] = []
        run: list[str] = []
        for fmt in [*formats, None]:
            if fmt is not None and fmt not in EPOCH_UNITS and fmt != ISO8601:
                run.append(fmt)
                continue
            if run:
                wall = self.strptime(expr, run)
                reads.append((wall, wall, None))
                run = []
            if fmt in EPOCH_UNITS:
                instant = self._epoch(expr, EPOCH_UNITS[fmt])
                reads.append((instant, None, instant))
            elif fmt == ISO8601:
                reads.append(self._iso8601(expr))
        return reads

    def _epoch(self, expr: str, digits: int) -> str:
        """The instant of epoch text whose unit is 10^-digits seconds (digits 0, 3, 6 or 9): its microseconds
        are the text with the point moved, digits finer than a microsecond dropped, so both engines agree."""
        whole, fraction = f"split_part({expr}, '.', 1)", f"split_part({expr}, '.', 2)"
        shift = 6 - digits
        if shift >= 0:  # seconds, ms, us: the integer part, then `shift` digits of the fraction (zeros added)
            micros_text = f"concat({whole}, rpad({fraction}, {shift}, '0'))"
        else:  # ns: the integer part without its last three digits (none left, or a sign alone: 0)
            kept = f"left({whole}, greatest(length({whole}) - 3, 0))"
            micros_text = f"case when {kept} in ('', '+', '-') then '0' else {kept} end"
        # at most 18 digits: a bigint; an instant past the year 9999 is left to silver's timestamp_range
        pattern = _EPOCH_TEXT.format(digits=12 + digits)
        micros = f"try_cast({micros_text} as bigint)"
        return f"case when {self.matches(expr, pattern)} then {self.timestamp_from_micros(micros)} end"

    def _iso8601(self, expr: str) -> tuple[str, str, str]:
        """The ISO 8601 read: parsed, the wall-clock time where no offset is written, the instant where one is."""
        size = f"length({expr})"

        def sign_at(back: int) -> str:  # no sign can stand 2, 4 or 5 characters from the end of the time itself
            return f"substr({expr}, {size} - {back}, 1) in ('+', '-')"

        def minutes_at(back: int, minutes: str) -> str:
            hours = f"cast(substr({expr}, {size} - {back} + 1, 2) as int) * 60"
            return (f"(case when substr({expr}, {size} - {back}, 1) = '-' then -1 else 1 end) "
                    f"* ({hours}{' + ' + minutes if minutes else ''})")

        # the offset's length: Z, +HH, +HHMM, +HH:MM or none
        zone_size = (f"(case when right({expr}, 1) = 'Z' then 1 when {sign_at(2)} then 3 when {sign_at(4)} then 5 "
                     f"when {sign_at(5)} then 6 else 0 end)")
        last_two = f"cast(right({expr}, 2) as int)"
        offset = (f"(case when right({expr}, 1) = 'Z' then 0 when {sign_at(2)} then {minutes_at(2, '')} "
                  f"when {sign_at(4)} then {minutes_at(4, last_two)} else {minutes_at(5, last_two)} end)")
        valid = self.matches(expr, _ISO8601_TEXT)
        # fraction digits past the sixth are dropped: timestamps hold microseconds
        fraction = (f"case when substr({expr}, 20, 1) = '.' "
                    f"then substr({expr}, 21, least({size} - 20 - {zone_size}, 6)) else '' end")
        canonical = f"concat(substr({expr}, 1, 10), ' ', substr({expr}, 12, 8), '.', rpad({fraction}, 6, '0'))"
        wall = self.strptime(canonical, ["%Y-%m-%d %H:%M:%S.%f"])
        return (f"case when {valid} then {wall} end",
                f"case when {zone_size} = 0 and {valid} then {wall} end",
                f"case when {zone_size} > 0 and {valid} then {self.minus_minutes(wall, offset)} end")

    def macros(self) -> dict[str, Callable[..., str]]:
        return {
            "epoch_us": self.epoch_us,
            "parse_timestamp": self.parse_timestamp,
            "parse_instant": self.parse_instant,
            "to_utc": self.to_utc,
            "from_utc": self.from_utc,
            "trim_whitespace": self.trim_whitespace,
            "iso_day_of_week": self.iso_day_of_week,
            "extra_value": self.extra_value,
            "json_with": self.json_with,
            "date_series": self.date_series,
        }

    # ---- reading
    @abc.abstractmethod
    def read_csv(self, name: str, files: list[Path], columns: int, options: CsvOptions) -> None:
        """Register `name` over CSV files with a header line (or none, with `options.header` false): their
        `columns` fields as text, named `c0`, `c1`, ... by position (a header's names never reach SQL), plus
        `input_file`, the name (not the path) of the file each row came from. A malformed row fails the read with
        an `InputError`."""

    @abc.abstractmethod
    def read_parquet(self, name: str, files: list[Path], schema: Schema | None, partitioned: bool = False,
                     file_column: str | None = None) -> None:
        """Register `name` over Parquet files (Hive partition columns from the paths).

        With a schema, exactly its columns (and an empty table when there are no files); without one,
        every column the files hold. With `file_column`, also a column of that name holding each row's file
        (its absolute path).
        """

    @abc.abstractmethod
    def register_rows(self, name: str, schema: Schema, rows: list[tuple[Any, ...]]) -> None:
        """Register `name` holding `rows` (Python values of the schema's types), passed to the engine as
        values, never as SQL text: the way values from files and config become a table."""

    # ---- transforming
    @abc.abstractmethod
    def create_view(self, name: str, sql: str) -> None:
        """Register `name` as the (lazy) result of `sql`."""

    @abc.abstractmethod
    def materialize(self, name: str, sql: str) -> None:
        """Compute `sql` once and keep it as `name`, for results read several times."""

    @abc.abstractmethod
    def drop(self, name: str) -> None:
        """Forget `name` and free what it held."""

    @abc.abstractmethod
    def text_columns(self, name: str) -> list[str]:
        """The columns of table `name` that hold text, in table order."""

    @abc.abstractmethod
    def fetch(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a query whose result is small and return (column names, rows)."""

    @abc.abstractmethod
    def fetch_arrow(self, sql: str) -> pa.Table:
        """Run a query and return its whole result as an Arrow table, in the query's order (for the models
        fitted in Python: a table of one row per user, not a million Python tuples)."""

    # ---- writing
    @abc.abstractmethod
    def write_parquet(self, name: str, path: Path, partition_by: list[str] | None = None,
                      metrics: dict[str, str] | None = None) -> dict[str, Any]:
        """Write table `name` as snappy Parquet files under the new directory `path`.

        With `metrics` (a name for each aggregate SQL expression over the table's columns, such as
        `count(case when x is null then 1 end)`), returns their values over the rows written, measured by the
        write itself where the engine can (Spark's observed metrics), so a check costs no pass of its own.
        """

    @abc.abstractmethod
    def write_csv(self, name: str, path: Path) -> None:
        """Write table `name` as one CSV file with a header."""

    def row_counts(self, names: list[str]) -> dict[str, int]:
        """Rows of several tables, in one query."""
        if not names:
            return {}
        union = " union all ".join(f"select {self.quote_literal(n)} as table_name, count(*) as row_count from {n}"
                                   for n in names)
        _, rows = self.fetch(union)
        return {table: int(count) for table, count in rows}

    def columns_of(self, name: str) -> list[str]:
        """The column names of table or view `name`, in order (no row is read)."""
        columns, _ = self.fetch(f"select * from {name} limit 0")
        return columns

    def first_rows(self, name: str, order_by: str, limit: int) -> tuple[list[str], list[tuple[Any, ...]]]:
        """The first `limit` rows of `name` in the order of `order_by` (an ORDER BY clause, or '' for none)."""
        return self.fetch(f"select * from {name}{order_by} limit {int(limit)}")

    def select_columns(self, name: str, columns: list[str]) -> list[tuple[Any, ...]]:
        """Every row of a small table `name`, as the values of `columns`."""
        return self.fetch(f"select {', '.join(columns)} from {name}")[1]

    def describe(self, name: str) -> list[tuple[str, str]]:
        """(column, engine type name) of `name`, in order."""
        return [(row[0], row[1]) for row in self.fetch(f"describe select * from {name}")[1]]

    def create_empty_like(self, name: str, parent: str) -> None:
        """Register `name` as a view with `parent`'s columns and no rows."""
        self.create_view(name, f"select * from {parent} where 1 = 0")

    def create_union_view(self, name: str, parents: list[str]) -> None:
        """Register `name` as every row of `parents` (the same columns in the same order), duplicates kept."""
        self.create_view(name, " union all ".join(f"select * from {parent}" for parent in parents))

    def open(self) -> None:
        """Start what the engine runs on now rather than at its first query (Spark's session; DuckDB has none)."""

    def close(self) -> None:
        """Release the engine's resources."""

    def outside_cpu_seconds(self) -> float:
        """CPU seconds used so far by processes the engine runs beside this one that are not its waited-for
        children (getrusage counts those): none for an engine inside the process."""
        return 0.0

    def outside_pids(self) -> list[int]:
        """The processes the engine runs beside this one that are not its waited-for children (their CPU,
        memory and I/O are part of a run's cost): none for an engine inside the process."""
        return []

    def stage_metrics(self) -> dict[str, tuple[int, ...]] | None:
        """The engine's own task metrics per finished stage (key -> executor run ms, executor CPU ns, shuffle
        bytes read, shuffle bytes written), or None for an engine that keeps none."""
        return None

    # ---- helpers shared by the engines
    @staticmethod
    def empty_select(schema: Schema) -> str:
        cols = ", ".join(f"cast(null as {sql_type}) as {col}" for col, sql_type in schema)
        return f"select {cols} where 1 = 0"

    @staticmethod
    def quote_literal(value: str) -> str:
        """The one way a text value becomes a SQL string literal (engines override it for their dialect)."""
        return "'" + value.replace("'", "''") + "'"

    @staticmethod
    def quote_identifier(name: str) -> str:
        """The one way a name becomes a SQL identifier (engines override it for their dialect)."""
        return '"' + name.replace('"', '""') + '"'

