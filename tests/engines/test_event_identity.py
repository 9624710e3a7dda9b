"""Event identity on DuckDB and on Spark, on small inline bronze batches: a supplied event id (retries are
duplicates, copies with other content conflict), identity columns that tell apart rows equal in every mapped
column, and attributes kept as text. Each batch's fate compared whole, by hand."""
from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from helpers import BRONZE_WITH_EXTRA, bronze_values, inline_table

from clickstream.config import Config, SilverRules
from clickstream.schema import SILVER, with_attributes
from clickstream.sql import render

ENGINES = ["duckdb", pytest.param("spark", marks=pytest.mark.spark)]
INGESTED = dt.datetime(2026, 1, 2, 3, 4, 5)
TEN = dt.datetime(2024, 1, 1, 10, 0, 0)
TEN_US = "1704103200000000"  # TEN in microseconds since 1970


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.getfixturevalue("duckdb_engine" if request.param == "duckdb" else "spark")


def row(source, file, user="u1", event="page_view", product=None, event_id=None, extra=None,
        timestamp="2024-01-01 10:00:00"):
    return bronze_values(BRONZE_WITH_EXTRA, UserID=user, SessionID="s", Timestamp=timestamp, EventType=event,
                         ProductID=product, EventID=event_id, extra=extra, source_name=source, source_file=file,
                         batch_id="b1", ingestion_timestamp=INGESTED, ingestion_date=INGESTED.date())


def md5(*values: str) -> str:
    """The id of values none of which holds the unit separator: md5 of them joined by it (sql.key_of)."""
    return hashlib.md5("\x1f".join(values).encode()).hexdigest()


def config(sources: list[dict]) -> Config:
    return Config.model_validate({"sources": sources})


def classify(engine, config: Config, rows: list[tuple], existing: list[tuple] = ()) -> list[tuple]:
    """Each clean row's fate: (user, event type, product, source file, supplied id, disposition, conflicting)."""
    names = config.attribute_names
    identified = any(s.columns["EventID"] is not None for s in config.sources)
    identity = {"attribute_names": names, "identified": identified, "with_content": identified or bool(names),
                "columns": [engine.quote_identifier(c) if c in names else c
                            for c, _ in with_attributes(SILVER, names)]}
    inline_table(engine, "bronze_batch", BRONZE_WITH_EXTRA, rows)
    inline_table(engine, "silver_existing", with_attributes(SILVER, names), list(existing))
    engine.materialize("silver_typed", render("silver/silver_typed", engine, sources=config.sources,
                                              rules=SilverRules(), attribute_names=names))
    engine.create_view("silver_clean", render("silver/silver_clean", engine, **identity))
    engine.materialize("silver_repeats", render("silver/silver_repeats", engine, **identity))
    engine.create_view("silver_new", render("silver/silver_events", engine, **identity))
    supplied = "supplied_event_id" if identified else "cast(null as string)"
    conflicting = "is_conflicting" if identified else "false"
    _, result = engine.fetch(
        f"select user_id, event_type, product_id, source_file, 'silver', false from silver_new "
        f"where event_id not in (select event_id from silver_repeats) union all "
        f"select user_id, event_type, product_id, source_file, disposition, {conflicting} from silver_repeats")
    for name in ("silver_typed", "silver_clean", "silver_repeats", "silver_new", "bronze_batch", "silver_existing"):
        engine.drop(name)
    return sorted(result, key=lambda r: tuple((v is None, str(v)) for v in r))


SEGMENT = {"name": "seg", "columns": {"UserID": "userId", "Timestamp": "timestamp", "EventType": "event",
                                      "ProductID": "productId", "EventID": "messageId"}}


