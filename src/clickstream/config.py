"""Typed configuration: every default lives here; every unknown key, mistyped value or value out of bounds is an
error naming the key."""
from __future__ import annotations

import difflib
import math
import re
import zoneinfo
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clickstream.presets import PRESETS, with_preset
from clickstream.schema import BASE_EVENT_TYPES, BRONZE, CANONICAL_RAW_COLUMNS, REQUIRED_RAW_COLUMNS, SILVER

DEFAULT_CONFIG_PATH = Path("config/config.yaml")

# A value quoted back in an error message is cut to this many characters: a huge value must not make a huge line.
QUOTE_LIMIT = 200

# The strftime codes the engines translate (the keys of engines.spark_formats._STRFTIME_TO_JAVA; a test checks they
# agree).
STRFTIME_CODES = "YymdHIMSfpbBj%"
# timestamp_formats' keywords besides strftime formats: epoch text in a unit of 10^-n seconds (n per keyword),
# and ISO 8601 with or without an offset.
EPOCH_UNITS = {"epoch_s": 0, "epoch_ms": 3, "epoch_us": 6, "epoch_ns": 9}
ISO8601 = "iso8601"
TIMESTAMP_KEYWORDS = (*EPOCH_UNITS, ISO8601)

# DuckDB's memory_limit: a number and a unit, 1000^i or 1024^i bytes (what DuckDB's SET memory_limit parses).
_KB, _KIB = 1000, 1024
_DUCKDB_UNITS = {
    **dict.fromkeys(("b", "byte", "bytes"), 1),
    **dict.fromkeys(("k", "kb", "kilobyte", "kilobytes"), _KB), "kib": _KIB,
    **dict.fromkeys(("m", "mb", "megabyte", "megabytes"), _KB**2), "mib": _KIB**2,
    **dict.fromkeys(("g", "gb", "gigabyte", "gigabytes"), _KB**3), "gib": _KIB**3,
    **dict.fromkeys(("t", "tb", "terabyte", "terabytes"), _KB**4), "tib": _KIB**4,
}
_DUCKDB_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]+)\s*", re.ASCII)
# The smallest duckdb.memory_limit accepted: a run of 200 rows fails at 32MB (every layer's temporary tables are
# held at once), and 40MB is the least measured to pass; 64MB leaves room for DuckDB's own growth.
MIN_DUCKDB_MEMORY = 64 * _KB**2
# A JVM heap size as -Xmx reads it (Spark passes spark.driver.memory to -Xmx): a whole number and k, m, g or t.
_JVM_SIZE = re.compile(r"([0-9]{1,15})([kmgtKMGT])")
_JVM_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
# Spark refuses a heap under 450 MiB at start; 512m is the smallest round size above it.
MIN_JVM_MEMORY = 512 * 1024**2
# File names in the tz database folder that are not zones the engines know.
_NOT_ZONES = ("localtime", "posixrules", "Factory")


