"""The warehouse file: a view per table over paths relative to its data directory; `clickstream sql` over it,
sandboxed; the Spark script."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from clickstream import warehouse
from clickstream.cli import main
from clickstream.generate import generate
from clickstream.warehouse import SPARK_SCRIPT, WAREHOUSE, query

# a folder name DuckDB and Spark would read as a pattern, a quote that ends a SQL string, and a comma that splits
# DuckDB's file_search_path
HOSTILE_DIR = "data[1], it's"
REFUSED = "clickstream: error: sql: only one SELECT (or EXPLAIN of one) statement is run: the warehouse is read-only\n"
TABLES = ["fct_events", "dim_users", "dim_sessions", "dim_products", "dim_event_types", "dim_date", "dim_time",
          "top_products", "funnel_users", "conversion_funnel", "funnel_any_order", "user_days", "daily_activity",
          "user_segments",
          "revenue_metrics", "user_journey", "purchase_events", "purchase_paths", "visit_paths", "paths",
          "day_type_behavior", "rfm_scores", "rfm_segments", "retention_users", "retention", "carts", "cart_abandonment_daily", "cart_abandonment",
          # the predictive results, after the declared queries in name order
          "churn_model", "churn_scores", "cluster_profiles", "user_clusters", "silver", "quarantine", "duplicates"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("warehouse") / HOSTILE_DIR
    generate(root / "raw", rows=2000, seed=3)
    assert main(["run", "--quiet", "--data-dir", str(root)]) == 0
    return root


def parquet(folder: Path, hive: bool = False) -> str:
    """Every Parquet file under `folder`, named one by one (the folder's name holds glob characters)."""
    files = ", ".join("'" + str(f).replace("'", "''") + "'" for f in sorted(folder.rglob("*.parquet")))
    return f"read_parquet([{files}], hive_partitioning = {str(hive).lower()})"


def folder_of(data: Path, table: str) -> Path:
    if table in ("silver", "quarantine", "duplicates"):
        return data / table
    return data / ("gold" if (data / "gold" / table).is_dir() else "analytics") / table


def read_directly(data: Path, table: str) -> tuple[list[str], list[tuple]]:
    """A table read from its Parquet files by absolute paths, outside the warehouse; rows sorted."""
    folder = folder_of(data, table)
    result = duckdb.sql(f"select * from {parquet(folder, hive=folder.parent == data)}")  # silver's: by folder names
    return result.columns, sorted(result.fetchall(), key=repr)


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under `folder`, by its path, with a hash of its bytes: any write changes it."""
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(folder.rglob("*")) if f.is_file()}


def test_every_table_has_a_view_and_nothing_is_left_aside(data):
    with duckdb.connect(str(data / WAREHOUSE), read_only=True) as connection:
        views = {name for (name,) in connection.execute(
            "select view_name from duckdb_views() where not internal").fetchall()}
    assert views == set(TABLES)
    assert sorted(p.name for p in data.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_opened_in_the_data_directory_by_plain_duckdb_a_join_reads_the_parquet_files(data):
    # a fresh process working in the data directory, as `cd <data_dir> && duckdb warehouse.duckdb` does
    code = ("import duckdb, json, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(json.dumps(c.execute('select count(*), count(distinct user_key), sum(total_events) "
            "from fct_events join dim_users using (user_key)').fetchall()[0]))")
    done = subprocess.run([sys.executable, "-c", code, WAREHOUSE], cwd=data, capture_output=True, text=True,
                          check=True)
    fact = duckdb.sql(f"select * from {parquet(data / 'gold' / 'fct_events')}")
    users = duckdb.sql(f"select * from {parquet(data / 'gold' / 'dim_users')}")
    expected = duckdb.sql("select count(*), count(distinct user_key), sum(total_events) from fact "
                          "join users using (user_key)").fetchall()[0]
    assert tuple(json.loads(done.stdout)) == expected


def test_silver_views_read_the_committed_files_with_their_ingestion_date(data):
    rows = query(data, "select 'silver', count(*), min(ingestion_date) from silver union all "
                       "select 'quarantine', count(*), min(ingestion_date) from quarantine union all "
                       "select 'duplicates', count(*), min(ingestion_date) from duplicates order by 1")[1]
    state = json.loads((data / "_state" / "silver_state.json").read_text())
    (run,) = state["runs"].values()
    day = rows[0][2]
    assert rows == [("duplicates", run["totals"]["duplicate_rows"], day),
                    ("quarantine", run["totals"]["quarantine_rows"], day),
                    ("silver", run["totals"]["silver_rows"], day)]


@pytest.mark.parametrize("fmt, expected", [
    ("table", "segment      users\n-----------  -----\n"),
    ("csv", "segment,users\n"),
])
def test_sql_prints_a_result_in_the_format_asked(data, capsys, fmt, expected):
    assert main(["sql", "--data-dir", str(data), "--format", fmt,
                 "select 'a\x1b[2J\nb' as segment, 1 as users union all select 'c', 2 order by users"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(expected)
    assert "a\\x1b[2J\\nb" in out and "\x1b" not in out  # the value escaped for the terminal


def test_sql_as_json_lines_keeps_values_exact_and_ascii(data, capsys):
    assert main(["sql", "--data-dir", str(data), "--format", "json",
                 "select 'é\u202e' as t, 1.50::decimal(18,2) as amount, date '2024-01-02' as d"]) == 0
    out = capsys.readouterr().out
    assert out == '{"t": "\\u00e9\\u202e", "amount": "1.50", "d": "2024-01-02"}\n'
    assert json.loads(out) == {"t": "é\u202e", "amount": "1.50", "d": "2024-01-02"}


def test_sql_reads_every_view_whole(data):
    for table in TABLES:
        columns, rows = query(data, f'select * from "{table}"')
        assert (columns, sorted(rows, key=repr)) == read_directly(data, table), table


def test_sql_and_explain_of_a_select_run(data, capsys):
    assert main(["sql", "--data-dir", str(data), "--format", "csv",
                 "/* why */ explain -- the plan\n analyze select count(*) from silver"]) == 0
    assert capsys.readouterr().out.startswith("explain_key,explain_value\nanalyzed_plan,")


# Each writes, installs, attaches or changes a setting; {outside} is a file outside the data directory,
# {silver_file} a committed silver file (a COPY over it once emptied the table).
WRITES = [
    "copy (select 'echo owned' as x) to '{outside}' (format csv, header false, quote '')",
    "copy (select * from silver limit 0) to '{silver_file}'",
    "copy (select * from silver limit 0) to 'silver/extra.parquet'",
    "explain analyze copy (select 'echo owned' as x) to '{outside}' (format csv, header false, quote '')",
    "EXPLAIN /* a comment */ ANALYZE COPY (select 1) TO '{outside}'",
    "explain copy (select 1) to '{outside}'",
    "explain (format json) copy (select 1) to '{outside}'",
    "export database '{outside}'",
    "attach '{outside}' as other",
    "attach ':memory:' as other",
    "install httpfs",
    "explain analyze install httpfs",
    "load httpfs",
    "set enable_external_access = true",
    "set lock_configuration = false",
    "reset allowed_directories",
    "pragma enable_profiling",
    "call pragma_version()",
    "checkpoint",
    "create table t as select 1",
    "create view v as select 1",
    "create macro m() as 1",
    "insert into silver select * from silver",
    "update silver set event_id = 'x'",
    "delete from silver",
    "drop view silver",
    "select 1; copy (select 1) to '{outside}'",
    "select 1; select 2",
    "begin transaction",
    "use memory",
]


@pytest.mark.parametrize("statement", WRITES)
def test_sql_runs_one_select_and_writes_nothing(data, tmp_path, capsys, statement):
    outside = tmp_path / "evil.sh"
    silver_file = next((data / "silver").rglob("*.parquet"))
    before = fingerprint(data)
    sql = statement.format(outside=outside, silver_file=str(silver_file).replace("'", "''"))
    assert main(["sql", "--data-dir", str(data), sql]) == 1
    assert capsys.readouterr().err == REFUSED
    assert fingerprint(data) == before
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("read", [
    "read_csv('/etc/passwd')",
    "read_text('/etc/hostname')",
    "sniff_csv('/etc/passwd')",
    "glob('/etc/*')",
    "read_text('_state/silver_state.json')",  # in the data directory, but no table
    "read_csv('raw/*.csv')",
    "read_text('silver/../_state/silver_state.json')",
    "read_text('{data}/reports/quality_report.json')",
    "read_parquet('https://example.com/x.parquet')",
])
def test_sql_reads_the_warehouse_tables_and_nothing_else(data, capsys, read):
    source = read.format(data=str(data).replace("'", "''"))
    assert main(["sql", "--data-dir", str(data), f"select * from {source}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("clickstream: error: sql: the query may read the warehouse's tables only: Permission "
                          "Error: Cannot access ")
    assert err.endswith(" - file system operations are disabled by configuration\n")


def test_the_sandbox_alone_refuses_writes_installs_and_settings(data, tmp_path):
    # DuckDB's own switches, without the statement check in front of them
    outside = tmp_path / "x.csv"
    with duckdb.connect(str(data / WAREHOUSE), read_only=True) as connection:
        warehouse._sandbox(connection, [])
        for statement, error in [(f"copy (select 1) to '{outside}'", duckdb.PermissionException),
                                 (f"attach '{tmp_path / 'other.db'}'", duckdb.PermissionException),
                                 ("install httpfs", duckdb.PermissionException),
                                 ("load httpfs", duckdb.PermissionException),
                                 ("set enable_external_access = true", duckdb.InvalidInputException),
                                 ("set allowed_directories = ['/']", duckdb.InvalidInputException),
                                 ("set autoinstall_known_extensions = true", duckdb.InvalidInputException)]:
            with pytest.raises(error):
                connection.execute(statement)
    assert list(tmp_path.iterdir()) == []


def test_a_copied_data_directory_queries_its_own_files_even_once_the_original_is_gone(data, tmp_path):
    original = tmp_path / "original"
    shutil.copytree(data, original, symlinks=True)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy, symlinks=True)
    # the copy's daily_activity changed: one row of the original's, in one file
    first = query(original, "select * from daily_activity order by activity_date limit 1")[1]
    shutil.rmtree(copy / "analytics" / "daily_activity")
    (copy / "analytics" / "daily_activity").mkdir()
    duckdb.sql(f"copy (select * from {parquet(original / 'analytics' / 'daily_activity')} order by activity_date "
               f"limit 1) to '{copy / 'analytics' / 'daily_activity' / 'data_0.parquet'}'")
    assert query(copy, "select * from daily_activity")[1] == first
    assert len(query(original, "select * from daily_activity")[1]) > 1
    shutil.rmtree(original)
    for table in TABLES:
        columns, rows = query(copy, f'select * from "{table}"')
        assert (columns, sorted(rows, key=repr)) == read_directly(copy, table), table
    # plain duckdb from another directory, told where the data directory is
    code = ("import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "c.execute('set file_search_path = $1', [sys.argv[2]]); "
            "print(c.execute('select count(*) from daily_activity').fetchall()[0][0])")
    done = subprocess.run([sys.executable, "-c", code, str(copy / WAREHOUSE), str(copy)], cwd=tmp_path,
                          capture_output=True, text=True, check=True)
    assert done.stdout == "1\n"


def test_a_stale_write_ahead_log_beside_the_warehouse_is_removed_by_the_next_run(tmp_path):
    data = tmp_path / "data"
    generate(data / "raw", rows=300, seed=5)
    assert main(["run", "--quiet", "--data-dir", str(data)]) == 0
    # another database's log, left by a process that never checkpointed
    with duckdb.connect(str(tmp_path / "other.duckdb")) as other:
        other.execute("pragma disable_checkpoint_on_shutdown")
        other.execute("set wal_autocheckpoint = '1TB'")
        other.execute("create table t as select 1 as x")
    shutil.copy(tmp_path / "other.duckdb.wal", data / f"{WAREHOUSE}.wal")
    with pytest.raises(duckdb.IOException, match="WAL does not match database file"):
        duckdb.connect(str(data / WAREHOUSE), read_only=True)
    assert main(["run", "--quiet", "--data-dir", str(data)]) == 0
    assert not (data / f"{WAREHOUSE}.wal").exists()
    columns, rows = query(data, "select * from silver")
    assert (columns, sorted(rows, key=repr)) == read_directly(data, "silver")


def test_sql_without_a_warehouse_says_to_run_first(tmp_path, capsys):
    assert main(["sql", "--data-dir", str(tmp_path), "select 1"]) == 1
    assert capsys.readouterr().err == (f"clickstream: error: sql: no warehouse at {tmp_path / WAREHOUSE}: run "
                                       "`clickstream run` first (it is written at the end of a run)\n")


def test_the_spark_script_declares_every_table_over_its_folder(data):
    script = (data / SPARK_SCRIPT).read_text()
    statements = [line for line in script.splitlines() if line.startswith("CREATE ")]
    assert [line.split("`")[1] for line in statements] == TABLES
    assert statements[0] == ("CREATE OR REPLACE TEMPORARY VIEW `fct_events` USING parquet OPTIONS "
                             "(path 'gold/fct_events', recursiveFileLookup 'true');")
    assert statements[-1] == "CREATE OR REPLACE TEMPORARY VIEW `duplicates` USING parquet OPTIONS (path 'duplicates');"
    assert str(data) not in script  # every path relative to the data directory
