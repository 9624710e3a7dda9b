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


_STRFTIME_TO_JAVA = {
    "Y": "yyyy", "y": "yy", "m": "MM", "d": "dd", "H": "HH", "I": "hh", "M": "mm", "S": "ss",
    "f": "SSSSSS", "p": "a", "b": "MMM", "B": "MMMM", "j": "DDD", "%": "%",
}


def _java_literal(text: str) -> str:
    """Literal text in a Java pattern: quoted where it holds letters or quotes, which Java would read as fields."""
    return "'" + text.replace("'", "''") + "'" if re.search(r"[A-Za-z']", text) else text


def strftime_to_java(fmt: str, lenient_widths: bool = False) -> str:
    """Translate a strftime format into a Java DateTimeFormatter pattern (letters outside codes are quoted).

    With `lenient_widths`, digit fields read as many digits as they are given (`strftime_shape` bounds
    them) and a run of whitespace becomes one space: for text whose whitespace runs were made one space.
    """
    if lenient_widths:
        return _strftime_to_java_lenient(fmt)
    out: list[str] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            out.append(_java_literal("".join(literal)))
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


# DuckDB's strptime (like Python's) reads digit fields with fewer digits than it writes: "2024-1-5 9:05:00"
# parses with "%Y-%m-%d %H:%M:%S". A one-letter Java pattern reads any number of digits instead.
_LENIENT_JAVA = {"Y": "y", "m": "M", "d": "d", "H": "H", "I": "h", "M": "m", "S": "s", "j": "D"}
# code -> (regex when the next piece is a digit field too, regex otherwise)
_SHAPE = {
    "Y": ("[0-9]{4}", "[0-9]{1,4}"), "y": ("[0-9]{2}", "[0-9]{2}"), "m": ("[0-9]{2}", "[0-9]{1,2}"),
    "d": ("[0-9]{2}", "[0-9]{1,2}"), "H": ("[0-9]{2}", "[0-9]{1,2}"), "I": ("[0-9]{2}", "[0-9]{1,2}"),
    "M": ("[0-9]{2}", "[0-9]{1,2}"), "S": ("[0-9]{2}", "[0-9]{1,2}"), "f": ("[0-9]{6}", "[0-9]{1,6}"),
    "j": ("[0-9]{3}", "[0-9]{1,3}"), "p": ("[AaPp][Mm]",) * 2, "b": ("[A-Za-z]+",) * 2,
    "B": ("[A-Za-z]+",) * 2, "%": ("%",) * 2,
}
_DIGIT_CODES = set("YymdHIMSfj")
_REGEX_SPECIAL = set("\\^$.|?*+()[]{}-")


def _strftime_tokens(fmt: str) -> list[tuple[bool, str]]:
    """(is_code, text) pieces of a strftime format: `%Y-%m` -> (True, 'Y'), (False, '-'), (True, 'm')."""
    tokens: list[tuple[bool, str]] = []
    i = 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            if fmt[i + 1] not in _STRFTIME_TO_JAVA:
                raise ValueError(f"timestamp format {fmt!r}: %{fmt[i + 1]} is not supported")
            tokens.append((True, fmt[i + 1]))
            i += 2
        else:
            tokens.append((False, fmt[i]))
            i += 1
    return tokens


def _variable_width(tokens: list[tuple[bool, str]], index: int) -> bool:
    """A digit field may vary in width unless a digit field follows it directly (`%Y%m%d`)."""
    following = tokens[index + 1] if index + 1 < len(tokens) else None
    return not (following is not None and following[0] and following[1] in _DIGIT_CODES)


def strftime_shape(fmt: str) -> str:
    """A regular expression (same meaning in Java and RE2) for the text DuckDB's strptime accepts with `fmt`.

    Digit fields take 1-2 digits (years 1-4, fractions 1-6, days of the year 1-3), a space of the format
    takes any run of whitespace, and whitespace may surround the value. An engine whose parser is stricter
    or laxer checks this shape first, so that every engine accepts the same text.
    """
    tokens = _strftime_tokens(fmt)
    out = [r"^\s*"]
    for index, (is_code, text) in enumerate(tokens):
        if is_code:
            fixed, variable = _SHAPE[text]
            out.append(variable if _variable_width(tokens, index) else fixed)
        elif text.isspace():
            if out[-1] != r"\s+":
                out.append(r"\s+")
        else:
            out.append("\\" + text if text in _REGEX_SPECIAL else text)
    out.append(r"\s*$")
    return "".join(out)


_EXACT_CODES = set("YymdHMSf")


def strftime_exact_shape(fmt: str) -> str | None:
    """A regular expression for the canonical text of `fmt`: every digit field at its full width, nothing
    around the value, the format's own separators. None when `fmt` has a code other than Y y m d H M S f.

    Text of this shape reads the same with `strftime_to_java(fmt)` as with the lenient pattern after
    `strftime_shape`, so an engine can take it first, as the cheaper way to the same value.
    """
    tokens = _strftime_tokens(fmt)
    if any(is_code and text not in _EXACT_CODES for is_code, text in tokens):
        return None
    out = ["^"]
    for is_code, text in tokens:
        if is_code:
            out.append(_SHAPE[text][0])
        else:
            out.extend("\\" + c if c in _REGEX_SPECIAL else c for c in text)
    out.append("$")
    return "".join(out)


def _strftime_to_java_lenient(fmt: str) -> str:
    tokens = _strftime_tokens(fmt)
    out: list[str] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            out.append(_java_literal("".join(literal)))
            literal.clear()

    for index, (is_code, text) in enumerate(tokens):
        if is_code:
            flush()
            lenient = text in _LENIENT_JAVA and _variable_width(tokens, index)
            out.append(_LENIENT_JAVA[text] if lenient else _STRFTIME_TO_JAVA[text])
        elif text.isspace():
            if not literal or literal[-1] != " ":
                literal.append(" ")
        else:
            literal.append(text)
    flush()
    return "".join(out)
