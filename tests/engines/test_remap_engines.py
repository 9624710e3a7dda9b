"""A changed `columns` mapping, read from bronze alone on both engines: silver, quarantine, duplicates and gold as a
first build under the new mapping makes them from the raw files, with the raw files gone; a mapping naming a column
a file does not have is refused before anything is written."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from clickstream.config import Config
from clickstream.engines.base import InputError
from clickstream.pipeline import run_layers, verify

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine_support import read_table, table_differences  # noqa: E402

RUN_COLUMNS = ("batch_id", "ingestion_timestamp", "ingestion_date")


SHOP_HEADER = "user,visit,when,kind,item,sku,price,channel\n"
SHOP = ("u1,v1,2024-03-01 10:00:00,view,i1,S-1,,email\n"
        "u1,v1,2024-03-01 10:01:00,cart,i1,S-1,,email\n"
        "u1,v1,2024-03-01 10:02:00,purchase,i1,S-1,9.50,email\n"
        "u2,v2,2024-03-01 11:00:00,view,i2,,,\n"  # no sku: a view of no product under the new mapping
        "u2,v2,2024-03-01 11:00:00,view,i3,,,\n"  # another item, so another event only under the old mapping
        "u3,v3,2024-03-02 09:00:00,purchase,i4,S-4,,ads\n")  # no price: quarantined under both mappings
SEGMENT = Path(__file__).resolve().parents[1] / "fixtures" / "presets" / "segment" / "tracks.jsonl"
SHOP_COLUMNS = {"UserID": "user", "SessionID": "visit", "Timestamp": "when", "EventType": "kind", "Amount": "price",
                "Outcome": None}


def _remap_config(root: Path, engine: str, new: bool, product: str | None = None):
    """Two sources: a CSV export whose products are items (old) or SKUs (new), and Segment track calls whose products
    are SKUs (old) or product ids (new); the new mapping keeps what the old one took as attributes."""
    shop = {"name": "shop", "glob": "shop*.csv", "event_types": {"cart": "add_to_cart"},
            "columns": {**SHOP_COLUMNS, "ProductID": product or ("sku" if new else "item")},
            "attributes": {"channel": "channel", **({"item": "item"} if new else {})}}
    segment = {"name": "segment", "preset": "segment", "glob": "*.jsonl",
               "columns": {"ProductID": "properties.product_id" if new else "properties.sku"},
               "attributes": {"item_sku": "properties.sku"} if new else {}}
    return Config.model_validate({"engine": engine, "sources": [shop, segment],
                                  "paths": {"data_dir": str(root / "data"), "logs_dir": str(root / "logs")}})


def tables(data: Path) -> dict:
    return {name: read_table(data / name) for name in ("silver", "quarantine", "duplicates", "gold/fct_events",
                                                       "gold/dim_products", "gold/dim_sessions")}


def _raw(config) -> Path:
    raw = config.paths.data_dir / "raw"
    raw.mkdir(parents=True)
    (raw / "shop.csv").write_text(SHOP_HEADER + SHOP)
    (raw / "tracks.jsonl").write_bytes(SEGMENT.read_bytes())
    return raw


def _written(data: Path) -> list[tuple[str, bytes]]:
    """Every file of the layers and their state, with its bytes."""
    folders = ("bronze", "silver", "quarantine", "duplicates", "gold", "_state")
    return sorted((p.relative_to(data).as_posix(), p.read_bytes()) for p in data.rglob("*")
                  if p.is_file() and p.relative_to(data).parts[0] in folders)


ENGINE_PARAMS = ["duckdb", pytest.param("spark", marks=pytest.mark.spark)]


@pytest.mark.parametrize("engine", ENGINE_PARAMS)
def test_a_changed_columns_mapping_reads_bronze_as_the_new_mapping_would_have_written_it(tmp_path, engine,
                                                                                         request):
    if engine == "spark":
        request.getfixturevalue("spark_session_owner")
    old = _remap_config(tmp_path / "remapped", engine, new=False)
    _raw(old)
    run_layers(old, ("bronze", "silver", "gold"))
    for file in (old.paths.data_dir / "raw").iterdir():
        file.unlink()  # bronze is all there is now
    new = _remap_config(tmp_path / "remapped", engine, new=True)
    run_layers(new, ("bronze", "silver", "gold"))
    once = _remap_config(tmp_path / "once", engine, new=True)
    _raw(once)
    run_layers(once, ("bronze", "silver", "gold"))
    remapped, built_once = tables(new.paths.data_dir), tables(once.paths.data_dir)
    for name in remapped:
        assert table_differences(built_once[name], remapped[name], exclude=RUN_COLUMNS) == [], name
    silver = remapped["silver"].to_pylist()
    assert sorted((r["user_id"], r["product_id"], r["item"]) for r in silver if r["source_name"] == "shop") == [
        ("u1", "S-1", "i1"), ("u1", "S-1", "i1"), ("u1", "S-1", "i1"), ("u2", None, "i2")]
    assert {r["product_id"] for r in silver if r["source_name"] == "segment"} >= {"507f1f77bcf86cd799439011"}
    assert all(f["balanced"] for f in verify(new))


def test_a_new_mapping_naming_a_column_a_file_lacks_is_refused_before_anything_is_written(tmp_path):
    old = _remap_config(tmp_path, "duckdb", new=False)
    _raw(old)
    run_layers(old, ("bronze", "silver"))
    data = old.paths.data_dir
    before = _written(data)
    wrong = _remap_config(tmp_path, "duckdb", new=True, product="SKU")
    with pytest.raises(InputError) as refused:
        run_layers(wrong, ("bronze", "silver"))
    message = str(refused.value)
    assert "source 'shop' now maps ProductID: SKU" in message and "shop.csv" in message
    assert "['user', 'visit', 'when', 'kind', 'item', 'sku', 'price', 'channel']" in message
    assert _written(data) == before
    run_layers(_remap_config(tmp_path, "duckdb", new=True), ("bronze", "silver"))  # the fixed config reads it
    assert all(f["balanced"] for f in verify(old))
