"""Bronze's manifest lost, stale or unreadable, bronze or silver files lost: a run never deletes published data on
a guess, `clickstream repair-manifest` rebuilds the manifest from bronze, `clickstream verify` checks bronze too.

Real runs (DuckDB) on data written by the project's generator in tmp_path.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from helpers import make_config

from clickstream import bronze
from clickstream.cli import main
from clickstream.generate import generate
from clickstream.pipeline import run_layers, verify_all

LAYERS = ("bronze", "silver")
TABLES = ("bronze/", "silver/", "quarantine/", "duplicates/")


def contents(data: Path, folders: tuple[str, ...]) -> dict:
    """Every file under `folders`: a Parquet file's rows, any other file's bytes."""
    seen = {}
    for path in sorted(data.rglob("*")):
        name = path.relative_to(data).as_posix()
        if path.is_file() and name.startswith(folders) and name != "_state/writer.lock":
            seen[name] = sorted(duckdb.sql(f"select * from read_parquet('{path}')").fetchall(), key=repr) \
                if path.suffix == ".parquet" else path.read_bytes()
    return seen


def tables(data: Path) -> dict:
    """Every Parquet file of bronze, silver, quarantine and duplicates, with its rows."""
    return contents(data, TABLES)


def untouched(data: Path) -> dict:
    """What a refused run must leave as it was: every table file and every state file (the lock aside)."""
    return contents(data, (*TABLES, "_state/"))


def manifest_of(data: Path) -> dict:
    return json.loads((data / "_state" / bronze.MANIFEST).read_text())


def assert_verified(config) -> None:
    files, problems = verify_all(config)
    assert problems == []
    assert [f["source_file"] for f in files if not f["balanced"]] == []


@pytest.fixture
def ingested(tmp_path):
    """Three generated files (with defects: quarantine and duplicates), one appended to and one replaced later."""
    config = make_config(tmp_path)
    data = config.paths.data_dir
    generate(data / "raw", rows=600, seed=3, files=3)
    (data / "raw" / "extra.csv").write_text("UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"
                                            "9001,1,2024-02-01 10:00:00,page_view,,,\n"
                                            "9001,1,2024-02-01 10:01:00,click,,,\n")
    run_layers(config, LAYERS)
    with (data / "raw" / "clickstream_3_001.csv").open("a") as appended:
        appended.write("9002,1,2024-02-02 10:00:00,page_view,,,\n9002,1,2024-02-02 10:02:00,click,,,\n")
    (data / "raw" / "extra.csv").write_text("UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"
                                            "9003,1,2024-02-03 10:00:00,page_view,,,\n")
    run_layers(config, LAYERS)
    return config


def facts(manifest: dict) -> dict:
    """What a run decides by: per raw file, its version's facts and the batches holding it, its earlier versions;
    per batch, its files, rows, Parquet files and time. (An appended part's byte offset and a processed batch's
    retractions decide nothing any more and are not compared.)"""
    files = {path: (entry["source_name"], [(p["batch_id"], p["rows"]) for p in bronze.parts_of(entry)],
                    entry["sha256"], entry["size"], entry["mtime_ns"], entry["lines"], entry["records"],
                    entry["unit_separator"], entry["ends_cleanly"],
                    [(v["batch_id"], v["rows"], v["replaced_by"]) for v in entry.get("previous", [])])
             for path, entry in manifest["files"].items()}
    batches = {batch_id: (sorted(batch["files"]), batch["rows"], sorted(batch["parquet"]), batch["ingested_at"])
               for batch_id, batch in manifest["batches"].items()}
    return {"files": files, "batches": batches}


# ---- a run refuses, and changes nothing

def manifest_deleted(data: Path) -> str:
    (data / "_state" / bronze.MANIFEST).unlink()
    return (f"bronze: the manifest {data}/_state/{bronze.MANIFEST} is missing, yet {data}/bronze holds 2 Parquet "
            f"file(s)")


def manifest_unreadable(data: Path) -> str:
    (data / "_state" / bronze.MANIFEST).write_bytes(b'{"files": \xff')
    return (f"bronze: the manifest {data}/_state/{bronze.MANIFEST} cannot be read ('utf-8' codec can't decode byte "
            f"0xff in position 10: invalid start byte)")


def manifest_not_an_object(data: Path) -> str:
    (data / "_state" / bronze.MANIFEST).write_text("[]")
    return (f"bronze: the manifest {data}/_state/{bronze.MANIFEST} is not a bronze manifest (a JSON object of "
            f"files, batches, copies, refused)")


def manifest_an_older_copy(data: Path) -> str:
    manifest = manifest_of(data)
    latest = max(manifest["batches"])
    del manifest["batches"][latest]
    (data / "_state" / bronze.MANIFEST).write_text(json.dumps(manifest))
    (file,) = sorted((data / "bronze").rglob(f"{latest}-*.parquet"))
    return (f"bronze: {data}/bronze holds 1 Parquet file(s) of 1 batch(es) that the manifest "
            f"{data}/_state/{bronze.MANIFEST} does not record, e.g. {file} (an older copy of the manifest?)")


@pytest.mark.parametrize("damage", [manifest_deleted, manifest_unreadable, manifest_not_an_object,
                                    manifest_an_older_copy])
def test_a_run_refuses_to_touch_bronze_its_manifest_cannot_account_for(ingested, damage):
    data = ingested.paths.data_dir
    reason = damage(data)
    before = untouched(data)
    with pytest.raises(bronze.ManifestLost) as refused:
        run_layers(ingested)
    assert str(refused.value) == (f"{reason}; nothing was changed; rebuild it from bronze's own files with: "
                                  f"clickstream repair-manifest --data-dir {data}")
    assert untouched(data) == before


def test_a_batch_interrupted_while_publishing_is_still_removed_by_the_next_run(tmp_path, monkeypatch, caplog):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    generate(data / "raw", rows=300, seed=4, files=2)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("stopped after publishing, before the commit")

    monkeypatch.setattr(bronze, "_commit", crash)
    with pytest.raises(KeyboardInterrupt):
        run_layers(config, LAYERS)
    (leftover,) = sorted((data / "bronze").rglob("*.parquet"))
    assert manifest_of(data)["publishing"] == leftover.name.split("-")[0]
    monkeypatch.undo()
    run_layers(config, LAYERS)
    assert "removed 1 bronze file(s) left by an interrupted run" in caplog.text
    assert not leftover.exists()
    assert "publishing" not in manifest_of(data)
    assert_verified(config)


# ---- repair-manifest

def test_a_manifest_rebuilt_from_bronze_is_the_one_lost_and_nothing_is_ingested_twice(ingested, capsys):
    data = ingested.paths.data_dir
    lost = manifest_of(data)
    before = tables(data)
    (data / "_state" / bronze.MANIFEST).unlink()
    assert main(["repair-manifest", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out == (
        f"rebuilt {data}/_state/{bronze.MANIFEST} from 2 bronze file(s): 2 batch(es), 605 row(s), 4 raw file(s)\n"
        f"4 raw file(s) recovered whole from raw/ (SHA-256, size, lines, records)\n")
    assert facts(manifest_of(data)) == facts(lost)
    assert run_layers(ingested, LAYERS)["bronze"] is None
    assert tables(data) == before
    assert_verified(ingested)
    assert main(["repair-manifest", "--data-dir", str(data)]) == 0  # a manifest that agrees with bronze stays
    assert capsys.readouterr().out == (f"{data}/_state/{bronze.MANIFEST} already records what bronze holds: "
                                       f"nothing changed\n")


def test_a_raw_file_changed_or_gone_since_it_was_ingested_is_said_and_ingested_again_as_a_new_version(tmp_path,
                                                                                                        capsys):
    config = make_config(tmp_path)
    data = config.paths.data_dir
    generate(data / "raw", rows=300, seed=4, files=3)
    run_layers(config, LAYERS)
    changed = data / "raw" / "clickstream_4_002.csv"
    changed.write_text(changed.read_text().replace("page_view", "click", 1))  # as many records, other content
    (data / "raw" / "clickstream_4_003.csv").unlink()
    before = tables(data)
    (data / "_state" / bronze.MANIFEST).write_text("{")
    assert main(["repair-manifest", "--data-dir", str(data)]) == 0
    aside = sorted((data / "_state").glob(f"{bronze.MANIFEST}.before-repair-*"))
    assert [path.read_text() for path in aside] == ["{"]
    assert capsys.readouterr().out == (
        f"rebuilt {data}/_state/{bronze.MANIFEST} from 1 bronze file(s): 1 batch(es), 300 row(s), 3 raw file(s) "
        f"(the one it replaces is kept as {aside[0]})\n"
        f"1 raw file(s) recovered whole from raw/ (SHA-256, size, lines, records)\n"
        f"not recovered: clickstream_4_002.csv: it was modified after it was ingested; the next run ingests it "
        f"again as a new version, replacing its rows\n"
        f"not recovered: clickstream_4_003.csv: it is no longer in raw/ (or no source's glob matches it); the "
        f"next run ingests it again as a new version, replacing its rows\n")
    (first,) = manifest_of(data)["batches"]
    batch = run_layers(config, LAYERS)["bronze"]
    assert (batch["files"], batch["retracts"]) == (
        ["clickstream_4_002.csv"], [{"source_file": "clickstream_4_002.csv", "batch_ids": [first]}])
    kept = {name: rows for name, rows in tables(data).items() if name in before and name.startswith("bronze/")}
    assert kept == {name: rows for name, rows in before.items() if name.startswith("bronze/")}
    assert_verified(config)


# ---- verify checks bronze, and catches a lost silver file

def test_verify_names_a_deleted_bronze_file(ingested, capsys):
    data = ingested.paths.data_dir
    first = min(manifest_of(data)["batches"])
    (lost,) = sorted((data / "bronze").rglob(f"{first}-*.parquet"))
    lost.unlink()
    assert main(["verify", "--data-dir", str(data)]) == 1
    assert capsys.readouterr().err == (
        f"clickstream: error: bronze does not hold what its manifest records (6 problem(s), listed above): bronze "
        f"file {lost} of batch {first} is missing\n")


def test_verify_finds_a_deleted_quarantine_file_in_the_ledger(ingested, capsys):
    data = ingested.paths.data_dir
    files, _ = verify_all(ingested)
    held = {f["source_file"]: f["quarantine_rows"] for f in files}
    lost = sorted((data / "quarantine").rglob("*.parquet"))[0]
    shutil.copy(lost, data / "lost.parquet")
    lost.unlink()
    assert main(["verify", "--data-dir", str(data)]) == 1
    assert "clickstream: error: the ledger does not add up for " in capsys.readouterr().err
    files, problems = verify_all(ingested)
    assert problems == []
    assert {f["source_file"]: f["quarantine_rows"] for f in files if not f["balanced"]} == {
        name: rows - lost_rows for name, rows, lost_rows in _quarantined(held, data / "lost.parquet") if lost_rows}


def _quarantined(held: dict[str, int], lost: Path) -> list[tuple[str, int, int]]:
    counts = dict(duckdb.sql(f"select source_file, count(*) from read_parquet('{lost}') group by 1").fetchall())
    return [(name, rows, counts.get(name, 0)) for name, rows in held.items()]
