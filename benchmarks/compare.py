"""Comparing two data directories table by table: row counts of every table, and whole content where asked.

Used to check that the hand-written baselines do the same work as the project, so that timing them is an
honest comparison. Tables are read with DuckDB from whatever Parquet files a directory holds (DuckDB's or
Spark's layout). Rows are compared as multisets (sorted on every column); doubles with a relative
tolerance of 1e-9, since summation order may differ between engines; types are normalised (timestamps
with or without zone in UTC, integer widths, decimal scales) because a baseline is judged on its values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from clickstream.incremental import PERIOD

# Columns that depend on when and as which batch a run happened, never on the data.
RUN_COLUMNS = ("batch_id", "ingestion_timestamp", "ingestion_date")

LAYER_TABLES = ["bronze", "silver", "quarantine"]
GOLD_TABLES = ["fct_events", "dim_users", "dim_sessions", "dim_products", "dim_event_types", "dim_date", "dim_time"]
ANALYTICS_TABLES = ["top_products", "conversion_funnel", "funnel_any_order", "daily_activity", "user_segments",
                    "revenue_metrics", "user_journey", "purchase_paths", "paths", "day_type_behavior", "rfm_scores",
                    "rfm_segments", "retention", "cart_abandonment_daily", "cart_abandonment"]
# The analytics answers with a handful of rows: always compared in full, whatever the data size.
SMALL_ANALYTICS = [t for t in ANALYTICS_TABLES if t not in ("user_journey", "rfm_scores")]


def table_paths() -> dict[str, str]:
    """Table name -> directory relative to the data directory."""
    paths = {t: t for t in LAYER_TABLES}
    paths.update({t: f"gold/{t}" for t in GOLD_TABLES})
    paths.update({t: f"analytics/{t}" for t in ANALYTICS_TABLES})
    return paths


@dataclass
class TableResult:
    table: str
    expected_rows: int | None
    actual_rows: int | None
    content_compared: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Comparison:
    expected_dir: str
    actual_dir: str
    tables: list[TableResult]

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    def problems(self) -> list[str]:
        return [f"{t.table}: {p}" for t in self.tables for p in t.problems]

    def as_dict(self) -> dict[str, Any]:
        return {
            "expected_dir": self.expected_dir, "actual_dir": self.actual_dir, "ok": self.ok,
            "tables": [{"table": t.table, "expected_rows": t.expected_rows, "actual_rows": t.actual_rows,
                        "content_compared": t.content_compared, "ok": t.ok, "problems": t.problems,
                        "notes": t.notes} for t in self.tables],
        }

    def render(self) -> str:
        lines = [f"{'table':<20} {'expected rows':>14} {'actual rows':>14}  content   result"]
        for t in self.tables:
            exp = "-" if t.expected_rows is None else f"{t.expected_rows:,}"
            act = "-" if t.actual_rows is None else f"{t.actual_rows:,}"
            content = "compared" if t.content_compared else "count"
            lines.append(f"{t.table:<20} {exp:>14} {act:>14}  {content:<9} {'ok' if t.ok else 'DIFFERENT'}")
            lines.extend(f"    ! {p}" for p in t.problems)
            lines.extend(f"    note: {n}" for n in t.notes)
        return "\n".join(lines)


def _files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.parquet")) if root.is_dir() else []


def _register(con: duckdb.DuckDBPyConnection, name: str, files: list[str]) -> list[tuple[str, str]]:
    listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    # The project stores some tables one folder per week (`week=...`): layout, not a column.
    layout_only = f"{PERIOD}="
    hive = "true" if any("=" in part and not part.startswith(layout_only) for f in files for part in Path(f).parts) \
        else "false"
    con.execute(f"create or replace temp view {name}_raw as "
                f"select * from read_parquet({listed}, hive_partitioning = {hive}, union_by_name = true)")
    return [(row[0], row[1]) for row in con.execute(f"describe {name}_raw").fetchall()]


def _normalised_select(name: str, schema: list[tuple[str, str]], drop: set[str]) -> str:
    columns = []
    for column, sql_type in schema:
        if column in drop:
            continue
        quoted = '"' + column.replace('"', '""') + '"'
        if sql_type.startswith("TIMESTAMP"):  # Spark writes zoned (or INT96) timestamps; compare as UTC wall time
            columns.append(f"cast({quoted} as timestamp) as {quoted}")
        elif sql_type in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                          "UINTEGER", "UBIGINT"):
            columns.append(f"cast({quoted} as bigint) as {quoted}")
        else:
            columns.append(quoted)
    return f"select {', '.join(columns) or '1 as no_columns'} from {name}_raw"


def _same_value(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float, Decimal)) and isinstance(b, (int, float, Decimal)):
            fa, fb = float(a), float(b)
            if math.isnan(fa) or math.isnan(fb):
                return math.isnan(fa) and math.isnan(fb)
            return math.isclose(fa, fb, rel_tol=1e-9, abs_tol=1e-9)
        return False
    return a == b


def compare_table(con: duckdb.DuckDBPyConnection, table: str, expected: Path, actual: Path,
                  content: bool, max_problems: int = 5, excepted: tuple[str, ...] = ()) -> TableResult:
    exp_files, act_files = _files(expected), _files(actual)
    result = TableResult(table, None, None)
    if not exp_files:
        result.problems.append(f"no Parquet files under {expected}")
    if not act_files:
        result.problems.append(f"no Parquet files under {actual}")
    if result.problems:
        return result
    exp_schema = _register(con, "expected", exp_files)
    act_schema = _register(con, "actual", act_files)
    result.expected_rows = con.execute("select count(*) from expected_raw").fetchone()[0]
    result.actual_rows = con.execute("select count(*) from actual_raw").fetchone()[0]
    if result.expected_rows != result.actual_rows:
        result.problems.append(f"row count {result.actual_rows:,} != expected {result.expected_rows:,}")

    drop = set(RUN_COLUMNS) | set(excepted)
    exp_types = {c: t for c, t in exp_schema if c not in drop}
    act_types = {c: t for c, t in act_schema if c not in drop}
    if table == "quarantine" and exp_types.get("amount", "").startswith("DECIMAL") and "Amount" not in exp_types:
        # Known project bug: the expected side's raw Amount/Outcome were replaced by the parsed values.
        drop |= {"amount", "outcome", "Amount", "Outcome"}
        result.notes.append("raw Amount/Outcome not compared: the expected quarantine holds parsed `amount`/`outcome` "
                            "instead of the raw text (project bug, src/clickstream/sql/silver/silver_classified.sql "
                            "lines 22-24: `amount`/`outcome` shadow `Amount`/`Outcome`, names being case-insensitive)")
        exp_types = {c: t for c, t in exp_types.items() if c not in drop}
        act_types = {c: t for c, t in act_types.items() if c not in drop}
    if list(exp_types) != list(act_types):
        result.problems.append(f"columns {list(act_types)} != expected {list(exp_types)}")
        return result
    for column in exp_types:
        if exp_types[column] != act_types[column]:
            result.notes.append(f"{column}: type {act_types[column]} vs expected {exp_types[column]}")
    if not content or result.problems:
        return result

    result.content_compared = True
    exp_rows = con.execute(_normalised_select("expected", exp_schema, drop) + " order by all").fetchall()
    act_rows = con.execute(_normalised_select("actual", act_schema, drop) + " order by all").fetchall()
    columns = list(exp_types)
    mismatched = 0
    for index, (exp_row, act_row) in enumerate(zip(exp_rows, act_rows)):
        bad = [c for c, a, b in zip(columns, exp_row, act_row) if not _same_value(a, b)]
        if bad:
            mismatched += 1
            if mismatched <= max_problems:
                shown = {c: (exp_row[columns.index(c)], act_row[columns.index(c)]) for c in bad[:4]}
                result.problems.append(f"sorted row {index}: (expected, actual) {shown}")
    if mismatched > max_problems:
        result.problems.append(f"... {mismatched - max_problems} more differing rows")
    return result


def compare_dirs(expected: Path, actual: Path, *, full_content_max_rows: int = 1_000_000,
                 tables: list[str] | None = None, excepted: tuple[str, ...] = ()) -> Comparison:
    """Row counts of every table; whole content of the small analytics tables, and of every table of at most
    `full_content_max_rows` rows (run-specific batch columns excepted, and the columns named in `excepted`)."""
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    results = []
    for table, relative in table_paths().items():
        if tables is not None and table not in tables:
            continue
        exp_count = _count(con, expected / relative)
        content = table in SMALL_ANALYTICS or (exp_count is not None and exp_count <= full_content_max_rows)
        results.append(compare_table(con, table, expected / relative, actual / relative, content,
                                     excepted=excepted))
    con.close()
    return Comparison(str(expected), str(actual), results)


def _count(con: duckdb.DuckDBPyConnection, root: Path) -> int | None:
    files = _files(root)
    if not files:
        return None
    listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    return con.execute(f"select count(*) from read_parquet({listed})").fetchone()[0]
