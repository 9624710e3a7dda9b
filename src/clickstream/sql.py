"""Loading and rendering the SQL models: Jinja templates with a few cross-engine macros, as dbt does."""
from __future__ import annotations

import copy
from datetime import date, datetime
from functools import lru_cache, partial
from importlib import resources
from typing import Any

import jinja2
import yaml

from clickstream.config import DuplicateKeyError, unique_keys
from clickstream.engines.base import Engine
from clickstream.template_cache import bytecode_cache


def literal(value: Any, engine: Engine) -> str:
    """A config value as a SQL literal of `engine` (text is quoted the way that engine reads it back unchanged)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return f"date '{value.isoformat()}'"
    return engine.quote_literal(str(value))


def week_of(timestamp: str) -> str:
    """The week a timestamp falls in, as the date of its Monday (the folder of a table stored by week)."""
    return f"cast(date_trunc('week', {timestamp}) as date)"


def date_key(timestamp: str) -> str:
    """The `date_key` of a timestamp or date: YYYYMMDD as an integer (the key of dim_date)."""
    return f"cast(year({timestamp}) * 10000 + month({timestamp}) * 100 + day({timestamp}) as integer)"


def in_list(values: list[Any], engine: Engine) -> str:
    """`('a', 'b')` for an IN clause; an empty list matches nothing."""
    return "(" + ", ".join(literal(v, engine) for v in values) + ")" if values else "(null)"


def key_of(expressions: list[str], engine: Engine, free_text: list[str] | None = None) -> str:
    """One text from several values such that distinct tuples always give distinct texts (for an md5 key).

    The values are silver's: text trimmed and never empty (empty is NULL), or numbers written as text. Joined by
    the unit separator chr(31), with NULL as the empty text, they read back one way only, unless a value holds
    chr(31) itself. A row where one of `free_text` (the expressions that may hold any text; default all) does
    is written another way: a chr(31) first, then each value escaped (a backslash doubled, chr(31) as `\\s`,
    NULL as `\\N`), joined by chr(31). It then holds one chr(31) more than any row written the first way, so
    the two ways never meet, and each is injective on its own.
    """
    checked = expressions if free_text is None else [e for e in expressions if e in free_text]
    plain = f"concat_ws(chr(31), {', '.join(f'coalesce({e}, {literal(chr(32)[:0], engine)})' for e in expressions)})"
    backslash = literal(chr(92), engine)
    escaped = ", ".join(f"coalesce(replace(replace({e}, {backslash}, {literal(chr(92) * 2, engine)}), chr(31), "
                        f"{literal(chr(92) + 's', engine)}), {literal(chr(92) + 'N', engine)})" for e in expressions)
    if not checked:  # no value can hold chr(31): every row is written the first way
        return plain
    holds_separator = " or ".join(f"coalesce(contains({e}, chr(31)), false)" for e in checked)
    return f"case when {holds_separator} then concat(chr(31), concat_ws(chr(31), {escaped})) else {plain} end"


# What a spreadsheet reads as the start of a formula (OWASP, CSV injection): =, +, -, @, tab and carriage return.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(expr: str, engine: Engine) -> str:
    """Text a spreadsheet shows as text: a value starting like a formula gets a single quote in front (OWASP's
    advice for CSV injection). For the CSV copies people open; the Parquet tables keep the value."""
    starts = ", ".join(f"chr({ord(c)})" for c in FORMULA_STARTS)
    return f"case when substr({expr}, 1, 1) in ({starts}) then concat({literal(chr(39), engine)}, {expr}) else {expr} end"


def timestamp_literal(value: datetime, engine: Engine) -> str:
    return f"cast({literal(value.isoformat(sep=' '), engine)} as timestamp)"


def safe_divide(numerator: str, denominator: str) -> str:
    # Doubles on both sides and NULL for zero: Spark's ANSI mode raises on division by zero.
    return f"(cast({numerator} as double) / nullif(cast({denominator} as double), 0))"


def mean_seconds(microseconds: str) -> str:
    """The mean of whole microseconds, in seconds, the same bits whatever the rows' order: the sum is exact (a
    decimal), and one division rounds it. A mean of doubles depends on the order in which they were added."""
    return safe_divide(f"sum(cast({microseconds} as decimal(38,0)))", f"count({microseconds}) * 1000000")


@lru_cache(maxsize=None)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("clickstream", "sql"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        bytecode_cache=bytecode_cache(),
    )


def render(model_path: str, engine: Engine, **context: Any) -> str:
    """Render `sql/<model_path>.sql` for one engine; the model itself never names the engine."""
    template = _environment().get_template(f"{model_path}.sql")
    return template.render(
        literal=partial(literal, engine=engine), in_list=partial(in_list, engine=engine), safe_divide=safe_divide,
        mean_seconds=mean_seconds,
        key_of=partial(key_of, engine=engine), timestamp_literal=partial(timestamp_literal, engine=engine),
        week_of=week_of, date_key=date_key, identifier=engine.quote_identifier, **engine.macros(), **context
    ).strip().rstrip(";")


# libyaml's parser when PyYAML was built with it: the pure-Python one is many times slower.
_YAML_LOADER = unique_keys(getattr(yaml, "CSafeLoader", yaml.SafeLoader))


class DeclarationError(Exception):
    """A declaration file breaks its schema; the message names the file and the key."""


def parse_declarations(text: str, relative_path: str) -> Any:
    """The YAML of `sql/<relative_path>`; a key given twice is an error naming it and its lines."""
    try:
        return yaml.load(text, Loader=_YAML_LOADER)
    except DuplicateKeyError as exc:
        raise DeclarationError(exc.describe(f"invalid declarations in sql/{relative_path}")) from exc


@lru_cache(maxsize=None)
def _parsed_yaml(relative_path: str) -> Any:
    text = resources.files("clickstream").joinpath("sql", relative_path).read_text(encoding="utf-8")
    return parse_declarations(text, relative_path)


def load_yaml(relative_path: str) -> Any:
    """A declarations file of the package, parsed once per process; each caller gets its own copy."""
    return copy.deepcopy(_parsed_yaml(relative_path))


def first_comment_line(model_path: str) -> str:
    """The grain or purpose a model states in its first line (`-- one row per ...`)."""
    text = resources.files("clickstream").joinpath("sql", f"{model_path}.sql").read_text(encoding="utf-8")
    first = text.lstrip().splitlines()[0]
    return first[2:].strip() if first.startswith("--") else ""
