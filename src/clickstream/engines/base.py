"""The engine seam: the only interface the jobs use to read, run SQL and write. Tables are named views."""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Callable

from clickstream.config import EPOCH_UNITS, ISO8601, CsvOptions
from clickstream.schema import Schema

# Epoch text: a sign, digits, a fraction (any number of digits; those finer than a microsecond are dropped).
_EPOCH_TEXT = "^([+-]?)([0-9]+)([.]([0-9]*))?$"
# ISO 8601 date and time, `T` or a space between, 0-9 fraction digits, then `Z`, `+HH:MM`, `+HHMM`, `+HH` or
# nothing. Groups: 1 date, 2 time, 4 fraction, 5 zone, 6 its sign, 7 its hours, 9 its minutes.
_ISO8601_TEXT = ("^([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}:[0-9]{2}:[0-9]{2})([.]([0-9]{1,9}))?"
                 "(Z|([+-])([0-9]{2})(:?([0-9]{2}))?)?$")
# The microseconds of 0001-01-01 00:00:00 and 9999-12-31 23:59:59.999999: what both engines hold alike.
_MICROS_RANGE = (-62135596800000000, 253402300799999999)


class InputError(Exception):
    """Unreadable or malformed input; the message names the file (and the line where the engine says it)."""


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
        """A bigint of microseconds since 1970-01-01 (within years 1 to 9999) to the UTC timestamp."""

    @abc.abstractmethod
    def minus_minutes(self, expr: str, minutes: str) -> str:
        """A timestamp `minutes` (an integer expression) earlier."""

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
        cases = " ".join(f"when {read[0]} is not null then {read[part] or 'null'}" for read in reads)
        return f"cast(case {cases} end as timestamp)"

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
        pattern = self.quote_literal(_EPOCH_TEXT)

        def group(index: int) -> str:
            return f"regexp_extract({expr}, {pattern}, {index})"

        shift = 6 - digits
        if shift >= 0:  # seconds, ms, us: the integer part, then `shift` digits of the fraction (zeros added)
            micros_text = f"concat({group(1)}, {group(2)}, rpad({group(4)}, {shift}, '0'))"
        else:  # ns: the integer part without its last three digits
            micros_text = (f"concat({group(1)}, '0', regexp_extract({group(2)}, "
                           f"{self.quote_literal('^([0-9]*)[0-9]{3}$')}, 1))")
        micros = f"try_cast({micros_text} as bigint)"  # NULL when it overflows, on both engines
        low, high = _MICROS_RANGE
        return (f"case when {group(2)} <> '' and {group(0)} = {expr} and {micros} between {low} and {high} "
                f"then {self.timestamp_from_micros(micros)} end")

    def _iso8601(self, expr: str) -> tuple[str, str, str]:
        """The ISO 8601 read: parsed, the wall-clock time where no offset is written, the instant where one is."""
        pattern = self.quote_literal(_ISO8601_TEXT)

        def group(index: int) -> str:
            return f"regexp_extract({expr}, {pattern}, {index})"

        # an offset of 00-23 hours and 00-59 minutes (two-digit text compares as the number)
        valid = (f"{group(1)} <> '' and {group(0)} = {expr} and ({group(5)} in ('', 'Z') or ({group(7)} <= '23' "
                 f"and coalesce(nullif({group(9)}, ''), '00') <= '59'))")
        # fraction digits past the sixth are dropped: timestamps hold microseconds
        canonical = f"concat({group(1)}, ' ', {group(2)}, '.', rpad({group(4)}, 6, '0'))"
        wall = self.strptime(canonical, ["%Y-%m-%d %H:%M:%S.%f"])
        minutes = (f"(case when {group(6)} = '-' then -1 else 1 end) * (cast(nullif({group(7)}, '') as int) * 60 "
                   f"+ cast(coalesce(nullif({group(9)}, ''), '0') as int))")
        return (f"case when {valid} then {wall} end",
                f"case when {valid} and {group(5)} = '' then {wall} end",
                f"case when {valid} and {group(5)} = 'Z' then {wall} "
                f"when {valid} and {group(5)} <> '' then {self.minus_minutes(wall, minutes)} end")

    @abc.abstractmethod
    def to_utc(self, expr: str, timezone: str) -> str:
        """A wall-clock timestamp in `timezone` to the UTC timestamp."""

    @abc.abstractmethod
    def from_utc(self, expr: str, timezone: str) -> str:
        """A UTC timestamp to the wall clock of `timezone` (the inverse of to_utc where the wall time exists)."""

    @abc.abstractmethod
    def iso_day_of_week(self, expr: str) -> str:
        """1 = Monday ... 7 = Sunday."""

    @abc.abstractmethod
    def date_series(self, start: str, end: str) -> str:
        """A FROM-able relation with one column `date_day`, one row per day from start to end inclusive.

        `start` and `end` are scalar expressions such as `(select first_day from bounds)`; they may not name a
        column of another relation in the same FROM (a lateral reference), which Spark does not allow here.
        """

    def macros(self) -> dict[str, Callable[..., str]]:
        return {
            "epoch_us": self.epoch_us,
            "parse_timestamp": self.parse_timestamp,
            "parse_instant": self.parse_instant,
            "to_utc": self.to_utc,
            "from_utc": self.from_utc,
            "iso_day_of_week": self.iso_day_of_week,
            "date_series": self.date_series,
        }

    # ---- reading
    @abc.abstractmethod
    def read_csv(self, name: str, files: list[Path], columns: int, options: CsvOptions) -> None:
        """Register `name` over CSV files with a header line: their `columns` fields as text, named `c0`,
        `c1`, ... by position (a header's names never reach SQL), plus `input_file`, the name (not the path)
        of the file each row came from. A malformed row fails the read with an `InputError`."""

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
    def fetch(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a query whose result is small and return (column names, rows)."""

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

    def close(self) -> None:
        """Release the engine's resources."""

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

