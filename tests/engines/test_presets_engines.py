"""Each preset loads its fixture (tests/fixtures/presets/<name>/, written from the export's public documentation) by
config alone: `clickstream run` on DuckDB with a balanced ledger and facts read from the fixture with Python's csv
and json modules; and all seven in one run on each engine, with equal tables.
"""
from __future__ import annotations

import csv
import json
import shutil
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from clickstream.cli import main
from clickstream.config import load_config
from clickstream.pipeline import verify
from clickstream.presets import PRESETS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_support import NO_PREDICTIVE, TEST_SPARK, read_table, table_differences  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "presets"
GLOBS = {"rees46": "*.csv", "retailrocket": "events*.csv", "taobao": "UserBehavior*.csv", "segment": "*.jsonl",
         "mixpanel": "*.jsonl", "amplitude": "*.json", "posthog": "*.jsonl"}
# Segment's and PostHog's Order Completed carry their products in an array, none on the order itself: an order
# needs no product id there
NO_PRODUCT_ON_ORDERS = {"silver": {"product_event_types": ["product_view", "add_to_cart"]}}
EXTRA_CONFIG = {"segment": NO_PRODUCT_ON_ORDERS, "posthog": NO_PRODUCT_ON_ORDERS}
TABLES = ["bronze", "silver", "quarantine", "duplicates", "gold/fct_events", "gold/dim_users", "gold/dim_sessions",
          "gold/dim_products", "analytics/conversion_funnel"]
RUN_COLUMNS = ("batch_id", "ingestion_timestamp", "ingestion_date")


def _copy_fixture(name: str, raw: Path) -> None:
    raw.mkdir(parents=True)
    for path in (FIXTURES / name).iterdir():
        if path.name != "README.md":
            shutil.copy(path, raw / path.name)


def _run(root: Path, engine: str, sources: list[dict], extra: dict) -> tuple[int, Path, Path]:
    """`clickstream run` on root/<engine>/data/raw/ with these sources (and `extra` config), from a YAML file."""
    data = root / engine / "data"
    config = {"engine": engine, "paths": {"data_dir": str(data), "logs_dir": str(root / engine / "logs")},
              # the predictive models are compared on both engines in test_predictive.py and test_differential.py
              "sources": sources, "analytics": {"html_report": False, **NO_PREDICTIVE},
              "spark": {"master": TEST_SPARK.master, "shuffle_partitions": TEST_SPARK.shuffle_partitions,
                        "driver_memory": TEST_SPARK.driver_memory, "conf": TEST_SPARK.conf}, **extra}
    path = root / engine / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return main(["run", "--config", str(path), "--quiet"]), data, path


def run_preset(root: Path, name: str, engine: str) -> tuple[int, Path, Path]:
    """`clickstream run` on a copy of the preset's fixture, configured by the preset alone."""
    _copy_fixture(name, root / engine / "data" / "raw")
    return _run(root, engine, [{"name": name, "preset": name, "glob": GLOBS[name]}], EXTRA_CONFIG.get(name, {}))


def _json_lines(name: str) -> list[dict]:
    [path] = [p for p in (FIXTURES / name).iterdir() if p.name != "README.md"]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _csv_rows(name: str, header: bool = True) -> list:
    [path] = [p for p in (FIXTURES / name).iterdir() if p.name != "README.md"]
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle)) if header else list(csv.reader(handle))


def _distinct(items: list[dict], key) -> list[dict]:
    seen: dict = {}
    for item in items:
        seen.setdefault(key(item), item)
    return list(seen.values())