def test_a_supplied_id_identifies_the_event_retries_are_duplicates_and_other_content_conflicts(engine):
    rows = [
        row("seg", "a.csv", event_id="m1"),
        row("seg", "b.csv", event_id="m1"),  # a retry: the same id and content
        row("seg", "a.csv", event_id="m2", product="p1", event="product_view"),
        row("seg", "b.csv", event_id="m2", product="p9", event="product_view"),  # one id, other content
        row("seg", "a.csv", event_id="m3", user="u2"),  # the content of m1 under another id: another event
        row("seg", "a.csv", event_id=" \t", user="u3"),  # no id: identified by its content ...
        row("seg", "b.csv", event_id=None, user="u3"),  # ... so this is a copy of it
    ]
    assert classify(engine, config([SEGMENT]), rows) == [
        ("u1", "page_view", None, "a.csv", "silver", False),
        ("u1", "page_view", None, "b.csv", "duplicate", False),
        ("u1", "product_view", "p1", "a.csv", "silver", False),
        ("u1", "product_view", "p9", "b.csv", "duplicate", True),
        ("u2", "page_view", None, "a.csv", "silver", False),
        ("u3", "page_view", None, "a.csv", "silver", False),
        ("u3", "page_view", None, "b.csv", "duplicate", False),
    ]


def test_conflicting_copies_in_one_file_keep_the_first_by_content_and_an_id_silver_holds_is_redelivered(engine):
    rows = [row("seg", "a.csv", event_id="m1", product=p, event="product_view") for p in ("p2", "p1")]
    rows += [row("seg", "a.csv", event_id="m5", user="u5"), row("seg", "a.csv", event_id="m6", user="u6")]
    held = [(md5("seg", "m5"), "u5", "s", TEN, "click", None, None, None, "seg", "old.csv", "b0", INGESTED,
             INGESTED.date()),  # m5 held with other content
            (md5("seg", "m6"), "u6", "s", TEN, "page_view", None, None, None, "seg", "old.csv", "b0", INGESTED,
             INGESTED.date())]  # m6 held as it comes again
    # copies in one file and batch: the first by the md5 of their silver values is kept
    first = min(("p1", "p2"), key=lambda p: md5("u1", "s", TEN_US, "product_view", p, "", ""))
    other = ({"p1", "p2"} - {first}).pop()
    assert classify(engine, config([SEGMENT]), rows, held) == [
        ("u1", "product_view", first, "a.csv", "silver", False),
        ("u1", "product_view", other, "a.csv", "duplicate", True),
        ("u5", "page_view", None, "a.csv", "redelivered", True),
        ("u6", "page_view", None, "a.csv", "redelivered", False),
    ]


JD = {"name": "jd", "columns": {"UserID": "user_id", "Timestamp": "action_time", "EventType": "type",
                                "ProductID": "sku_id", "SessionID": None, "Amount": None, "Outcome": None},
      "identity_columns": ["model_id", "a.b"]}


def test_identity_columns_tell_apart_rows_equal_in_every_mapped_column(engine):
    rows = [
        row("jd", "a.csv", product="p1", event="product_view", extra='{"model_id": "1", "cate": "4"}'),
        row("jd", "a.csv", product="p1", event="product_view", extra='{"model_id": "2", "cate": "4"}'),
        row("jd", "b.csv", product="p1", event="product_view", extra='{"model_id": " 2 ", "cate": "5"}'),  # = line 2
        row("jd", "a.csv", product="p2", event="product_view", extra='{"model_id": "", "a.b": null}'),  # both empty
        row("jd", "b.csv", product="p2", event="product_view", extra=None),  # ... as when absent: a copy
        row("jd", "a.csv", product="p3", event="product_view", extra='{"a": {"b": "1"}, "a.b": "2"}'),
        row("jd", "b.csv", product="p3", event="product_view", extra='{"a.b": "1"}'),  # the key "a.b" itself
        row("seg", "a.csv", product="p1", event="product_view", event_id=None),  # another source, no such columns
    ]
    assert classify(engine, config([JD, {**SEGMENT, "columns": {**SEGMENT["columns"], "EventID": None}}]),
                    rows) == [
        ("u1", "product_view", "p1", "a.csv", "silver", False),
        ("u1", "product_view", "p1", "a.csv", "silver", False),
        ("u1", "product_view", "p1", "a.csv", "silver", False),
        ("u1", "product_view", "p1", "b.csv", "duplicate", False),
        ("u1", "product_view", "p2", "a.csv", "silver", False),
        ("u1", "product_view", "p2", "b.csv", "duplicate", False),
        ("u1", "product_view", "p3", "a.csv", "silver", False),
        ("u1", "product_view", "p3", "b.csv", "silver", False),
    ]


