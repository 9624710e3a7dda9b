"""Gold: the star schema rebuilt from all of silver, checked, then published table by table."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from clickstream import bronze, declarations, incremental, silver, storage
from clickstream.build import build_model
from clickstream.config import Config
from clickstream.context import QualityGateError, RunContext
from clickstream.quality import compile_tests, run_tests
from clickstream.sql import render

log = logging.getLogger(__name__)

# The product key of events that have no product: the 'not applicable' member of dim_products. Empty, as
# silver turns an empty product id into NULL, so no real product can ever have this key.
NO_PRODUCT_KEY = ""


def model_context(config: Config, may_hold_unit_separator: bool = True) -> dict:
    """The parameters the gold models are rendered with: a pure function of the config and of whether some raw
    file may hold chr(31) (bronze.may_hold_unit_separator; when none can, key_of needs no check for it)."""
    rules, gold = config.silver, config.gold
    steps = config.analytics.funnel.steps
    views, cart_adds = gold.product_view_event_types, gold.cart_add_event_types
    known = sorted(set(rules.product_event_types) | set(rules.purchase_event_types) | set(steps) | set(views)
                   | set(cart_adds))
    return {
        "timeout_us": int(round(gold.session_timeout_minutes * 60 * 1_000_000)),
        "no_product_key": NO_PRODUCT_KEY,
        "product_event_types": rules.product_event_types,
        "purchase_event_types": rules.purchase_event_types,
        "product_view_event_types": views,
        "cart_add_event_types": cart_adds,
        "known_event_types": known,
        "funnel": steps,  # dim_event_types numbers the funnel's steps
        "product_attributes": gold.product_attributes,
        "visit_attributes": gold.visit_attributes,
        "incremental": False,  # True only where a per-user model is rendered for an incremental build
        "may_hold_unit_separator": may_hold_unit_separator,
    }


def context_of(ctx: RunContext) -> dict:
    """model_context of a run: its config, and what bronze's manifest says of chr(31)."""
    return model_context(ctx.config, bronze.may_hold_unit_separator(bronze.load_manifest(ctx)))


def models() -> list[dict]:
    return declarations.gold_models()


class BuildMode(str, Enum):
    FULL = "full"  # every model from all of silver
    INCREMENTAL = "incremental"  # only what the new silver runs can change, merged into the published star
    CURRENT = "current"  # no new silver run: the published star stands


@dataclass(frozen=True)
class Plan:
    mode: BuildMode
    new_runs: list[str]  # the silver runs this build adds
    reason: str


def run(ctx: RunContext) -> dict[str, int]:
    """Bring gold up to date with silver; publish it only if every failing-severity test passes.

    A full build renders every model from all of silver. When the published star was built by the same
    SQL from silver batches that are all still there, only the new batches' users are rebuilt (per-user
    models) and merged in; the other models are rebuilt from the merged tables.
    """
    started = time.perf_counter()
    declared = models()
    sql = _render(ctx, declared)
    fingerprint = incremental.fingerprint(ctx.engine, sql, declared)
    silver_state = silver.load_state(ctx)
    silver.recover(ctx, silver_state)  # a silver run interrupted after its commit: its replaced files go now
    previous = incremental.read_manifest(ctx.layout.gold)
    silver_runs = sorted(silver_state["runs"])
    plan = _plan(ctx, previous, fingerprint, silver_runs)
    if not silver.current_files(ctx) and plan.mode is not BuildMode.CURRENT:
        # every line refused, quarantined, a duplicate or retracted: the star is built empty, never left stale
        log.warning("gold: silver holds no events, so the star is empty (see %s for where the rows went)",
                    ctx.layout.reports / "quality_report.json")
        if plan.mode is BuildMode.INCREMENTAL:  # nothing left to merge into the published star
            plan = Plan(BuildMode.FULL, silver_runs, "silver holds no events")
    log.info("gold: %s build (%s)", plan.mode.value, plan.reason)
    if plan.mode is BuildMode.CURRENT:
        return _current(ctx, previous, started)

    root = storage.staging_path(ctx.layout.data_dir, "gold")  # staged and published as one directory
    root.mkdir(parents=True)
    if plan.mode is BuildMode.FULL:
        built = _build_full(ctx, declared, sql, root)
    else:
        built = incremental.build_gold(ctx, declared, sql, root, plan.new_runs, silver_state)
    published = [m for m in declared if m.get("publish", True)]
    with ctx.profile.step("data tests", "gold"):
        tested_results, tested = _test(ctx, declared, built, root, previous)
        results = built.results + tested_results
    with ctx.profile.step("row counts", "gold"):
        counts = ctx.engine.row_counts(["silver_events", *(m["name"] for m in published)])
    for table, count in counts.items():
        log.info("gold cardinality: %s rows=%d", table, count)
    record = {"mode": plan.mode.value, "reason": plan.reason, "new_silver_batches": plan.new_runs,
              "merged": built.merged, "tests": results, "row_counts": counts, "tested_on_changed_rows": tested}
    ctx.record.gold = record
    failed = [r["test"] for r in results if r["status"] == "fail"]
    if failed:
        storage.clear_staging(ctx.layout.data_dir)
        raise QualityGateError(f"gold: {len(failed)} data test(s) failed: {', '.join(failed)} (nothing published)")
    with ctx.profile.step("publish", "gold"):
        _publish(ctx, root, previous, {"mode": plan.mode.value, "silver_runs": silver_runs,
                                       "fingerprint": fingerprint, "removals": built.removals,
                                       "is_empty": counts.get("silver_events", 0) == 0,
                                       "tests_passed": all(r["status"] == "pass" for r in results)})
    elapsed = time.perf_counter() - started
    record["seconds"] = round(elapsed, 3)
    log.info("gold: %s build of %d tables, %d events in the fact, in %.2f s", plan.mode.value, len(published),
             counts.get("fct_events", 0), elapsed)
    return counts


