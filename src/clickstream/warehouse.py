"""One place to query the results: `<data_dir>/warehouse.duckdb`, a view for every table over its Parquet files.

The file holds views only (no data), with paths relative to the data directory, so a copied or moved data
directory queries its own files: DuckDB resolves a relative path against its working directory, so `clickstream
sql` runs the query from the data directory, and a person opens the file from there (`cd <data_dir> && duckdb
warehouse.duckdb`) or sets `file_search_path` to it. The file is written aside and renamed at the end of every
run, its write-ahead log removed (a stale one would refuse every later open). Gold and analytics tables are read
through a glob of their folder (their folders are swapped whole), the tables stored one folder per week with Hive
partitioning off (the `week=` folders are layout, not a column); silver, quarantine and duplicates through the
files their state commits, with `ingestion_date` from the folder names. This is the one module besides
`engines/` that knows DuckDB: the warehouse is a DuckDB file whatever engine built the tables.

For Spark, `<data_dir>/warehouse_spark.sql` declares the same tables as temporary views, with the same relative
paths (`register_spark(spark, data_dir)` runs it in a session, the paths resolved against `data_dir`).

`query` runs one SELECT sandboxed: read-only, the statement's type checked by DuckDB's own parser (inside an
EXPLAIN too), external access off but for the tables' folders, no extension installed or loaded, and the
configuration locked, so the query reads the warehouse's tables and nothing else, and changes nothing.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clickstream import catalog, storage
from clickstream.context import Layout
from clickstream.schema import Schema

log = logging.getLogger(__name__)

WAREHOUSE = "warehouse.duckdb"
SPARK_SCRIPT = "warehouse_spark.sql"
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
    for table in catalog.gold_tables():
        if storage.parquet_files(table.path(data_dir)):
            found.append(Table(table.name, "gold", table.path(data_dir)))
    declared = [table.name for table in catalog.analytics_tables()]
    analytics = layout.analytics.absolute()
    others = sorted(p.name for p in analytics.iterdir() if p.is_dir()) if analytics.is_dir() else []
    for name in dict.fromkeys([*declared, *others]):  # declared first, then any other table found there
        if name.isidentifier() and not name.startswith("_") and storage.parquet_files(analytics / name):
            found.append(Table(name, "analytics", analytics / name))
    state = storage.read_json(data_dir / catalog.STATE_FOLDER / catalog.SILVER_STATE, {"runs": {}})
    committed = set(state.get("runs", {}))
    for table in catalog.SILVER_TABLES:
        files = storage.batch_files(table.path(data_dir), committed)
        found.append(Table(table.name, "silver", table.path(data_dir), tuple(files), table.schema, hive=True))
    return found


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _relative(path: Path, data_dir: Path) -> str:
    return path.relative_to(data_dir).as_posix()


def _duckdb_source(table: Table, data_dir: Path) -> str:
    if table.files is not None:
        if not table.files:
            columns = ", ".join(f"cast(null as {kind}) as \"{name}\"" for name, kind in table.schema or [])
            return f"select {columns} where false"
        paths = ", ".join(_literal(_relative(f, data_dir)) for f in table.files)
        return f"select * from read_parquet([{paths}], hive_partitioning = true)"
    folder = _relative(table.folder, data_dir)
    if _GLOB_SPECIAL.search(folder):  # a folder name DuckDB would read as a pattern: name each file
        paths = ", ".join(_literal(_relative(f, data_dir)) for f in storage.parquet_files(table.folder))
        return f"select * from read_parquet([{paths}], hive_partitioning = false)"
    return f"select * from read_parquet({_literal(folder + '/**/*.parquet')}, hive_partitioning = false)"


@contextlib.contextmanager
def _working_directory(folder: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _paths_from(connection: object, data_dir: Path) -> Iterator[None]:
    """Relative paths resolve against `data_dir`: through `file_search_path`, which leaves the process alone, or
    (a comma splits that setting's list) by working from `data_dir` meanwhile."""
    if "," not in str(data_dir):
        connection.execute("set file_search_path = $1", [str(data_dir)])  # type: ignore[attr-defined]
        yield
        return
    with _working_directory(data_dir):
        yield


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
    wal = path.with_name(path.name + ".wal")  # a stale log DuckDB would replay into the new file, or refuse
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # removed by storage.recover if left
    try:
        with duckdb.connect(str(tmp)) as connection, _paths_from(connection, data_dir):
            for table in found:  # a view is bound when created: its relative paths must resolve now
                connection.execute(f'create view "{table.name}" as {_duckdb_source(table, data_dir)}')
        wal.unlink(missing_ok=True)
        os.replace(tmp, path)
        wal.unlink(missing_ok=True)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    _write_text(data_dir / SPARK_SCRIPT, spark_script(found, data_dir))
    log.info("warehouse: %d views in %s", len(found), path)
    return path


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _spark_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def spark_script(found: list[Table], data_dir: Path) -> str:
    """The same tables as Spark SQL temporary views over the same folders, one statement a line, each folder's
    path relative to `data_dir` (`register_spark` resolves them).

    Week folders are read with recursiveFileLookup (which turns partition discovery off); silver's tables get
    `ingestion_date` from their folder names, and read every file of their folder: a run that crashed before
    committing leaves files there until the next run removes them.
    """
    lines = ["-- The clickstream tables as Spark temporary views, each path relative to the data directory this file",
             "-- is in: call clickstream.warehouse.register_spark(spark, data_dir), which resolves them against",
             "-- data_dir and runs each statement with spark.sql. Written at the end of every run."]
    for table in found:
        folder = _relative(table.folder, data_dir)
        if table.hive:
            if not table.files:
                columns = ", ".join(f"cast(null as {kind}) as `{name}`" for name, kind in table.schema or [])
                lines.append(f"CREATE OR REPLACE TEMPORARY VIEW `{table.name}` AS SELECT {columns} WHERE false;")
                continue
            options = f"path {_spark_literal(folder)}"
        else:
            options = f"path {_spark_literal(folder)}, recursiveFileLookup 'true'"
        lines.append(f"CREATE OR REPLACE TEMPORARY VIEW `{table.name}` USING parquet OPTIONS ({options});")
    return "\n".join(lines) + "\n"


_SPARK_PATH = re.compile(r"\(path '([^'\\]*)'")


def register_spark(spark: object, data_dir: Path) -> list[str]:
    """Declare every table of `data_dir` as a temporary view of the Spark session `spark`, its path resolved
    against `data_dir` (wherever the directory has been copied or moved); returns their names."""
    data_dir = Path(data_dir).absolute()
    script = (data_dir / SPARK_SCRIPT).read_text(encoding="utf-8")

    def absolute(match: re.Match) -> str:
        uri = "file://" + _SPARK_GLOB_SPECIAL.sub(r"\\\1", str(data_dir / match[1]))
        return f"(path {_spark_literal(uri)}"

    names = []
    for line in script.splitlines():
        if line.startswith("CREATE "):
            spark.sql(_SPARK_PATH.sub(absolute, line).rstrip(";"))  # type: ignore[attr-defined]
            names.append(line.split("`")[1])
    return names


class QueryError(Exception):
    """A query `clickstream sql` refuses or DuckDB cannot run: the message says why."""


_REFUSED = "only one SELECT (or EXPLAIN of one) statement is run: the warehouse is read-only"


def _one_select(connection: object, sql: str) -> object:
    """The one statement of `sql`, if DuckDB's parser calls it a SELECT, or an EXPLAIN of one (looked inside)."""
    import duckdb

    statements = connection.extract_statements(sql)  # type: ignore[attr-defined]
    if len(statements) != 1:
        raise QueryError(_REFUSED)
    (statement,) = statements
    if statement.type == duckdb.StatementType.EXPLAIN:
        tokens = duckdb.tokenize(sql)
        ends = [start for start, _ in tokens[1:]] + [len(sql)]
        words = [(start, sql[start:end].strip().lower()) for (start, kind), end in zip(tokens, ends)
                 if kind != duckdb.token_type.comment]
        skip = 2 if len(words) > 1 and words[1][1] == "analyze" else 1
        if words[0][1] != "explain" or len(words) <= skip:
            raise QueryError(_REFUSED)
        try:
            _one_select(connection, sql[words[skip][0]:])
        except duckdb.ParserException as exc:  # e.g. EXPLAIN (FORMAT json) ...: not looked into, so not run
            raise QueryError(_REFUSED) from exc
    elif statement.type != duckdb.StatementType.SELECT:
        raise QueryError(_REFUSED)
    return statement


def _sandbox(connection: object, readable: list[Path]) -> None:
    """Nothing but `readable` (and the database file) can be opened, no extension installed or loaded, and no
    setting changed again: DuckDB's own switches, beside the statement check (a folder it may read, it could
    also write, by COPY)."""
    for setting, value in (("allowed_directories", [f"{folder}/" for folder in readable]),
                           ("enable_external_access", False), ("autoinstall_known_extensions", False),
                           ("autoload_known_extensions", False), ("allow_community_extensions", False),
                           ("lock_configuration", True)):
        connection.execute(f"set {setting} = $1", [value])  # type: ignore[attr-defined]


def query(data_dir: Path, sql: str) -> tuple[list[str], list[tuple]]:
    """Run one SELECT (or EXPLAIN of one) over the warehouse of `data_dir`, sandboxed (see the module's text), from
    `data_dir` so that the views' relative paths resolve against it."""
    import duckdb

    data_dir = Path(data_dir).absolute()
    path = data_dir / WAREHOUSE
    if not path.is_file():
        raise QueryError(f"no warehouse at {path}: run `clickstream run` first (it is written at the end of a run)")
    found = tables(Layout(data_dir))
    try:
        with _working_directory(data_dir), duckdb.connect(WAREHOUSE, read_only=True) as connection:
            here = Path(os.getcwd())  # as DuckDB sees it: symbolic links resolved
            _sandbox(connection, [here / _relative(t.folder, data_dir) for t in found])
            result = connection.execute(_one_select(connection, sql))
            columns = [d[0] for d in result.description or []]
            return columns, result.fetchall()
    except duckdb.PermissionException as exc:
        raise QueryError(f"the query may read the warehouse's tables only: {str(exc).strip().splitlines()[0]}") \
            from exc
    except duckdb.Error as exc:
        raise QueryError(f"the query failed: {str(exc).strip()}") from exc