def test_without_identity_columns_or_an_id_the_event_id_is_the_canonical_values_as_before(engine):
    rows = [row("seg", "a.csv", product="p1", event="product_view", extra='{"model_id": "1"}')]
    cfg = config([{**SEGMENT, "columns": {**SEGMENT["columns"], "EventID": None}}])
    inline_table(engine, "bronze_batch", BRONZE_WITH_EXTRA, rows)
    engine.materialize("silver_typed", render("silver/silver_typed", engine, sources=cfg.sources,
                                              rules=SilverRules()))
    assert engine.fetch("select event_id from silver_typed")[1] == [
        (md5("u1", "s", TEN_US, "product_view", "p1", "", ""),)]


# ---- whole runs: a feed with its own event ids, one batch at a time or all at once

FEED_HEADER = "userId,sessionId,timestamp,event,productId,price,messageId,brand,utm_source\n"
FEED_FIRST = ["u1,s1,2024-01-01 10:00:00,page_view,,,m1,,ads",
              "u1,s1,2024-01-01 10:05:00,product_view,p1,,m2,Acme,",
              "u1,s1,2024-01-01 10:05:00,product_view,p1,,m2,Acme,",  # a retry
              "u2,s1,2024-01-01 11:00:00,page_view,,,m3,,seo"]
FEED_SECOND = ["u1,s1,2024-01-01 10:05:00,product_view,p9,,m2,Other,",  # m2 again, with other content
               "u1,s1,2024-01-01 10:20:00,add_to_cart,p1,,m4,Acme Corp,",  # p1's brand from now on
               "u1,s1,2024-01-01 09:50:00,page_view,,,m6,,mail",  # late: u1's visit now starts from mail
               "u2,s1,2024-01-01 11:00:00,page_view,,,m5,,seo"]  # m3's content under another id: another event
FEED_TABLES = ["gold/fct_events", "gold/dim_users", "gold/dim_sessions", "gold/dim_products",
               "analytics/conversion_funnel", "analytics/user_journey", "analytics/top_products"]


def feed_config(data_dir, engine_name: str) -> Config:
    return Config.model_validate({
        "engine": engine_name, "paths": {"data_dir": str(data_dir), "logs_dir": str(data_dir.parent / "logs")},
        "sources": [{"name": "feed", "columns": {"UserID": "userId", "SessionID": "sessionId",
                                                 "Timestamp": "timestamp", "EventType": "event",
                                                 "ProductID": "productId", "Amount": "price", "Outcome": None,
                                                 "EventID": "messageId"},
                     "attributes": {"brand": "brand", "channel": "utm_source"}}],
        "gold": {"product_attributes": ["brand"], "visit_attributes": ["channel"]},
        # the predictive models are compared on both engines in test_predictive.py
        "analytics": {"funnel": {"breakdown": "channel"}, "churn": {"enabled": False}, "clusters": {"enabled": False}},
        "quality": {"duplicate_rate": {"warn": 0.5, "fail": 0.5}}})