def expected_facts(name: str) -> tuple[int, int, int, Decimal | None]:
    """(raw records, distinct users, purchases, revenue or None) read from the fixture as its documentation
    describes it, without the pipeline."""
    if name in ("rees46", "retailrocket", "taobao"):
        rows = _csv_rows(name, header=name != "taobao")
        user, kind, buy = {"rees46": ("user_id", "event_type", "purchase"),
                           "retailrocket": ("visitorid", "event", "transaction"), "taobao": (0, 3, "buy")}[name]
        bought = [r for r in rows if r[kind] == buy]
        revenue = sum(Decimal(r["price"]) for r in bought) if name == "rees46" else None
        return len(rows), len({r[user] for r in rows}), len(bought), revenue
    lines = _json_lines(name)
    user, kind, buy, event_id, amount = {
        "segment": (lambda e: e.get("anonymousId"), "event", "Order Completed", "messageId",
                    lambda e: e["properties"]["revenue"]),
        "mixpanel": (lambda e: e["properties"]["distinct_id"], "event", "Purchase",
                     lambda e: e["properties"]["$insert_id"], lambda e: e["properties"]["Amount"]),
        "amplitude": (lambda e: e["amplitude_id"], "event_type", "revenue_amount", "uuid",
                      lambda e: e["event_properties"]["$revenue"]),
        "posthog": (lambda e: e["distinct_id"], "event", "Order Completed", "uuid",
                    lambda e: e["properties"]["revenue"]),
    }[name]
    key = event_id if callable(event_id) else (lambda e, k=event_id: e[k])
    events = _distinct([e for e in lines if user(e) is not None], key)
    bought = [e for e in events if e[kind] == buy]
    return (len(lines), len({str(user(e)) for e in events}), len(bought),
            sum((Decimal(str(amount(e))) for e in bought), Decimal("0")))


def expected_attribute(name: str) -> tuple[str, set[str]] | None:
    """(one attribute the preset keeps, its non-empty values) read from the fixture; None where it keeps none."""
    if name in ("rees46", "taobao"):
        column = "brand" if name == "rees46" else 2
        return ("brand" if name == "rees46" else "category_id",
                {r[column] for r in _csv_rows(name, header=name == "rees46") if r[column]})
    if name == "retailrocket":
        return None
    attribute, value, kept = {
        "segment": ("page_url", lambda e: e.get("context", {}).get("page", {}).get("url"),
                    lambda e: e.get("anonymousId") is not None),
        "mixpanel": ("country", lambda e: e["properties"].get("mp_country_code"), lambda e: True),
        "amplitude": ("country", lambda e: e["country"], lambda e: True),
        "posthog": ("page_url", lambda e: e["properties"].get("$current_url"), lambda e: True),
    }[name]
    return attribute, {value(e) for e in _json_lines(name) if kept(e) and value(e)}


def actual_facts(data: Path) -> tuple[int, int, int, Decimal | None]:
    bronze, silver = read_table(data / "bronze").to_pylist(), read_table(data / "silver").to_pylist()
    bought = [r for r in silver if r["event_type"] == "purchase"]
    amounts = [r["amount"] for r in bought if r["amount"] is not None]
    return (len(bronze), len({r["user_id"] for r in silver}), len(bought), sum(amounts) if amounts else None)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_preset_loads_its_fixture_by_config_alone(tmp_path, name):
    status, data, config = run_preset(tmp_path, name, "duckdb")
    assert status == 0
    assert actual_facts(data) == expected_facts(name)
    if attribute := expected_attribute(name):
        silver = read_table(data / "silver").to_pylist()
        assert {r[attribute[0]] for r in silver if r[attribute[0]]} == attribute[1]
    files = verify(load_config(config))
    assert [(f["source_file"], f["balanced"]) for f in files] == [(p.name, True) for p in (data / "raw").iterdir()]


def run_presets(root: Path, engine: str) -> tuple[int, Path, Path]:
    """`clickstream run` on every preset's fixture at once, each in a folder of its own under raw/, one source a
    preset (the settings some presets' fixtures need apply to all)."""
    for name in sorted(PRESETS):
        _copy_fixture(name, root / engine / "data" / "raw" / name)
    return _run(root, engine, [{"name": name, "preset": name, "glob": f"{name}/{GLOBS[name]}"}
                               for name in sorted(PRESETS)], NO_PRODUCT_ON_ORDERS)


@pytest.mark.spark
def test_every_preset_gives_equal_tables_on_both_engines(tmp_path, request):
    """The seven presets in one run a engine (one Spark run, not seven): equal tables, every source's rows there,
    a balanced ledger."""
    request.getfixturevalue("spark_session_owner")
    runs = {engine: run_presets(tmp_path, engine) for engine in ("duckdb", "spark")}
    assert [status for status, _, _ in runs.values()] == [0, 0]
    _, spark_data, spark_config = runs["spark"]
    assert {r["source_name"] for r in read_table(spark_data / "silver").to_pylist()} == set(PRESETS)
    files = verify(load_config(spark_config))
    assert len(files) == len(PRESETS) and all(f["balanced"] for f in files)
    for table in TABLES:
        expected, actual = read_table(runs["duckdb"][1] / table), read_table(spark_data / table)
        assert table_differences(expected, actual, exclude=RUN_COLUMNS) == [], table