def _render(ctx: RunContext, declared: list[dict]) -> dict[str, str]:
    """Every gold model (and the replay step of an incremental build) rendered for this engine and config."""
    context = context_of(ctx)
    sql = {m["name"]: render(f"gold/{m['name']}", ctx.engine, **context) for m in declared}
    sql[incremental.REPLAY_TABLE] = render(f"gold/{incremental.REPLAY_TABLE}", ctx.engine, **context)
    return sql


def _build_full(ctx: RunContext, declared: list[dict], sql: dict[str, str], root: Path) -> incremental.Built:
    """Every model from all of silver; the intermediate steps kept by the engine, never written."""
    ctx.engine.read_parquet("silver_events", silver.current_files(ctx), silver.silver_schema(ctx), partitioned=True)
    steps = []
    for model in declared:
        if not model.get("publish", True):
            with ctx.profile.step(model["name"], "gold"):
                ctx.engine.materialize(model["name"], sql[model["name"]])
            steps.append(model)
        else:
            build_model(ctx, "gold", model["name"], sql[model["name"]], root,
                        partition_by_week=model.get("partition_by_week"))
    return incremental.Built(untested_steps=steps)


def _test(ctx: RunContext, declared: list[dict], built: incremental.Built, root: Path,
          previous: dict | None) -> tuple[list[dict], list[str]]:
    """Run the data tests: the intermediate steps' first, then release them (on Spark the driver's memory
    holds them, which the star's tests need), then the star's. Returns the results and the tables tested on
    their changed rows alone."""
    engine, severity = ctx.engine, ctx.config.quality.gold_tests
    results = run_tests(engine, [query for model in built.untested_steps
                                 for query in compile_tests(model["name"], model.get("tests", []), engine)], severity)
    for model in declared:
        if not model.get("publish", True):
            engine.drop(model["name"])
    published = [m for m in declared if m.get("publish", True)]
    # After a build whose tests all passed, a table rewritten only in part is tested on what changed.
    tested_before = previous is not None and previous.get("tests_passed") is True
    deltas = incremental.gold_deltas(ctx, published, built.merged, root) if tested_before else {}
    tests = [query for model in published
             for query in compile_tests(model["name"], model.get("tests", []), engine, deltas.get(model["name"]))]
    results += run_tests(engine, tests, severity)
    for delta in deltas.values():
        for view in (delta.changed, delta.kept, *delta.published.values()):
            engine.drop(view)
    return results, sorted(deltas)


def _publish(ctx: RunContext, root: Path, previous: dict | None, build: dict) -> None:
    for name in ["silver_batch", "silver_earlier", "silver_new_runs", "silver_earlier_files", "silver_run_changes",
                 "silver_rewritten", incremental.AFFECTED_USERS, incremental.REPLAY_TABLE]:
        ctx.engine.drop(name)
    incremental.write_manifest(root, {"build_id": ctx.run_id,
                                      "previous_build_id": previous["build_id"] if previous else None, **build})
    storage.publish_table(root, ctx.layout.gold)


def _plan(ctx: RunContext, previous: dict | None, fingerprint: str, silver_runs: list[str]) -> Plan:
    """How to build: in full, incrementally, or not at all (the star is current), and why."""
    full = BuildMode.FULL
    if ctx.full_refresh:
        return Plan(full, silver_runs, "full refresh requested")
    if previous is None:
        return Plan(full, silver_runs, "no gold build yet")
    if previous.get("fingerprint") != fingerprint:
        return Plan(full, silver_runs, "the engine, the models or the config they use changed since the last build")
    missing = [m["name"] for m in models() if m.get("publish", True) and not storage.parquet_files(
        ctx.layout.gold / m["name"])]
    if missing:
        return Plan(full, silver_runs, f"published table(s) missing: {', '.join(missing)}")
    if previous.get("is_empty"):  # its tables are one empty file each, not stored by week: nothing to merge into
        return Plan(full, silver_runs, "the published star is empty")
    built = set(previous.get("silver_runs", []))
    if not built <= set(silver_runs):
        return Plan(full, silver_runs, "silver batches the last build used are gone")
    new_runs = sorted(set(silver_runs) - built)
    if not new_runs:
        return Plan(BuildMode.CURRENT, [], f"already built from all {len(silver_runs)} silver batch(es)")
    return Plan(BuildMode.INCREMENTAL, new_runs, f"{len(new_runs)} new silver batch(es) since build "
                                                 f"{previous['build_id']}")


def _current(ctx: RunContext, previous: dict, started: float) -> dict[str, int]:
    """Nothing new in silver: the published star stands; its tests passed when it was built. Its row counts come
    from the files' footers: a run with nothing new does not start the engine (Spark's Java) for them."""
    counts = {m["name"]: storage.row_count(ctx.layout.gold / m["name"]) for m in models() if m.get("publish", True)}
    ctx.record.gold = {"mode": BuildMode.CURRENT.value, "build_id": previous["build_id"], "row_counts": counts,
                           "seconds": round(time.perf_counter() - started, 3)}
    return counts