def feed_run(data_dir, engine_name: str, batches: list[tuple[str, list[str]]],
             layers: tuple[str, ...] = ("bronze", "silver", "gold", "analytics")) -> dict:
    import json

    from clickstream.pipeline import run_layers

    (data_dir / "raw").mkdir(parents=True, exist_ok=True)
    for name, lines in batches:
        (data_dir / "raw" / name).write_text(FEED_HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    run_layers(feed_config(data_dir, engine_name), layers)
    return json.loads((data_dir / "reports" / "quality_report.json").read_text())


@pytest.mark.parametrize("engine_name", ENGINES)
def test_supplied_ids_a_batch_at_a_time_give_what_one_run_gives_and_the_ledger_balances(tmp_path, engine_name,
                                                                                        request):
    from engine_support import read_table, table_differences

    if engine_name == "spark":
        request.getfixturevalue("spark_session_owner")
    step, scratch = tmp_path / "step", tmp_path / "scratch"
    # On Spark, the layers the supplied ids decide (up to gold): analytics on the same gold is compared between
    # the engines in test_differential.py, its attributes and breakdowns in test_attributes.py
    layers = ("bronze", "silver", "gold") if engine_name == "spark" else ("bronze", "silver", "gold", "analytics")
    feed_run(step, engine_name, [("a.csv", FEED_FIRST)], layers)
    second = feed_run(step, engine_name, [("b.csv", FEED_SECOND)], layers)
    whole = feed_run(scratch, "duckdb", [("a.csv", FEED_FIRST), ("b.csv", FEED_SECOND)])
    for table in [t for t in FEED_TABLES if t.split("/")[0] in layers]:
        assert table_differences(read_table(scratch / table), read_table(step / table)) == [], table
    # 8 rows: m1 to m6 in silver; the retry a duplicate; m2's other content a repeat that conflicts
    assert {k: second["silver"]["totals"][k] for k in ("bronze_rows", "silver_rows", "duplicate_rows",
                                                       "redelivered_rows", "quarantine_rows")} == {
        "bronze_rows": 8, "silver_rows": 6, "duplicate_rows": 1, "redelivered_rows": 1, "quarantine_rows": 0}
    assert second["silver"]["conflicting_event_ids"] == {"rows": 1, "examples": [
        {"source_file": "b.csv", "supplied_event_id": "m2", "disposition": "redelivered"}]}
    assert whole["silver"]["conflicting_event_ids"] == {"rows": 1, "examples": [
        {"source_file": "b.csv", "supplied_event_id": "m2", "disposition": "duplicate"}]}
    products = read_table(step / "gold/dim_products")
    assert sorted(zip(products.column("product_key").to_pylist(), products.column("brand").to_pylist()),
                  key=str) == [("", None), ("p1", "Acme Corp")]
    if "analytics" in layers:
        report = (step / "analytics" / "REPORT.md").read_text(encoding="utf-8")
        # one product of brand Acme Corp: p1, viewed once (m2; its retry is a duplicate), not bought
        assert "| brand | Acme Corp | 1 | 1 | 0 | 0.00 |" in report
        assert "revenue_by_attribute" in (step / "analytics" / "report.html").read_text(encoding="utf-8")
    sessions = read_table(step / "gold/dim_sessions")
    assert sorted(zip(sessions.column("user_key").to_pylist(), sessions.column("channel").to_pylist())) == [
        ("u1", "mail"), ("u2", "seo")]


def test_when_the_file_of_a_kept_copy_is_replaced_the_conflicting_copy_takes_its_place(tmp_path):
    from engine_support import read_table, table_differences

    step, scratch = tmp_path / "step", tmp_path / "scratch"
    kept = "u1,s1,2024-01-01 10:05:00,product_view,p1,,m2,Acme,"
    other = "u1,s1,2024-01-01 10:05:00,product_view,p9,,m2,Other,"
    feed_run(step, "duckdb", [("a.csv", [FEED_FIRST[0], kept]), ("b.csv", [other])])
    # a.csv's new version no longer holds m2: b.csv's copy, a duplicate until now, stands for it in silver
    report = feed_run(step, "duckdb", [("a.csv", [FEED_FIRST[0]])])
    feed_run(scratch, "duckdb", [("a.csv", [FEED_FIRST[0]]), ("b.csv", [other])])
    for table in ["silver", *FEED_TABLES]:
        folder = step / table
        if table == "silver":  # the retraction rewrote files: compare the rows, whatever files hold them
            assert sorted(read_table(folder).column("product_id").to_pylist(), key=str) == [None, "p9"]
            continue
        assert table_differences(read_table(scratch / table), read_table(folder)) == [], table
    assert report["last_run"]["silver"]["retraction"]["promoted_rows"] == 1
    assert [row["balanced"] for row in report["silver"]["ledger"]] == [True, True]
