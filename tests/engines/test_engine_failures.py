"""The engines' own I/O and memory failures, on a real full or read-only disk: one line naming the path."""
from __future__ import annotations

import re

import pytest
from mounts import make_read_only, tmpfs

from clickstream.config import DuckDBSettings
from clickstream.context import ResourceError
from clickstream.engines.duckdb_engine import DuckDBEngine

# More than a 256k tmpfs holds, as Parquet or CSV (random text hardly compresses).
BIG = "select id, md5(cast(id as string)) as digest from range(200000) as r(id)"


def test_duckdb_disk_full_writing_parquet_names_the_file(duckdb_engine, tmp_path):
    duckdb_engine.materialize("big", BIG)
    with tmpfs(tmp_path / "full") as disk:
        target = disk / "big"
        with pytest.raises(ResourceError) as failure:
            duckdb_engine.write_parquet("big", target)
    assert str(failure.value) == (f"no space left on device writing {target}/part-00000.parquet: free space or point "
                                  f"paths.data_dir (or duckdb.temp_directory) elsewhere")


def test_duckdb_read_only_disk_writing_csv_names_the_file(duckdb_engine, tmp_path):
    duckdb_engine.materialize("small", "select 1 as id")
    with tmpfs(tmp_path / "ro") as disk:
        make_read_only(disk)
        with pytest.raises(ResourceError) as failure:
            duckdb_engine.write_csv("small", disk / "small.csv")
    assert str(failure.value) == (f"read-only file system: cannot write {disk}/small.csv: point paths.data_dir (or "
                                  f"paths.logs_dir) at a writable directory")


def test_duckdb_out_of_memory_says_what_to_change():
    engine = DuckDBEngine(DuckDBSettings(threads=1, memory_limit="20MB"))
    try:
        with pytest.raises(ResourceError, match=r"^out of memory: failed to allocate data of size [^\n]+ used\): raise "
                                                r"duckdb\.memory_limit or lower duckdb\.threads, and keep "
                                                r"duckdb\.temp_directory on a disk with room to spill$"):
            engine.fetch("select list(md5(cast(i as varchar))) from range(3000000) as r(i)")
    finally:
        engine.close()


@pytest.mark.spark
def test_spark_disk_full_names_the_table_being_written(spark, tmp_path):
    spark.create_view("big", BIG)
    with tmpfs(tmp_path / "full") as disk:
        with pytest.raises(ResourceError) as failure:
            spark.write_parquet("big", disk / "big")
    assert str(failure.value) == (f"no space left on device writing {disk}/big: free space or point paths.data_dir "
                                  f"(or spark.local.dir in spark.conf) elsewhere")


@pytest.mark.spark
def test_spark_read_only_disk_names_the_table_being_written(spark, tmp_path):
    spark.create_view("small", "select 1 as id")
    with tmpfs(tmp_path / "ro") as disk:
        make_read_only(disk)
        with pytest.raises(ResourceError, match=rf"^read-only file system: cannot write {re.escape(str(disk))}/small: "
                                                r"point paths\.data_dir \(or paths\.logs_dir\) at a writable directory$"):
            spark.write_parquet("small", disk / "small")
