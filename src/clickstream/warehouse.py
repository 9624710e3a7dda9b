"""One place to query the results: `<data_dir>/warehouse.duckdb`, a view for every table over its Parquet files.

The file holds views only (no data), with absolute paths, so it opens from any working directory; it is written
aside and renamed at the end of every run. Gold and analytics tables are read through a glob of their folder
(their folders are swapped whole), the tables stored one folder per week with Hive partitioning off (the
`week=` folders are layout, not a column); silver, quarantine and duplicates through the files their state
commits, with `ingestion_date` from the folder names. This is the one module besides `engines/` that knows
DuckDB: the warehouse is a DuckDB file whatever engine built the tables.

For Spark, `<data_dir>/warehouse_spark.sql` declares the same tables as temporary views
(`register_spark(spark, data_dir)` runs it in a session).
"""
from __future__ import annotations

import logging
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from clickstream import declarations, storage
from clickstream.context import Layout
from clickstream.schema import DUPLICATES, QUARANTINE, SILVER, Schema

log = logging.getLogger(__name__)

WAREHOUSE = "warehouse.duckdb"
SPARK_SCRIPT = "warehouse_spark.sql"
_SILVER_STATE = ("_state", "silver_state.json")
_SILVER_TABLES: dict[str, tuple[str, Schema]] = {"silver": ("silver", SILVER), "quarantine": ("quarantine", QUARANTINE),
                                                 "duplicates": ("duplicates", DUPLICATES)}
_GLOB_SPECIAL = re.compile(r"[*?\[\]{}]")
_SPARK_GLOB_SPECIAL = re.compile(r"([\\*?\[\]{}])")


@dataclass(frozen=True)
class Table:
    """A table of the data directory: its name, layer, folder, and (for silver's tables) the committed files."""

    name: str
    layer: str
    folder: Path
    files: tuple[Path, ...] | None = None  # None: every Parquet file under the folder
    schema: Schema | None = None  # the declared schema, for an empty table
    hive: bool = False  # partitioned by ingestion_date


def tables(layout: Layout) -> list[Table]:
    """Every table the data directory holds now: gold, analytics, silver, quarantine and duplicates."""
    data_dir = layout.data_dir.absolute()
    found: list[Table] = []
    for model in declarations.gold_models():
        if model["publish"] and storage.parquet_files(data_dir / "gold" / model["name"]):
            found.append(Table(model["name"], "gold", data_dir / "gold" / model["name"]))
    declared = [q["name"] for q in declarations.analytics_queries()]
    analytics = data_dir / "analytics"
    others = sorted(p.name for p in analytics.iterdir() if p.is_dir()) if analytics.is_dir() else []
    for name in dict.fromkeys([*declared, *others]):  # declared first, then any other table found there
        if name.isidentifier() and not name.startswith("_") and storage.parquet_files(analytics / name):
            found.append(Table(name, "analytics", analytics / name))
    state = storage.read_json(data_dir.joinpath(*_SILVER_STATE), {"runs": {}})
    committed = set(state.get("runs", {}))
    for name, (folder, schema) in _SILVER_TABLES.items():
        files = storage.batch_files(data_dir / folder, committed)
        found.append(Table(name, "silver", data_dir / folder, tuple(files), schema, hive=True))
    return found


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _duckdb_source(table: Table) -> str:
    if table.files is not None:
        if not table.files:
            columns = ", ".join(f"cast(null as {kind}) as \"{name}\"" for name, kind in table.schema or [])
            return f"select {columns} where false"
        paths = ", ".join(_literal(str(f)) for f in table.files)
        return f"select * from read_parquet([{paths}], hive_partitioning = true)"
    if _GLOB_SPECIAL.search(str(table.folder)):  # a folder name DuckDB would read as a pattern: name each file
        paths = ", ".join(_literal(str(f)) for f in storage.parquet_files(table.folder))
        return f"select * from read_parquet([{paths}], hive_partitioning = false)"
    return f"select * from read_parquet({_literal(str(table.folder / '**' / '*.parquet'))}, hive_partitioning = false)"


