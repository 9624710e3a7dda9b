"""Gold: the star schema rebuilt from all of silver, checked, then published table by table."""
from __future__ import annotations

import logging
import time

from clickstream import storage
from clickstream.build import build_model
from clickstream.context import QualityGateError, RunContext
from clickstream.quality import compile_tests, run_tests
from clickstream.schema import SILVER
from clickstream.sql import load_yaml, render

log = logging.getLogger(__name__)

# The product key of events that have no product: the 'not applicable' member of dim_products. Empty, as
# silver turns an empty product id into NULL, so no real product can ever have this key.
NO_PRODUCT_KEY = ""


def model_context(ctx: RunContext) -> dict:
    """The parameters the gold and analytics models are rendered with, all from config."""
    rules, analytics = ctx.config.silver, ctx.config.analytics
    known = sorted(set(rules.product_event_types) | set(rules.purchase_event_types) | set(analytics.funnel))
    return {
        "timeout_us": int(round(ctx.config.gold.session_timeout_minutes * 60 * 1_000_000)),
        "no_product_key": NO_PRODUCT_KEY,
        "product_event_types": rules.product_event_types,
        "purchase_event_types": rules.purchase_event_types,
        "known_event_types": known,
        "funnel": analytics.funnel,
        "top_n": analytics.top_n,
        "segments": analytics.segments,
        "path_length": analytics.path_length,
    }


def models() -> list[dict]:
    return load_yaml("gold/models.yml")["models"]


def run(ctx: RunContext) -> dict[str, int]:
    """Rebuild every gold table from silver; publish them only if every failing-severity test passes."""
    started = time.perf_counter()
    engine, layout = ctx.engine, ctx.layout
    engine.read_parquet("silver_events", storage.parquet_files(layout.silver), SILVER, partitioned=True)
    context = model_context(ctx)
    # The whole layer is staged and published as one directory: readers never see half a new star.
    root = storage.staging_path(layout.data_dir, "gold")
    staged = {}
    for model in models():
        name = model["name"]
        if model.get("publish", True):
            staged[name] = build_model(ctx, "gold", name, context, root)
        else:  # an intermediate step: kept by the engine for the models after it, never written
            engine.materialize(name, render(f"gold/{name}", engine, **context))

    tests = [query for model in models() for query in compile_tests(model["name"], model.get("tests", []), engine)]
    results = run_tests(engine, tests, ctx.config.quality.gold_tests)
    counts = engine.row_counts(["silver_events", *(m["name"] for m in models())])
    for table, count in counts.items():
        log.info("gold cardinality: %s rows=%d", table, count)
    ctx.quality["gold"] = {"tests": results, "row_counts": counts}
    failed = [r["test"] for r in results if r["status"] == "fail"]
    if failed:
        storage.clear_staging(layout.data_dir)
        raise QualityGateError(f"gold: {len(failed)} data test(s) failed: {', '.join(failed)} (nothing published)")

    for model in models():
        if not model.get("publish", True):
            engine.drop(model["name"])
    storage.publish_table(root, layout.gold)
    elapsed = time.perf_counter() - started
    ctx.quality["gold"]["seconds"] = round(elapsed, 3)
    log.info("gold: %d tables, %d events in the fact, in %.2f s", len(staged), counts.get("fct_events", 0), elapsed)
    return counts
