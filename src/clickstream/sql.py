"""Loading and rendering the SQL models: Jinja templates with a few cross-engine macros, as dbt does."""
from __future__ import annotations

import copy
from datetime import datetime
from functools import lru_cache, partial
from importlib import resources
from typing import Any

import jinja2
import yaml

from clickstream.engines.base import Engine


def literal(value: Any, engine: Engine) -> str:
    """A config value as a SQL literal of `engine` (text is quoted the way that engine reads it back unchanged)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return engine.quote_literal(str(value))


def in_list(values: list[Any], engine: Engine) -> str:
    """`('a', 'b')` for an IN clause; an empty list matches nothing."""
    return "(" + ", ".join(literal(v, engine) for v in values) + ")" if values else "(null)"


def key_of(expressions: list[str], engine: Engine) -> str:
    """One text from several values such that distinct tuples always give distinct texts (for an md5 key).

    Each value is escaped before the values are joined by the unit separator chr(31): a backslash becomes two,
    chr(31) becomes a backslash and `s`, and NULL is a backslash and `N`. After escaping, a backslash is always
    followed by one of those three and chr(31) never occurs, so the joined text reads back one way only.
    """
    backslash = literal("\\", engine)
    escaped = [f"coalesce(replace(replace({expr}, {backslash}, {literal(chr(92) * 2, engine)}), chr(31), "
               f"{literal(chr(92) + 's', engine)}), {literal(chr(92) + 'N', engine)})" for expr in expressions]
    return f"concat_ws(chr(31), {', '.join(escaped)})"


def timestamp_literal(value: datetime, engine: Engine) -> str:
    return f"cast({literal(value.isoformat(sep=' '), engine)} as timestamp)"


def safe_divide(numerator: str, denominator: str) -> str:
    # Doubles on both sides and NULL for zero: Spark's ANSI mode raises on division by zero.
    return f"(cast({numerator} as double) / nullif(cast({denominator} as double), 0))"


@lru_cache(maxsize=None)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("clickstream", "sql"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(model_path: str, engine: Engine, **context: Any) -> str:
    """Render `sql/<model_path>.sql` for one engine; the model itself never names the engine."""
    template = _environment().get_template(f"{model_path}.sql")
    return template.render(
        literal=partial(literal, engine=engine), in_list=partial(in_list, engine=engine), safe_divide=safe_divide,
        key_of=partial(key_of, engine=engine), timestamp_literal=partial(timestamp_literal, engine=engine),
        **engine.macros(), **context
    ).strip().rstrip(";")


# libyaml's parser when PyYAML was built with it: the pure-Python one took 40 ms per declarations file.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@lru_cache(maxsize=None)
def _parsed_yaml(relative_path: str) -> Any:
    text = resources.files("clickstream").joinpath("sql", relative_path).read_text(encoding="utf-8")
    return yaml.load(text, Loader=_YAML_LOADER)


def load_yaml(relative_path: str) -> Any:
    """A declarations file of the package, parsed once per process; each caller gets its own copy."""
    return copy.deepcopy(_parsed_yaml(relative_path))


def first_comment_line(model_path: str) -> str:
    """The grain or purpose a model states in its first line (`-- one row per ...`)."""
    text = resources.files("clickstream").joinpath("sql", f"{model_path}.sql").read_text(encoding="utf-8")
    first = text.lstrip().splitlines()[0]
    return first[2:].strip() if first.startswith("--") else ""