def rebuild(layout: Layout) -> Path | None:
    """Write `warehouse.duckdb` and `warehouse_spark.sql` anew for the tables the data directory holds now.

    Written aside and renamed over the old ones, so a reader opens the old or the new file, never a half
    written one. Returns the warehouse's path, or None when there is nothing to query yet.
    """
    import duckdb

    data_dir = layout.data_dir.absolute()
    found = tables(layout)
    if not any(t.layer != "silver" or t.files for t in found):
        return None
    path = data_dir / WAREHOUSE
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # removed by storage.recover if left
    try:
        with duckdb.connect(str(tmp)) as connection:
            for table in found:
                connection.execute(f'create view "{table.name}" as {_duckdb_source(table)}')
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    _write_text(data_dir / SPARK_SCRIPT, spark_script(found))
    log.info("warehouse: %d views in %s", len(found), path)
    return path


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _spark_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def spark_script(found: list[Table]) -> str:
    """The same tables as Spark SQL temporary views over the same folders, one statement a line.

    Week folders are read with recursiveFileLookup (which turns partition discovery off); silver's tables get
    `ingestion_date` from their folder names, and read every file of their folder: a run that crashed before
    committing leaves files there until the next run removes them.
    """
    lines = ["-- The clickstream tables as Spark temporary views: run each statement with spark.sql, or call",
             "-- clickstream.warehouse.register_spark(spark, data_dir). Written at the end of every run."]
    for table in found:
        uri = "file://" + _SPARK_GLOB_SPECIAL.sub(r"\\\1", str(table.folder))
        if table.hive:
            if not table.files:
                columns = ", ".join(f"cast(null as {kind}) as `{name}`" for name, kind in table.schema or [])
                lines.append(f"CREATE OR REPLACE TEMPORARY VIEW `{table.name}` AS SELECT {columns} WHERE false;")
                continue
            options = f"path {_spark_literal(uri)}"
        else:
            options = f"path {_spark_literal(uri)}, recursiveFileLookup 'true'"
        lines.append(f"CREATE OR REPLACE TEMPORARY VIEW `{table.name}` USING parquet OPTIONS ({options});")
    return "\n".join(lines) + "\n"


def register_spark(spark: object, data_dir: Path) -> list[str]:
    """Declare every table of `data_dir` as a temporary view of the Spark session `spark`; returns their names."""
    script = (Path(data_dir).absolute() / SPARK_SCRIPT).read_text(encoding="utf-8")
    names = []
    for line in script.splitlines():
        if line.startswith("CREATE "):
            spark.sql(line.rstrip(";"))  # type: ignore[attr-defined]
            names.append(line.split("`")[1])
    return names


class QueryError(Exception):
    """A query `clickstream sql` refuses or DuckDB cannot run: the message says why."""


def query(data_dir: Path, sql: str) -> tuple[list[str], list[tuple]]:
    """Run one SELECT (or EXPLAIN) over the warehouse of `data_dir`, on a read-only connection."""
    import duckdb

    path = Path(data_dir).absolute() / WAREHOUSE
    if not path.is_file():
        raise QueryError(f"no warehouse at {path}: run `clickstream run` first (it is written at the end of a run)")
    with duckdb.connect(str(path), read_only=True) as connection:
        try:
            statements = connection.extract_statements(sql)
            if len(statements) != 1 or statements[0].type not in (duckdb.StatementType.SELECT,
                                                                   duckdb.StatementType.EXPLAIN):
                raise QueryError("only one SELECT (or EXPLAIN) statement is run: the warehouse is read-only")
            result = connection.execute(sql)
            columns = [d[0] for d in result.description or []]
            return columns, result.fetchall()
        except duckdb.Error as exc:
            raise QueryError(f"the query failed: {str(exc).strip()}") from exc
