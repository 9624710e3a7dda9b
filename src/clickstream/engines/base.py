"""The engine seam: the only interface the jobs use to read, run SQL and write. Tables are named views."""
from __future__ import annotations

import abc
import re
from pathlib import Path
from typing import Any, Callable

from clickstream.config import CsvOptions
from clickstream.schema import Schema


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
    def iso_day_of_week(self, expr: str) -> str:
        """1 = Monday ... 7 = Sunday."""

    @abc.abstractmethod
    def date_series(self, start: str, end: str) -> str:
        """A FROM-able relation with one column `date_day`, one row per day from start to end inclusive."""

    def macros(self) -> dict[str, Callable[..., str]]:
        return {
            "epoch_us": self.epoch_us,
            "parse_timestamp": self.parse_timestamp,
            "to_utc": self.to_utc,
            "iso_day_of_week": self.iso_day_of_week,
            "date_series": self.date_series,
        }

    # ---- reading
    @abc.abstractmethod
    def read_csv(self, name: str, files: list[Path], header: list[str], options: CsvOptions, raw_dir: Path) -> None:
        """Register `name`: every column of `header` as text plus `source_file` (path relative to raw_dir)."""

    @abc.abstractmethod
    def read_parquet(self, name: str, files: list[Path], schema: Schema | None, partitioned: bool = False) -> None:
        """Register `name` over Parquet files (Hive partition columns from the paths).

        With a schema, exactly its columns (and an empty table when there are no files); without one,
        every column the files hold.
        """

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
    def write_parquet(self, name: str, path: Path, partition_by: list[str] | None = None) -> None:
        """Write table `name` as snappy Parquet files under the new directory `path`."""

    @abc.abstractmethod
    def write_csv(self, name: str, path: Path) -> None:
        """Write table `name` as one CSV file with a header."""

    def close(self) -> None:
        """Release the engine's resources."""

    # ---- helpers shared by the engines
    @staticmethod
    def empty_select(schema: Schema) -> str:
        cols = ", ".join(f"cast(null as {sql_type}) as {col}" for col, sql_type in schema)
        return f"select {cols} where 1 = 0"

    @staticmethod
    def quote_literal(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"


_STRFTIME_TO_JAVA = {
    "Y": "yyyy", "y": "yy", "m": "MM", "d": "dd", "H": "HH", "I": "hh", "M": "mm", "S": "ss",
    "f": "SSSSSS", "p": "a", "b": "MMM", "B": "MMMM", "j": "DDD", "%": "%",
}


def strftime_to_java(fmt: str) -> str:
    """Translate a strftime format into a Java DateTimeFormatter pattern (letters outside codes are quoted)."""
    out: list[str] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            text = "".join(literal)
            out.append("'" + text.replace("'", "''") + "'" if re.search(r"[A-Za-z']", text) else text)
            literal.clear()

    i = 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            code = fmt[i + 1]
            if code not in _STRFTIME_TO_JAVA:
                raise ValueError(f"timestamp format {fmt!r}: %{code} is not supported")
            flush()
            out.append(_STRFTIME_TO_JAVA[code])
            i += 2
        else:
            literal.append(fmt[i])
            i += 1
    flush()
    return "".join(out)
