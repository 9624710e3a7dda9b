"""The engine seam: the only interface the jobs use to read, run SQL and write. Tables are named views."""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Callable

from clickstream.config import CsvOptions
from clickstream.schema import Schema


# The characters Unicode gives the White_Space property (tab, LF, VT, FF, CR, space, NEL, no-break spaces, the
# typographic spaces, line and paragraph separators, the ideographic space): trimmed from both ends of every
# silver text value. Not the ASCII separators chr(28)-chr(31) Python also calls space: they are data here.
WHITESPACE = "".join(map(chr, [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                               0x2028, 0x2029, 0x202F, 0x205F, 0x3000]))


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
    def parse_timestamp(self, expr: str, formats: list[str]) -> str:
        """Text to timestamp using strftime-style formats; NULL (never an error) when none parses."""

    @abc.abstractmethod
    def to_utc(self, expr: str, timezone: str) -> str:
        """A wall-clock timestamp in `timezone` to the UTC timestamp."""

    @abc.abstractmethod
    def from_utc(self, expr: str, timezone: str) -> str:
        """A UTC timestamp to the wall clock of `timezone` (the inverse of to_utc where the wall time exists)."""

    @abc.abstractmethod
    def trim_whitespace(self, expr: str) -> str:
        """Text with every WHITESPACE character removed from both ends (NULL stays NULL)."""

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
            "to_utc": self.to_utc,
            "from_utc": self.from_utc,
            "trim_whitespace": self.trim_whitespace,
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
    def text_columns(self, name: str) -> list[str]:
        """The columns of table `name` that hold text, in table order."""

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