class ConfigError(Exception):
    """A configuration problem; the message names the file and the key, on one line. `details` are lines shown
    below it (the line of the file a YAML error points at, and its pointer)."""

    def __init__(self, message: str, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.details = details


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A YAML mapping gives the same key twice: YAML itself would keep the last value without a word."""

    def __init__(self, key: object, first_line: int, node: yaml.Node) -> None:
        self.key, self.first_line, self.line = key, first_line, node.start_mark.line + 1
        super().__init__(None, None, f"key {_quote(key)} is given twice, on line {first_line} and line {self.line}",
                         node.start_mark)

    def describe(self, where: str) -> str:
        return (f"{where}: key {_quote(self.key)} is given twice, on line {self.first_line} and line {self.line} "
                f"(YAML would keep the last silently): keep one")


def unique_keys(base: type) -> type:
    """The YAML loader `base` (SafeLoader, CSafeLoader), its mappings refusing a key given twice."""

    class UniqueKeyLoader(base):  # type: ignore[valid-type, misc]
        def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
            if isinstance(node, yaml.MappingNode):
                seen: dict[object, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may be overridden by design
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.get(key)
                    except TypeError:  # an unhashable key: the base loader says so
                        continue
                    if first is not None:
                        raise DuplicateKeyError(key, first, key_node)
                    seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep=deep)

    UniqueKeyLoader.__name__ = f"UniqueKey{base.__name__}"
    return UniqueKeyLoader


_CONFIG_LOADER = unique_keys(yaml.SafeLoader)


class _KeyedErrors(ValueError):
    """Problems found below the key being validated; `_describe` names each one's full key."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, key))}: {message}" for key, message in problems))
        self.problems = problems


def _quote(value: object) -> str:
    """A value as an error message quotes it: repr (a line break stays visible), cut to QUOTE_LIMIT characters."""
    text = str(value)
    if len(text) <= QUOTE_LIMIT:
        return repr(text)
    return f"{text[:QUOTE_LIMIT]!r}... ({len(text)} characters)"


def _did_you_mean(value: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(value, candidates, n=1) if len(value) <= QUOTE_LIMIT else []
    return f"; did you mean {_quote(close[0])}?" if close else ""


def _is_zone(name: str) -> bool:
    if name in _NOT_ZONES or name.startswith(("posix/", "right/")):
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _format_problem(fmt: str) -> str | None:
    """Why a strftime format cannot be used by both engines, or None."""
    if not fmt:
        return "'' is an empty format; write codes such as '%Y-%m-%d %H:%M:%S'"
    if fmt in TIMESTAMP_KEYWORDS:
        return None
    for match in re.finditer(r"%(.?)", fmt, re.DOTALL):
        code = match.group(1)
        if not code:
            return f"{_quote(fmt)} ends with a lone '%'; write '%%' for a percent sign"
        if code in "zZ":
            return (f"{_quote(fmt)} uses %{code}: timestamps must be written without a zone, and "
                    "sources[].timezone names their zone (the engines read zones in the text differently)")
        if code not in STRFTIME_CODES:
            supported = " ".join(f"%{c}" for c in STRFTIME_CODES)
            return f"{_quote(fmt)} uses {_quote('%' + code)}, which is not supported (supported: {supported})"
    if not re.search(r"%[^%]", fmt.replace("%%", "")):  # every row would be quarantined
        return (f"{_quote(fmt)} has no strftime code and is not a keyword "
                f"({', '.join(TIMESTAMP_KEYWORDS)}){_did_you_mean(fmt, list(TIMESTAMP_KEYWORDS))}")
    return None


# The columns silver's models compute on the way (sql/silver/*.sql): no attribute may take one of their names.
_SILVER_WORKING_COLUMNS = frozenset({
    "timestamp_text", "amount_text", "local_ts", "instant_ts", "is_nonexistent_local_time", "is_ambiguous_local_time",
    "rejection_reasons", "supplied_event_id", "identity_values", "content_id", "held_content_id", "kept_content_id",
    "is_already_in_silver", "copy_number", "disposition", "is_conflicting", "duplicate_kind", "file_path",
    *(f"raw_{c}" for c in ("user_id", "session_id", "timestamp", "event_type", "product_id", "amount", "outcome",
                           "event_id"))})
# What an attribute may be called: a lowercase SQL name, none of the columns of silver (and gold's dimensions, below).
_ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}", re.ASCII)


def _attribute_name_problem(name: str) -> str | None:
    """Why `name` cannot be an attribute (a column of silver, dim_products and dim_sessions), or None."""
    if not _ATTRIBUTE_NAME.fullmatch(name):
        return (f"{_quote(name)} is not an attribute name: lowercase letters, digits and underscores, starting with "
                "a letter (at most 63)")
    taken = {c.lower() for c in CANONICAL_RAW_COLUMNS} | {c for c, _ in BRONZE + SILVER} | _SILVER_WORKING_COLUMNS
    if name in taken:
        return f"{_quote(name)} is already a column name (of bronze or silver): choose another name"
    return None


def duckdb_memory_bytes(value: str) -> float | None:
    """The bytes in a memory size as DuckDB reads it ('64MB' -> 64e6), or None if DuckDB cannot read it."""
    match = _DUCKDB_SIZE.fullmatch(value)
    unit = match and _DUCKDB_UNITS.get(match.group(2).lower())
    return float(match.group(1)) * unit if match and unit else None


def duckdb_memory_size(size: float) -> str:
    """A size in bytes written for duckdb.memory_limit, rounded up to whole MB or GB ('128MB', '12GB')."""
    return f"{math.ceil(size / _KB**3)}GB" if size >= _KB**3 else f"{math.ceil(size / _KB**2)}MB"


def _duckdb_memory_problem(value: str) -> str | None:
    """Why DuckDB's SET memory_limit would refuse (or be useless with) this value, or None."""
    size = duckdb_memory_bytes(value)
    if size is None:
        return (f"{_quote(value)} is not a memory size DuckDB reads: a number and a unit, e.g. '6GB', '512MiB' "
                "or '1.5 GB' (units KB, MB, GB, TB for 1000^i bytes; KiB, MiB, GiB, TiB for 1024^i)")
    if size < 1:
        return f"{_quote(value)} must be more than zero"
    if size >= 2**64:
        return f"{_quote(value)} is more than DuckDB can hold (16 EiB)"
    if size < MIN_DUCKDB_MEMORY:
        return (f"{_quote(value)} is too small: a run needs at least {duckdb_memory_size(MIN_DUCKDB_MEMORY)!r} "
                f"(below it DuckDB cannot hold even a few hundred rows' tables)")
    return None


def _jvm_memory_problem(value: str) -> str | None:
    """Why the JVM or Spark would refuse this heap size, or None."""
    match = _JVM_SIZE.fullmatch(value)
    if not match:
        return f"{_quote(value)} is not a JVM memory size: a whole number and a unit k, m, g or t, e.g. '512m' or '2g'"
    if int(match.group(1)) * _JVM_UNITS[match.group(2).lower()] < MIN_JVM_MEMORY:
        return f"{_quote(value)} is too small: Spark needs at least '512m'"
    return None


class _Strict(BaseModel):
    # Unknown keys are errors, so a misspelled key never silently falls back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvOptions(_Strict):
    delimiter: str = ","
    quote: str = '"'
    escape: str = '"'
    # false: the file has no header line; sources[].columns then maps canonical columns to 0-based positions
    header: bool = True
    encoding: Literal["utf-8"] = "utf-8"
    # A quoted field may hold a line break (DuckDB always reads one). False lets Spark split one large file
    # across tasks, and a line break inside quotes is then a malformed row.
    multiline: bool = True

    @field_validator("delimiter", "quote", "escape")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError("must be exactly one character")
        if value in "\r\n":
            raise ValueError(f"{_quote(value)} is a line break, which ends a row")
        return value

    @model_validator(mode="after")
    def _not_the_delimiter(self) -> "CsvOptions":
        # a quote or escape equal to the delimiter makes a field boundary indistinguishable from quoting
        problems = [((key,), f"{_quote(self.delimiter)} is also the delimiter")
                    for key in ("quote", "escape") if getattr(self, key) == self.delimiter]
        if problems:
            raise _KeyedErrors(problems)
        return self


# File names read as JSON lines when a source names no `format` (their `.gz` forms too); any other is CSV.
NDJSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
FORMATS = ["csv", "ndjson"]


def _preset_named(name: Any) -> Any:
    """The preset a source names (clickstream.presets), or a one-line error with the closest name."""
    if not isinstance(name, str) or name not in PRESETS:
        names = sorted(PRESETS)
        raise _KeyedErrors([(("preset",), f"{_quote(name)} is not a preset{_did_you_mean(str(name), names)} "
                                           f"(presets: {', '.join(names)})")])
    return PRESETS[name]


class Source(_Strict):
    # a well-known export's settings (clickstream.presets) that the keys given beside it override
    preset: str | None = None
    name: str = "clickstream"
    glob: str = "*.csv"
    # csv | ndjson (one JSON object a line); null: from each file's name (NDJSON_SUFFIXES are JSON lines)
    format: str | None = None
    csv: CsvOptions = CsvOptions()
    # canonical raw column -> column name in the file, or its 0-based position with csv.header false, or the
    # dotted path of a JSON-lines value (`properties.price`) (null: the file has no such column; EventID, the
    # feed's own event id, is not mapped unless named)
    columns: dict[str, str | int | None] = Field(
        default_factory=lambda: {c: None if c == "EventID" else c for c in CANONICAL_RAW_COLUMNS})
    # unmapped columns whose values are part of an event's identity besides the mapped ones (not with EventID)
    identity_columns: list[str] = Field(default_factory=list)
    # attribute name -> unmapped column kept in silver as text (by name, as `identity_columns`)
    attributes: dict[str, str] = Field(default_factory=dict)
    # value in the file -> canonical event type; values not listed are kept as they are
    event_types: dict[str, str] = Field(default_factory=dict)
    # strftime-style formats tried in order; the first that parses wins
    timestamp_formats: list[str] = Field(default_factory=lambda: ["%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"])
    # zone the file's timestamps are written in; they are stored as UTC
    timezone: str = "UTC"
    # a line that cannot be split into the header's fields: quarantined with its line number, or the run stops
    on_malformed: Literal["quarantine", "fail"] = "quarantine"
    # an ingested file whose content changed: its earlier rows are replaced by the new version's, the new
    # version is ignored (with a warning), or the run stops
    on_change: Literal["replace", "ignore", "fail"] = "replace"

    @model_validator(mode="before")
    @classmethod
    def _from_preset(cls, data: Any) -> Any:
        # the preset's keys first, then the source's own over them (csv, columns, ... merged key by key)
        if isinstance(data, dict) and data.get("preset") is not None:
            return with_preset(data, _preset_named(data["preset"]))
        return data

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value.replace("_", "").isalnum():
            raise ValueError("must contain only letters, digits and underscores")
        return value

    @field_validator("glob")
    @classmethod
    def _inside_raw(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty: it names the source's files under <data_dir>/raw")
        if value.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[/\\]", value):
            raise ValueError(f"{_quote(value)} is absolute; a glob is relative to <data_dir>/raw")
        if ".." in re.split(r"[/\\]", value):
            raise ValueError(f"{_quote(value)} leaves <data_dir>/raw through '..'")
        if any("**" in part and part != "**" for part in value.split("/")):
            raise ValueError(f"{_quote(value)}: '**' stands for any number of folders only as a whole part "
                             "between slashes (e.g. 'exports/**/*.csv')")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value == "UTC" or _is_zone(value):  # UTC needs no tz database
            return value
        zones = sorted(z for z in zoneinfo.available_timezones() if _is_zone(z))
        raise ValueError(f"{_quote(value)} is not a time zone of the tz database{_did_you_mean(value, zones)} "
                         "(e.g. 'UTC', 'Europe/Paris', 'America/New_York')")

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        if value is not None and value not in FORMATS:
            raise ValueError(f"{_quote(value)} is not a format{_did_you_mean(value, FORMATS)} (csv | ndjson; null: "
                             "from each file's name)")
        return value

    def format_of(self, relative: str) -> str:
        """How a file of this source is read: its `format`, else by its name (`.gz` aside)."""
        if self.format is not None:
            return self.format
        return "ndjson" if relative.lower().removesuffix(".gz").endswith(NDJSON_SUFFIXES) else "csv"

    @field_validator("columns", mode="before")
    @classmethod
    def _names_or_positions(cls, value: Any) -> Any:
        # a name or a position, never a boolean or a fraction (which pydantic would turn into a position)
        if isinstance(value, dict):
            problems = [((key,), f"{_quote(column)} is neither a column name nor a position")
                        for key, column in value.items() if isinstance(column, (bool, float))]
            if problems:
                raise _KeyedErrors(problems)
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str | int | None]) -> dict[str, str | int | None]:
        unknown = sorted(set(value) - set(CANONICAL_RAW_COLUMNS))
        if unknown:
            shown = ", ".join(_quote(c) for c in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            raise ValueError(f"unknown canonical column(s) {shown}; expected keys among {CANONICAL_RAW_COLUMNS}")
        missing = [c for c in REQUIRED_RAW_COLUMNS if value.get(c) is None or value.get(c) == ""]
        if missing:
            raise ValueError(f"column(s) {missing} must be mapped to a column of the file")
        return {c: value.get(c) for c in CANONICAL_RAW_COLUMNS}

    @model_validator(mode="after")
    def _columns_fit_the_header(self) -> "Source":
        # with a header, columns are named; without one, they are 0-based positions in the row
        if self.format == "ndjson":
            problems = _json_paths_problems(self)
        elif self.csv.header:
            problems = [(("columns", key), f"{column} is a position, but csv.header is true: name the header's "
                         "column, or set csv.header: false")
                        for key, column in self.columns.items() if isinstance(column, int)]
        else:
            problems = [(("columns", key), f"{column} is negative: positions count from 0 (the row's first field)"
                         if isinstance(column, int) else f"{_quote(column)} is not a position: with csv.header "
                         f"false, map each column to its 0-based position in the row, e.g. {key}: 0")
                        for key, column in self.columns.items()
                        if column is not None and not (isinstance(column, int) and column >= 0)]
        if problems:
            raise _KeyedErrors(problems)
        return self

    @field_validator("identity_columns", "attributes", mode="before")
    @classmethod
    def _unmapped_keys(cls, value: Any) -> Any:
        # a headerless file's position may be written as a number (5) or as text ("5")
        def as_key(key: Any) -> Any:
            return str(key) if isinstance(key, int) and not isinstance(key, bool) else key
        if isinstance(value, list):
            return [as_key(key) for key in value]
        if isinstance(value, dict):
            return {name: as_key(key) for name, key in value.items()}
        return value

    @field_validator("attributes")
    @classmethod
    def _attribute_names(cls, value: dict[str, str]) -> dict[str, str]:
        problems = [((name,), _attribute_name_problem(name)) for name in value if _attribute_name_problem(name)]
        if problems:
            raise _KeyedErrors(problems)
        return value

    @model_validator(mode="after")
    def _identity_and_attributes(self) -> "Source":
        # the keys name columns bronze keeps apart (sources[].columns does not map them), once each
        mapped = {str(column): canonical for canonical, column in self.columns.items() if column is not None}
        keys = [(("identity_columns", i), key) for i, key in enumerate(self.identity_columns)]
        keys += [(("attributes", name), key) for name, key in self.attributes.items()]
        problems = []
        if self.identity_columns and self.columns.get("EventID") is not None:
            problems.append((("identity_columns",), "must be empty when columns.EventID is mapped: the feed's own "
                             "id alone identifies an event"))
        for where, key in keys:
            if not key.strip():
                problems.append((where, "is empty: name a column of the file"))
            elif key in mapped:
                problems.append((where, f"{_quote(key)} is mapped as columns.{mapped[key]}: name an unmapped column"))
            elif not self.csv.header and not key.isdigit():
                problems.append((where, f"{_quote(key)} is not a position: with csv.header false, name the column "
                                 "by its 0-based position in the row, e.g. '5'"))
        problems += [(("identity_columns", i), f"{_quote(key)} is listed twice")
                     for i, key in enumerate(self.identity_columns) if key in self.identity_columns[:i]]
        if problems:
            raise _KeyedErrors(problems)
        return self

    @field_validator("timestamp_formats")
    @classmethod
    def _formats(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one format")
        problems = [((i,), problem) for i, fmt in enumerate(value) if (problem := _format_problem(fmt))]
        if problems:
            raise _KeyedErrors(problems)
        return value


def _json_paths_problems(source: Source) -> list[tuple[tuple[str | int, ...], str]]:
    """Why a JSON-lines source's columns or CSV options cannot be read: positions, empty path segments."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if "csv" in source.model_fields_set:
        problems.append((("csv",), "CSV options do not apply to format ndjson: remove them"))
    for key, column in source.columns.items():
        if isinstance(column, int):
            problems.append((("columns", key), f"{column} is a position, but format is ndjson: map the value's "
                             "dotted path, e.g. properties.price"))
        elif column is not None and "" in column.split("."):
            problems.append((("columns", key), f"{_quote(column)} has an empty segment: a dotted path names one "
                             "key at each level, e.g. context.page.url"))
    return problems


class Paths(_Strict):
    data_dir: Path = Path("data")
    # null: <data_dir>/logs; a relative path is relative to the working directory, as data_dir is
    logs_dir: Path | None = None


class Logs(_Strict):
    # the log files: text lines, or one JSON object per line for log shippers
    format: Literal["text", "json"] = "text"


class TimestampRange(_Strict):
    # events outside [min, max] are quarantined as timestamp_out_of_range; max null: one day after ingestion
    min: datetime = datetime(2000, 1, 1)
    max: datetime | None = None

    @field_validator("min", "max")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # event times are UTC wall-clock times without a zone; a bound written with a zone is made one too
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "TimestampRange":
        if self.max is not None and self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be before max ({self.max})")
        return self


class SilverRules(_Strict):
    # user_id and event_type are always required; session_id may be added (product_id is governed by
    # product_event_types, the amount by amount_required_for)
    required_columns: list[Literal["user_id", "event_type", "session_id"]] = ["user_id", "event_type"]
    product_event_types: list[str] = ["product_view", "add_to_cart", "purchase"]
    # what counts as a purchase (orders, purchasers, revenue)
    purchase_event_types: list[str] = ["purchase"]
    # the types that need an amount (null: purchase_event_types); a source whose Amount is mapped to null is exempt
    amount_required_for: list[str] | None = None
    allow_negative_amount: bool = False
    # event types accepted as mapping targets and funnel steps besides BASE_EVENT_TYPES and the two lists above
    extra_event_types: list[str] = []
    timestamp_range: TimestampRange = TimestampRange()

    @property
    def known_event_types(self) -> list[str]:
        """The canonical event types: BASE_EVENT_TYPES, the product and purchase types and the extra ones."""
        return list(dict.fromkeys(
            BASE_EVENT_TYPES + self.product_event_types + self.purchase_event_types + self.extra_event_types))

    @property
    def amount_required_types(self) -> list[str]:
        """The event types quarantined without an amount: amount_required_for, by default the purchase types."""
        return self.purchase_event_types if self.amount_required_for is None else self.amount_required_for

    @field_validator("required_columns")
    @classmethod
    def _always_required(cls, value: list[str]) -> list[str]:
        missing = [c for c in ("user_id", "event_type") if c not in value]
        if missing:
            raise ValueError(f"must include {missing}: an event needs a user and a type")
        return list(dict.fromkeys(value))


class Gold(_Strict):
    session_timeout_minutes: float = Field(default=30, gt=0, allow_inf_nan=False)
    # canonical event types counted as a product viewed (dim_products.views, dim_sessions.product_views,
    # top_products' viewers) and as one put in the cart (the cart_adds columns, carters, cart abandonment)
    product_view_event_types: list[str] = ["product_view"]
    cart_add_event_types: list[str] = ["add_to_cart"]
    # attributes (sources[].attributes) put on dim_products (the latest non-empty value of each product) and on
    # dim_sessions (the value on the visit's first event)
    product_attributes: list[str] = []
    visit_attributes: list[str] = []


# A duration as config writes it: a whole number and a unit (s, m, h or d), e.g. '30m', '24h', '7d'.
_DURATION = re.compile(r"([0-9]{1,9})([smhd])", re.ASCII)
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The columns of gold's dim_users (sql/gold/dim_users.sql): what a funnel can be broken down by.
DIM_USERS_COLUMNS = ("user_key", "user_id", "first_seen_ts", "last_seen_ts", "total_events", "total_sessions",
                     "total_purchases", "total_spent", "first_purchase_ts", "last_purchase_ts", "is_purchaser")
# The columns of dim_products and dim_sessions before any attribute: names an attribute put there cannot take.
DIM_PRODUCTS_COLUMNS = ("product_key", "product_id", "views", "cart_adds", "purchases", "revenue", "unique_users",
                        "first_seen_ts", "last_seen_ts", "is_not_applicable")
DIM_SESSIONS_COLUMNS = ("session_key", "user_key", "source_session_id", "session_start_ts", "session_end_ts",
                        "duration_seconds", "start_date_key", "total_events", "page_views", "product_views",
                        "cart_adds", "purchases", "revenue", "is_bounce", "has_purchase")


def duration_seconds(value: str) -> int:
    """Seconds in a duration that config accepted ('30m' -> 1800)."""
    match = _DURATION.fullmatch(value)
    if not match:
        raise ValueError(f"{_quote(value)} is not a duration")
    return int(match.group(1)) * _DURATION_SECONDS[match.group(2)]


def _duration(value: Any) -> str:
    """A duration written `30m`, `24h` or `7d`: checked here, so a typo never reaches SQL."""
    if isinstance(value, bool) or not isinstance(value, str) or not _DURATION.fullmatch(value):
        raise ValueError(f"{_quote(value)} is not a duration: a whole number and a unit s, m, h or d, "
                         "e.g. '30m', '24h' or '7d'")
    if duration_seconds(value) == 0:
        raise ValueError(f"{_quote(value)} must be longer than zero")
    return value


class Funnel(_Strict):
    # canonical event types, in order, each once (checked against silver's types by Config)
    steps: list[str] = ["product_view", "add_to_cart", "purchase"]
    # each step after the first must come within this long of the attempt's first step (inclusive)
    window: str = "7d"
    # user: an attempt may span visits; visit: every step in the visit of the first
    scope: Literal["user", "visit"] = "user"
    # a dim_users column or one of gold.visit_attributes (the user's first visit's value): one funnel per value
    breakdown: str | None = None

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one step")
        seen: Counter[str] = Counter()
        problems = []
        for i, step in enumerate(value):
            seen[step] += 1
            if seen[step] == 2:
                problems.append(((i,), f"step {_quote(step)} appears more than once"))
        if problems:
            raise _KeyedErrors(problems)
        return value

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> str:
        return _duration(value)

    @property
    def window_seconds(self) -> int:
        return duration_seconds(self.window)


class Retention(_Strict):
    # cohorts and returns by UTC calendar day, or by week (Monday to Sunday)
    period: Literal["day", "week"] = "week"
    # the event whose first occurrence puts a user in a cohort, and the event that counts as a return; null: any
    start_event: str | None = None
    return_event: str | None = None


class VisitPaths(_Strict):
    # event types kept per visit, after consecutive repeats are collapsed
    steps: int = Field(default=5, ge=1, le=20)


class Cart(_Strict):
    # a cart is converted by a purchase at most this long after its last add_to_cart, else abandoned
    window: str = "24h"

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> str:
        return _duration(value)

    @property
    def window_seconds(self) -> int:
        return duration_seconds(self.window)


class TopProducts(_Strict):
    rank_by: Literal["views", "revenue", "purchases"] = "revenue"


class Segments(_Strict):
    # quantiles: thresholds from the data's events per user (of the users with more than one visit);
    # fixed: the *_min_events thresholds below
    thresholds: Literal["quantiles", "fixed"] = "quantiles"
    high_percent: int = Field(default=10, ge=1, le=100)
    medium_percent: int = Field(default=40, ge=0, le=100)
    high_min_events: int = Field(default=50, ge=2)
    medium_min_events: int = Field(default=10, ge=2)

    @model_validator(mode="after")
    def _ordered(self) -> "Segments":
        if self.medium_min_events > self.high_min_events:
            raise ValueError("medium_min_events must not exceed high_min_events")
        if self.high_percent + self.medium_percent > 100:
            raise ValueError(f"high_percent + medium_percent ({self.high_percent} + {self.medium_percent}) must not "
                             "exceed 100")
        return self


class Rfm(_Strict):
    # an observation window (first to last event) shorter than this is flagged: recency means little on it
    min_days: float = Field(default=28, ge=0, allow_inf_nan=False)


class Churn(_Strict):
    enabled: bool = True
    # a user churned at a cutoff when they have no event in the horizon after it; whole days
    horizon: str = "28d"

    @field_validator("horizon", mode="before")
    @classmethod
    def _horizon(cls, value: Any) -> str:
        value = _duration(value)
        if duration_seconds(value) % 86400:
            raise ValueError(f"{_quote(value)} is not a whole number of days, e.g. '28d'")
        return value

    @property
    def horizon_days(self) -> int:
        return duration_seconds(self.horizon) // 86400


class Clusters(_Strict):
    enabled: bool = True
    # the number of k-means clusters, or auto: the k of 2 to 8 with the best silhouette
    k: Literal["auto"] | int = "auto"

    @field_validator("k", mode="before")
    @classmethod
    def _k(cls, value: Any) -> Any:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 2 <= value <= 12):
            return value
        raise ValueError(f"{_quote(value)} is not a number of clusters: auto, or a whole number from 2 to 12")


class Analytics(_Strict):
    top_n: int = Field(default=20, ge=1)
    funnel: Funnel = Funnel()
    retention: Retention = Retention()
    paths: VisitPaths = VisitPaths()
    cart: Cart = Cart()
    top_products: TopProducts = TopProducts()
    segments: Segments = Segments()
    rfm: Rfm = Rfm()
    churn: Churn = Churn()
    clusters: Clusters = Clusters()
    path_length: int = Field(default=3, ge=2, le=6)
    # the predictive models see the events up to the start of the week (Monday 00:00 UTC) or day of the data's
    # last event, or up to that event: a run whose new events all come later keeps the published models
    models_as_of: Literal["week", "day", "event"] = "week"
    show_rows: int = Field(default=10, ge=0)
    # analytics/report.html after every run that ran analytics; false skips it (and starting its chart renderer)
    html_report: bool = True

    @field_validator("funnel", mode="before")
    @classmethod
    def _funnel_mapping(cls, value: Any) -> Any:
        if isinstance(value, list):
            raise ValueError("must be a mapping: write the steps under 'steps', e.g. {steps: [product_view, "
                             "add_to_cart, purchase], window: 7d}")
        return value


class Threshold(_Strict):
    warn: float = Field(ge=0, le=1, allow_inf_nan=False)
    fail: float = Field(ge=0, le=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> "Threshold":
        if self.warn > self.fail:
            raise ValueError("warn must not exceed fail")
        return self


class Quality(_Strict):
    quarantine_rate: Threshold = Threshold(warn=0.01, fail=0.05)
    # in-batch duplicates: the same event twice among the files of one run
    duplicate_rate: Threshold = Threshold(warn=0.01, fail=0.05)
    # events silver already held, delivered again by another file (overlapping exports)
    redelivered_rate: Threshold = Threshold(warn=0.01, fail=1.0)
    # a rate gate fails only when at least this many rows are judged; below, it warns
    min_rows: int = Field(default=1000, ge=0)
    # raw files refused as unreadable (not text CSV, bad header): warn and go on with the others, or stop
    refused_files: Literal["warn", "fail"] = "warn"
    gold_tests: Literal["warn", "fail"] = "fail"


# An Apprise URL: a scheme, then what the service needs; `${NAME}` is replaced by environment variable NAME when
# a message is sent (never at load, never written anywhere).
_ALERT_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ALERT_KINDS = ("fail", "warn", "anomaly", "recovered")


class Volume(_Strict):
    # rows a run ingests per source, against the median of the last `runs` runs that ingested files of it
    low: float = Field(default=0.2, ge=0, allow_inf_nan=False)
    high: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    runs: int = Field(default=7, ge=1)
    min_runs: int = Field(default=3, ge=1)  # judged only once this many earlier runs ingested the source

    @model_validator(mode="after")
    def _ordered(self) -> "Volume":
        if self.low >= self.high:
            raise ValueError("low must be below high")
        if self.min_runs > self.runs:
            raise ValueError("min_runs must not exceed runs")
        return self


class Rates(_Strict):
    # quarantine and duplicate rates against `factor` times their median over the last `runs` runs that judged rows
    factor: float = Field(default=3.0, gt=1, allow_inf_nan=False)
    runs: int = Field(default=7, ge=1)
    min_runs: int = Field(default=3, ge=1)


class Alerts(_Strict):
    urls: list[str] = Field(default_factory=list)
    on: list[Literal["fail", "warn", "anomaly", "recovered"]] = list(ALERT_KINDS)
    repeat_after: str = "24h"
    timeout_seconds: float = Field(default=10.0, gt=0, le=300, allow_inf_nan=False)
    retries: int = Field(default=2, ge=0, le=5)
    freshness: str | None = None
    silence: str | None = None
    volume: Volume = Volume()
    rates: Rates = Rates()

    @model_validator(mode="before")
    @classmethod
    def _on_key(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `on:` key as the boolean true
        if isinstance(value, dict) and True in value and "on" not in value:
            value = {("on" if key is True else key): item for key, item in value.items()}
        return value

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not _ALERT_URL.fullmatch(url):
                # the URL may hold a secret: only its length is named
                raise ValueError(f"an entry ({len(url)} characters) is not an Apprise URL: a scheme such as "
                                 f"'json://', 'slack://' or 'mailto://' and what follows it, without spaces")
        return value

    @field_validator("repeat_after", "freshness", "silence", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return value if value is None else _duration(value)


class Cost(_Strict):
    # prices to estimate what a run and the data directory's storage cost; null: no estimate
    core_hour: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    gb_month: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class DuckDBSettings(_Strict):
    threads: int | None = Field(default=None, ge=1, le=256)
    memory_limit: str | None = None
    temp_directory: str | None = None

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit(cls, value: str | None) -> str | None:
        if value is not None and (problem := _duckdb_memory_problem(value)):
            raise ValueError(problem)
        return value


class SparkSettings(_Strict):
    master: str = "local[*]"
    app_name: str = "clickstream"
    shuffle_partitions: int = Field(default=4, ge=1)
    driver_memory: str = "2g"
    executor_memory: str | None = None
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("driver_memory", "executor_memory")
    @classmethod
    def _jvm_memory(cls, value: str | None) -> str | None:
        if value is not None and (problem := _jvm_memory_problem(value)):
            raise ValueError(problem)
        return value


class Config(_Strict):
    engine: Literal["duckdb", "spark"] = "duckdb"
    paths: Paths = Paths()
    logs: Logs = Logs()
    sources: list[Source] = Field(default_factory=lambda: [Source()])
    silver: SilverRules = SilverRules()
    gold: Gold = Gold()
    analytics: Analytics = Analytics()
    quality: Quality = Quality()
    alerts: Alerts = Alerts()
    cost: Cost = Cost()
    duckdb: DuckDBSettings = DuckDBSettings()
    spark: SparkSettings = SparkSettings()

    @model_validator(mode="before")
    @classmethod
    def _preset_event_types(cls, data: Any) -> Any:
        # the canonical types a source's preset maps to join silver.extra_event_types (an unknown preset is
        # left for the source to name)
        if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
            return data
        names = [s.get("preset") if isinstance(s, dict) else getattr(s, "preset", None) for s in data["sources"]]
        extra = [t for name in names if isinstance(name, str) and name in PRESETS
                 for t in PRESETS[name].extra_event_types]
        if not extra:
            return data
        silver = data.get("silver", {})
        if isinstance(silver, SilverRules):
            listed = silver.extra_event_types
            silver = silver.model_copy(update={"extra_event_types": list(dict.fromkeys(listed + extra))})
        elif isinstance(silver, dict):
            listed = silver.get("extra_event_types") or []
            if isinstance(listed, list):
                silver = {**silver, "extra_event_types": list(dict.fromkeys([*listed, *extra]))}
        return {**data, "silver": silver}

    @field_validator("sources")
    @classmethod
    def _unique_sources(cls, value: list[Source]) -> list[Source]:
        names = [s.name for s in value]
        if not names:
            raise ValueError("needs at least one source")
        repeated = [name for name, count in Counter(names).items() if count > 1]
        if repeated:
            raise ValueError(f"source names must be unique, {_quote(repeated[0])} is used more than once")
        return value

    @model_validator(mode="after")
    def _canonical_event_types(self) -> "Config":
        known = self.silver.known_event_types
        listed = ", ".join(sorted(known))
        if len(listed) > QUOTE_LIMIT:
            listed = listed[:QUOTE_LIMIT] + "..."

        def unknown(name: str) -> str:
            return (f"{_quote(name)} is not a known event type{_did_you_mean(name, known)} (known: {listed}; "
                    "list other types under silver.extra_event_types)")

        problems = [(("sources", i, "event_types", raw), unknown(target))
                    for i, source in enumerate(self.sources)
                    for raw, target in source.event_types.items() if target not in known]
        problems += [(("analytics", "funnel", "steps", i), unknown(step))
                     for i, step in enumerate(self.analytics.funnel.steps) if step not in known]
        problems += [(("silver", "amount_required_for", i), unknown(name))
                     for i, name in enumerate(self.silver.amount_required_for or []) if name not in known]
        problems += [(("gold", key, i), unknown(name)) for key in ("product_view_event_types", "cart_add_event_types")
                     for i, name in enumerate(getattr(self.gold, key)) if name not in known]
        retention = self.analytics.retention
        problems += [(("analytics", "retention", key), unknown(getattr(retention, key)))
                     for key in ("start_event", "return_event")
                     if getattr(retention, key) is not None and getattr(retention, key) not in known]
        if problems:
            raise _KeyedErrors(problems)
        return self

    @model_validator(mode="after")
    def _attributes_named(self) -> "Config":
        # gold and the funnel name attributes the sources keep; a name on a dimension must not be one of its columns
        named = sorted({name for source in self.sources for name in source.attributes})
        problems = []
        for key, taken, table in (("product_attributes", DIM_PRODUCTS_COLUMNS, "dim_products"),
                                  ("visit_attributes", DIM_SESSIONS_COLUMNS, "dim_sessions")):
            for i, name in enumerate(getattr(self.gold, key)):
                if name not in named:
                    problems.append((("gold", key, i), f"{_quote(name)} is not an attribute of any source"
                                     f"{_did_you_mean(name, named)} (sources[].attributes names: "
                                     f"{', '.join(named) or 'none'})"))
                elif name in taken:
                    problems.append((("gold", key, i), f"{_quote(name)} is already a column of {table}: rename the "
                                     "attribute"))
                elif name in getattr(self.gold, key)[:i]:
                    problems.append((("gold", key, i), f"{_quote(name)} is listed twice"))
        breakdown = self.analytics.funnel.breakdown
        if breakdown is not None and breakdown not in DIM_USERS_COLUMNS + tuple(self.gold.visit_attributes):
            choices = [*DIM_USERS_COLUMNS, *self.gold.visit_attributes]
            problems.append((("analytics", "funnel", "breakdown"), f"{_quote(breakdown)} is neither a column of "
                             f"dim_users nor one of gold.visit_attributes{_did_you_mean(breakdown, choices)} "
                             f"(choices: {', '.join(choices)})"))
        if problems:
            raise _KeyedErrors(problems)
        return self

    @property
    def attribute_names(self) -> list[str]:
        """Every attribute some source keeps, in name order: silver's columns after its own."""
        return sorted({name for source in self.sources for name in source.attributes})

    @property
    def logs_dir(self) -> Path:
        """Where the log files go: `paths.logs_dir`, or `<data_dir>/logs` when it is null."""
        return self.paths.logs_dir if self.paths.logs_dir is not None else self.paths.data_dir / "logs"

    def with_overrides(self, **overrides: Any) -> "Config":
        """A copy with top-level or paths overrides (from the command line), validated again (from the keys the
        config gave, so a default is not taken for a key given: a JSON-lines source's default `csv`)."""
        data = self.model_dump(exclude_unset=True)
        data.setdefault("paths", {})
        for key, value in overrides.items():
            if value is None:
                continue
            if key in ("data_dir", "logs_dir"):
                data["paths"][key] = value
            else:
                data[key] = value
        return Config.model_validate(data)


def _key(loc: tuple[str | int, ...]) -> str:
    """A key path as messages name it (`sources.0.csv.quote`); a part from the file is cut and kept on one line."""
    parts = []
    for part in loc:
        text = str(part)
        text = text if len(text) <= QUOTE_LIMIT else text[:QUOTE_LIMIT] + "..."
        parts.append(text if text.isprintable() else repr(text)[1:-1])
    return ".".join(parts) or "(top level)"


def _keys_beside(loc: tuple[str | int, ...]) -> list[str]:
    """The keys the config allows where `loc` names an unknown one (`sources.0.x` -> the keys of a source)."""
    kind: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):  # an item of a list
            continue
        if not (isinstance(kind, type) and issubclass(kind, BaseModel)) or part not in kind.model_fields:
            return []
        kind = kind.model_fields[part].annotation
        while get_origin(kind) in (list, Union, UnionType):
            kind = next(arg for arg in get_args(kind) if arg is not type(None))
    return list(kind.model_fields) if isinstance(kind, type) and issubclass(kind, BaseModel) else []


def _describe(error: ValidationError, path: Path | None) -> str:
    where = str(path) if path else "built-in defaults"
    lines = []
    for item in error.errors():
        loc = tuple(item["loc"])
        cause = item.get("ctx", {}).get("error")
        if item["type"] == "extra_forbidden":
            close = _did_you_mean(str(loc[-1]), _keys_beside(loc)).removeprefix("; ")
            lines.append(f"unknown key '{_key(loc)}'" + (f" ({close})" if close else ""))
        elif isinstance(cause, _KeyedErrors):
            lines.extend(f"key '{_key(loc + key)}': {message}" for key, message in cause.problems)
        elif isinstance(cause, ValueError):  # our validators' own words, without pydantic's "Value error, "
            lines.append(f"key '{_key(loc)}': {cause}")
        else:
            lines.append(f"key '{_key(loc)}': {item['msg']}")
    return f"invalid config {where}: " + "; ".join(lines)


def _yaml_error(exc: yaml.MarkedYAMLError, path: Path, text: str) -> ConfigError:
    """The parser's complaint on one line naming the file, line and column; that line and a pointer below it."""
    mark = exc.problem_mark or exc.context_mark
    what = ", ".join(part for part in (exc.context, exc.problem) if part) or "cannot be parsed"
    if mark is None:
        return ConfigError(f"invalid YAML in config {path}: {what}")
    lines = text.splitlines()
    shown = lines[mark.line][:QUOTE_LIMIT] if mark.line < len(lines) else ""
    details = (shown, " " * min(mark.column, QUOTE_LIMIT) + "^") if shown.strip() else ()
    return ConfigError(f"invalid YAML in config {path}, line {mark.line + 1}, column {mark.column + 1}: {what}", details)


def load_config(path: Path | None = None) -> Config:
    """Load and validate a YAML config; with no path, `config/config.yaml` if present, else the defaults."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return Config()
        path = DEFAULT_CONFIG_PATH
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.load(text, Loader=_CONFIG_LOADER)
    except DuplicateKeyError as exc:
        raise ConfigError(exc.describe(f"invalid config {path}")) from exc
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, path, text) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML in config {path}: {' '.join(str(exc).split())}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid config {path}: the top level must be a mapping of keys")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc
