"""On Spark, the warehouse's tables through the generated script: the same names, columns and rows as DuckDB's,
wherever the data directory has moved."""
from __future__ import annotations

import duckdb
import pytest

from clickstream.cli import main
from clickstream.generate import generate
from clickstream.warehouse import WAREHOUSE, query, register_spark

pytestmark = pytest.mark.spark

QUERIES = [
    "select count(*), count(distinct user_key), sum(total_events) from fct_events join dim_users using (user_key)",
    "select cast(ingestion_date as string), count(*) from silver group by ingestion_date",
    "select count(*) from quarantine",
    "select segment, customers from rfm_segments order by segment",
]


def test_register_spark_gives_the_tables_the_duckdb_warehouse_has(spark_session_owner, tmp_path):
    built = tmp_path / "built"
    generate(built / "raw", rows=1000, seed=9)
    assert main(["run", "--quiet", "--data-dir", str(built)]) == 0
    data = built.rename(tmp_path / "data[x]")  # moved, to a folder name Spark would read as a pattern
    spark = spark_session_owner.spark
    names = register_spark(spark, data)
    with duckdb.connect(str(data / WAREHOUSE), read_only=True) as connection:
        views = [name for (name,) in connection.execute(
            "select view_name from duckdb_views() where not internal order by view_name").fetchall()]
    expected = [sorted(tuple(row) for row in query(data, q)[1]) for q in QUERIES]
    fact_columns = [row[0] for row in query(data, "describe fct_events")[1]]
    try:
        assert sorted(names) == views
        assert [sorted(tuple(row) for row in spark.sql(q).collect()) for q in QUERIES] == expected
        assert spark.table("fct_events").columns == fact_columns  # no `week` column from the folders
    finally:
        for name in names:
            spark.catalog.dropTempView(name)
