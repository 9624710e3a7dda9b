"""The engines' own I/O and memory failures, on a real full or read-only disk: one line naming the path."""
from __future__ import annotations

import re
import threading

import duckdb
import pytest
from mounts import make_read_only, tmpfs

from clickstream.config import DuckDBSettings
from clickstream.context import ResourceError
from clickstream.engines.base import QueryInterrupted
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
    engine = DuckDBEngine(DuckDBSettings(threads=1, memory_limit="64MB"))  # the least the config accepts
    try:
        with pytest.raises(ResourceError, match=r"^out of memory: failed to allocate data of size [^\n]+ used\): raise "
                                                r"duckdb\.memory_limit \(now '64MB'; try '128MB'\) or lower "
                                                r"duckdb\.threads, and keep duckdb\.temp_directory on a disk with room "
                                                r"to spill$"):
            engine.fetch("select list(md5(cast(i as varchar))) from range(6000000) as r(i)")
    finally:
        engine.close()


def test_duckdb_out_of_memory_reading_rows_from_python_says_what_to_change():
    # below what the config accepts, so the engine's own translation is what is checked: every statement has it
    engine = DuckDBEngine(DuckDBSettings.model_construct(threads=1, memory_limit="1KB", temp_directory=None))
    try:
        with pytest.raises(ResourceError, match=r"^out of memory: .*: raise duckdb\.memory_limit \(now '1KB'; try "
                                                r"'1MB'\) or lower duckdb\.threads"):
            engine.register_rows("inputs", [("path", "string")], [("a.csv",), ("b.csv",)])
    finally:
        engine.close()


def test_duckdb_query_interrupted_is_a_keyboard_interrupt():
    engine = DuckDBEngine(DuckDBSettings(threads=1))
    interrupter = threading.Timer(0.3, engine.con.interrupt)  # what Ctrl-C does to a running query
    interrupter.start()
    try:
        with pytest.raises(QueryInterrupted) as stopped:
            engine.fetch("select count(*) from range(100000000000) as a(i)")
        assert isinstance(stopped.value, KeyboardInterrupt)
    finally:
        interrupter.cancel()
        engine.close()


class _Refusing:
    """A connection whose every statement fails as DuckDB's Python client does when Ctrl-C stops it."""

    def __init__(self, failure: Exception) -> None:
        self.failure = failure

    def execute(self, sql: str) -> None:
        raise self.failure

    def register(self, name: str, table: object) -> None:
        pass

    def unregister(self, name: str) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize("failure", [
    RuntimeError("Query interrupted"),
    duckdb.InvalidInputException("Invalid Input Error: reading the schema of the object registered as "
                                 "'inputs__rows' failed: KeyboardInterrupt: "),
])
def test_duckdb_interruption_in_other_words_is_a_keyboard_interrupt_too(failure):
    engine = DuckDBEngine(DuckDBSettings())
    engine.con.close()
    engine.con = _Refusing(failure)
    with pytest.raises(QueryInterrupted):
        engine.register_rows("inputs", [("path", "string")], [("a.csv",)])
    with pytest.raises(QueryInterrupted):
        engine.fetch("select 1")


@pytest.mark.parametrize("failure", [RuntimeError("something else"), duckdb.InvalidInputException("Invalid Input")])
def test_duckdb_other_failures_stay_themselves(failure):
    engine = DuckDBEngine(DuckDBSettings())
    engine.con.close()
    engine.con = _Refusing(failure)
    with pytest.raises(type(failure)) as raised:
        engine.fetch("select 1")
    assert raised.value is failure


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
