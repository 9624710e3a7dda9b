"""The warehouse file: a view per table, usable from any directory; `clickstream sql` over it; the Spark script."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from clickstream.cli import main
from clickstream.generate import generate
from clickstream.warehouse import SPARK_SCRIPT, WAREHOUSE

# a folder name DuckDB and Spark would read as a pattern, and a quote that ends a SQL string
HOSTILE_DIR = "data[1] it's"
TABLES = ["fct_events", "dim_users", "dim_sessions", "dim_products", "dim_event_types", "dim_date", "dim_time",
          "top_products", "conversion_funnel", "funnel_any_order", "daily_activity", "user_segments", "revenue_metrics",
          "user_journey", "purchase_paths", "paths", "day_type_behavior", "rfm_scores", "rfm_segments", "retention",
          "cart_abandonment_daily", "cart_abandonment", "silver", "quarantine", "duplicates"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("warehouse") / HOSTILE_DIR
    generate(root / "raw", rows=2000, seed=3)
    assert main(["run", "--quiet", "--data-dir", str(root)]) == 0
    return root


def parquet(folder: Path) -> str:
    """Every Parquet file under `folder`, named one by one (the folder's name holds glob characters)."""
    files = ", ".join("'" + str(f).replace("'", "''") + "'" for f in sorted(folder.rglob("*.parquet")))
    return f"read_parquet([{files}], hive_partitioning = false)"


def test_every_table_has_a_view_and_nothing_is_left_aside(data):
    with duckdb.connect(str(data / WAREHOUSE), read_only=True) as connection:
        views = {name for (name,) in connection.execute(
            "select view_name from duckdb_views() where not internal").fetchall()}
    assert views == set(TABLES)
    assert sorted(p.name for p in data.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_opened_from_another_directory_a_join_reads_the_parquet_files(data, tmp_path):
    # a fresh process in another working directory, opening the file by a relative path from there
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    relative = os.path.relpath(data / WAREHOUSE, elsewhere)
    code = ("import duckdb, json, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(json.dumps(c.execute('select count(*), count(distinct user_key), sum(total_events) "
            "from fct_events join dim_users using (user_key)').fetchall()[0]))")
    done = subprocess.run([sys.executable, "-c", code, relative], cwd=elsewhere, capture_output=True, text=True,
                          check=True)
    fact = duckdb.sql(f"select * from {parquet(data / 'gold' / 'fct_events')}")
    users = duckdb.sql(f"select * from {parquet(data / 'gold' / 'dim_users')}")
    expected = duckdb.sql("select count(*), count(distinct user_key), sum(total_events) from fact "
                          "join users using (user_key)").fetchall()[0]
    assert tuple(json.loads(done.stdout)) == expected


def test_silver_views_read_the_committed_files_with_their_ingestion_date(data):
    with duckdb.connect(str(data / WAREHOUSE), read_only=True) as connection:
        rows = connection.execute("select 'silver', count(*), min(ingestion_date) from silver union all "
                                  "select 'quarantine', count(*), min(ingestion_date) from quarantine union all "
                                  "select 'duplicates', count(*), min(ingestion_date) from duplicates "
                                  "order by 1").fetchall()
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


@pytest.mark.parametrize("statement", [
    "copy (select 1) to 'x.csv'", "create table t as select 1", "attach 'other.db'", "select 1; select 2"])
def test_sql_runs_one_select_only(data, capsys, statement):
    assert main(["sql", "--data-dir", str(data), statement]) == 1
    assert capsys.readouterr().err == ("clickstream: error: sql: only one SELECT (or EXPLAIN) statement is run: the "
                                       "warehouse is read-only\n")


def test_sql_without_a_warehouse_says_to_run_first(tmp_path, capsys):
    assert main(["sql", "--data-dir", str(tmp_path), "select 1"]) == 1
    assert capsys.readouterr().err == (f"clickstream: error: sql: no warehouse at {tmp_path / WAREHOUSE}: run "
                                       "`clickstream run` first (it is written at the end of a run)\n")


def test_the_spark_script_declares_every_table_over_its_folder(data):
    script = (data / SPARK_SCRIPT).read_text()
    statements = [line for line in script.splitlines() if line.startswith("CREATE ")]
    assert [line.split("`")[1] for line in statements] == TABLES
    escaped = str(data).replace("[", "\\\\[").replace("]", "\\\\]").replace("'", "\\'")
    assert statements[0] == (f"CREATE OR REPLACE TEMPORARY VIEW `fct_events` USING parquet OPTIONS "
                             f"(path 'file://{escaped}/gold/fct_events', recursiveFileLookup 'true');")
    assert statements[-1] == (f"CREATE OR REPLACE TEMPORARY VIEW `duplicates` USING parquet OPTIONS "
                              f"(path 'file://{escaped}/duplicates');")
