"""Gold: the star schema rebuilt from all of silver, checked, then published table by table."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from clickstream import bronze, incremental, silver, storage
from clickstream.build import build_model
from clickstream.context import QualityGateError, RunContext
from clickstream.quality import Delta, compile_tests, run_tests
from clickstream.schema import SILVER
from clickstream.sql import in_list, load_yaml, render

log = logging.getLogger(__name__)

# The product key of events that have no product: the 'not applicable' member of dim_products. Empty, as
# silver turns an empty product id into NULL, so no real product can ever have this key.
NO_PRODUCT_KEY = ""


def model_context(ctx: RunContext) -> dict:
    """The parameters the gold and analytics models are rendered with, all from config."""
    rules, analytics = ctx.config.silver, ctx.config.analytics
    steps = analytics.funnel.steps
    known = sorted(set(rules.product_event_types) | set(rules.purchase_event_types) | set(steps))
    return {
        "timeout_us": int(round(ctx.config.gold.session_timeout_minutes * 60 * 1_000_000)),
        "no_product_key": NO_PRODUCT_KEY,
        "product_event_types": rules.product_event_types,
        "purchase_event_types": rules.purchase_event_types,
        "known_event_types": known,
        "funnel": steps,  # dim_event_types numbers the funnel's steps
        "funnel_window_us": analytics.funnel.window_seconds * 1_000_000,
        "funnel_scope": analytics.funnel.scope,
        "funnel_breakdown": analytics.funnel.breakdown,
        "retention": analytics.retention,
        "path_steps": analytics.paths.steps,
        "cart_window_us": analytics.cart.window_seconds * 1_000_000,
        "rank_by": analytics.top_products.rank_by,
        "top_n": analytics.top_n,
        "segments": analytics.segments,
        "path_length": analytics.path_length,
        "incremental": False,  # True only where a per-user model is rendered for an incremental build
        # no raw file ever held chr(31): no id can, and key_of needs no check for it
        "may_hold_unit_separator": bronze.may_hold_unit_separator(bronze.load_manifest(ctx)),
    }


def models() -> list[dict]:
    return load_yaml("gold/models.yml")["models"]


def run(ctx: RunContext) -> dict[str, int]:
    """Bring gold up to date with silver; publish it only if every failing-severity test passes.

    A full build renders every model from all of silver. When the published star was built by the same
    SQL from silver batches that are all still there, only the new batches' users are rebuilt (scoped
    models) and merged in; the other models are rebuilt from the merged tables.
    """
    started = time.perf_counter()
    engine, layout = ctx.engine, ctx.layout
    context = model_context(ctx)
    declared = models()
    sql = {m["name"]: render(f"gold/{m['name']}", engine, **context) for m in declared}
    sql[incremental.REPLAY_TABLE] = render(f"gold/{incremental.REPLAY_TABLE}", engine, **context)
    fingerprint = incremental.fingerprint(engine, sql, declared)
    silver_state = silver.load_state(ctx)
    silver.recover(ctx, silver_state)  # a silver run interrupted after its commit: its replaced files go now
    silver_runs = sorted(silver_state["runs"])
    if not silver.current_files(ctx):  # every line so far refused, quarantined or a duplicate: nothing to build
        log.warning("gold: silver holds no events yet, so there is no star to build (see %s for where the rows "
                    "went)", layout.reports / "quality_report.json")
        ctx.quality["gold"] = {"mode": "empty", "row_counts": {}}
        return {}
    previous = incremental.read_manifest(layout.gold)
    mode, new_runs, reason = _plan(ctx, previous, fingerprint, silver_runs)
    log.info("gold: %s build (%s)", mode, reason)
    if mode == "current":
        return _current(ctx, previous, started)

    engine.read_parquet("silver_events", silver.current_files(ctx), SILVER, partitioned=True)
    root = storage.staging_path(layout.data_dir, "gold")  # staged and published as one directory
    root.mkdir(parents=True)
    published = [m for m in declared if m.get("publish", True)]
    steps = [m for m in declared if not m.get("publish", True)]  # kept by the engine for the models after them
    removals = False
    if mode == "full":
        results: list[dict] = []
        merged: dict[str, dict] = {}
        for model in declared:
            if model in steps:  # never written
                engine.materialize(model["name"], sql[model["name"]])
            else:
                build_model(ctx, "gold", model["name"], sql[model["name"]], root,
                            partition_by_week=model.get("partition_by_week"))
        tested_steps = steps
    else:  # a scoped step is tested while it is built, on the cut-down input it read
        results, merged, removals = _build_incremental(ctx, declared, sql, root, new_runs, silver_state)
        tested_steps = []

    # The intermediate steps are tested first and then released: on Spark they are kept in the driver's
    # memory, which the star's tests need (2 runs each at 2M rows: 19 and 23 s with them kept, 16 and 22 s without).
    severity = ctx.config.quality.gold_tests
    results += run_tests(engine, [query for model in tested_steps
                                  for query in compile_tests(model["name"], model.get("tests", []), engine)], severity)
    for model in steps:
        engine.drop(model["name"])
    # After a build whose tests all passed, a table rewritten only in part is tested on what changed.
    deltas = _deltas(ctx, published, merged, root) if previous and previous.get("tests_passed") is True else {}
    tests = [query for model in published
             for query in compile_tests(model["name"], model.get("tests", []), engine, deltas.get(model["name"]))]
    results += run_tests(engine, tests, severity)
    for delta in deltas.values():
        for view in (delta.changed, delta.kept, *delta.published.values()):
            engine.drop(view)
    counts = engine.row_counts(["silver_events", *(m["name"] for m in published)])
    for table, count in counts.items():
        log.info("gold cardinality: %s rows=%d", table, count)
    ctx.quality["gold"] = {"mode": mode, "reason": reason, "new_silver_batches": new_runs, "merged": merged,
                           "tested_on_changed_rows": sorted(deltas), "tests": results, "row_counts": counts}
    failed = [r["test"] for r in results if r["status"] == "fail"]
    if failed:
        storage.clear_staging(layout.data_dir)
        raise QualityGateError(f"gold: {len(failed)} data test(s) failed: {', '.join(failed)} (nothing published)")

    for name in ["silver_batch", "silver_earlier", "silver_new_runs", "silver_earlier_files", "silver_run_changes",
                 "silver_rewritten",
                 incremental.SCOPE_TABLE, incremental.REPLAY_TABLE]:
        engine.drop(name)
    incremental.write_manifest(root, {
        "build_id": ctx.run_id, "previous_build_id": previous["build_id"] if previous else None, "mode": mode,
        "silver_runs": silver_runs, "fingerprint": fingerprint, "removals": removals,
        "tests_passed": all(r["status"] == "pass" for r in results)})
    storage.publish_table(root, layout.gold)
    elapsed = time.perf_counter() - started
    ctx.quality["gold"]["seconds"] = round(elapsed, 3)
    log.info("gold: %s build of %d tables, %d events in the fact, in %.2f s", mode, len(published),
             counts.get("fct_events", 0), elapsed)
    return counts


def _build_incremental(ctx: RunContext, declared: list[dict], sql: dict[str, str], root: Path,
                       new_runs: list[str], silver_state: dict) -> tuple[list[dict], dict[str, dict], bool]:
    """Rebuild the scoped models for the users of `new_runs`, merge them, then rebuild the other models.

    The scoped models run in their declared order, each over its inputs cut down to what can change: the
    silver events of the replayed visits (`replay_sessions.sql`), or a merged table's rows of the users in
    scope. Each published one is merged as soon as it is built. Returns the results of the tests already
    run (the intermediate models', against their cut-down input), per merged table what was rewritten, and
    whether events left silver since the last build (a file replaced by a new version).
    """
    engine, layout = ctx.engine, ctx.layout
    batch_files = storage.batch_files(layout.silver, set(new_runs))
    removals = any("superseded" in silver_state["runs"][run] for run in new_runs)
    if not removals:
        engine.read_parquet("silver_batch", batch_files, SILVER, partitioned=True)
        users = incremental.register_scope(engine, "select user_id as scope_key, event_ts as first_new_ts "
                                                   "from silver_batch")
    else:
        # The new runs' files also hold rows of earlier batches that a replaced file version made them write
        # again: new to gold are only the rows of their own batches and the copies they promoted. The events
        # they removed change their users from their time on, like new ones.
        new_batches = sorted({b for run in new_runs for b in silver_state["runs"][run]["bronze_batches"]})
        engine.read_parquet("silver_new_runs", batch_files, SILVER, partitioned=True)
        changes = storage.batch_files(silver.changes_dir(ctx), set(new_runs))
        engine.read_parquet("silver_run_changes", changes, silver.CHANGES_SCHEMA)
        is_new = (f"(batch_id in {in_list(new_batches, engine)} or event_id in (select event_id from "
                  f"silver_run_changes where change = 'promoted'))")
        engine.create_view("silver_batch", f"select * from silver_new_runs where {is_new}")
        engine.create_view("silver_rewritten", f"select * from silver_new_runs where not {is_new}")
        users = incremental.register_scope(engine, "select user_id as scope_key, event_ts as first_new_ts from "
                                                   "silver_batch union all select user_id, event_ts from "
                                                   "silver_run_changes where change = 'removed'")
    # the published visits: the table of the model built from the replayed ones
    visits = next(m["name"] for m in declared if "replayed" in m)
    engine.read_parquet("published_sessions", storage.parquet_files(layout.gold / visits), schema=None)
    engine.materialize(incremental.REPLAY_TABLE, sql[incremental.REPLAY_TABLE])
    engine.drop("published_sessions")
    _, rows = engine.fetch(f"select count(*), count(case when reads_published then 1 end) "
                           f"from {incremental.REPLAY_TABLE}")
    replayed, reading_published = rows[0]
    log.info("gold: %d user(s) in %d new silver batch(es) to rebuild; %d supplied session(s) to sessionize again, "
             "%d of them with published events", users, len(new_runs), replayed, reading_published)
    # The scoped models read only the events they sessionize again, under the name the models expect: those
    # of the new batches, and those published before only if a replayed session holds any.
    replayed_events = ("select silver.* from {source} silver join " + incremental.REPLAY_TABLE + " replay "
                       "on silver.user_id = replay.user_id and silver.session_id is not distinct from "
                       "replay.session_id where silver.event_ts >= replay.replay_from{condition}")
    events = replayed_events.format(source="silver_batch", condition="")
    if reading_published:
        earlier = sorted(set(silver.current_files(ctx)) - set(batch_files))
        if not removals:
            engine.read_parquet("silver_earlier", earlier, SILVER, partitioned=True)
        else:
            engine.read_parquet("silver_earlier_files", earlier, SILVER, partitioned=True)
            engine.create_view("silver_earlier", "select * from silver_earlier_files union all "
                                                 "select * from silver_rewritten")
        events += " union all " + replayed_events.format(source="silver_earlier",
                                                         condition=" and replay.reads_published")
    engine.create_view("silver_events", events)
    results: list[dict] = []
    merged: dict[str, dict] = {}
    scratch = storage.staging_path(layout.data_dir, "gold-weeks")
    for model in declared:
        spec = incremental.scoped(model)
        if spec is None:
            continue
        engine.materialize(spec.name, sql[spec.name])
        if not model.get("publish", True):  # checked now, while its input is still the cut-down one
            results += run_tests(engine, compile_tests(spec.name, model.get("tests", []), engine),
                                 ctx.config.quality.gold_tests)
            continue
        merged[spec.name] = incremental.merge(engine, spec, layout.gold / spec.name, root / spec.name, scratch,
                                              removals)
        engine.drop(spec.name)
        engine.read_parquet(f"{spec.name}__merged", storage.parquet_files(root / spec.name), schema=None)
        engine.create_view(spec.name, f"select * from {spec.name}__merged where {spec.scope} in "
                                      f"(select scope_key from {incremental.SCOPE_TABLE})")
        log.info("gold: %s merged (%s)", spec.name, incremental.describe(merged[spec.name]))
    engine.read_parquet("silver_events", silver.current_files(ctx), SILVER, partitioned=True)
    for name in merged:  # the whole tables again, for the other models and the tests
        engine.drop(name)
        engine.read_parquet(name, storage.parquet_files(root / name), schema=None)
        engine.drop(f"{name}__merged")
    for model in declared:
        if incremental.scoped(model) is None:
            build_model(ctx, "gold", model["name"], sql[model["name"]], root)
    engine.write_parquet(incremental.SCOPE_TABLE, root / incremental.SCOPE_DIR)
    return results, merged, removals


def _deltas(ctx: RunContext, checked: list[dict], merged: dict[str, dict], root: Path) -> dict[str, Delta]:
    """The tables of this build rewritten by week, as changed and kept rows, with their parents as published.

    A parent rewritten by week and unique on the key held every key once, so it can have lost one only from
    the weeks it rewrote: the test compares those weeks as published with the rows it wrote, not the whole
    parent.
    """
    engine, layout = ctx.engine, ctx.layout
    weekly = {m["name"]: merged[m["name"]]["weeks_rewritten"] for m in checked
              if merged.get(m["name"], {}).get("weeks_rewritten") is not None}
    views = {name: incremental.register_delta(engine, name, root / name, layout.gold / name) for name in weekly}
    unique = {m["name"]: {t["unique"] for t in m.get("tests", []) if "unique" in t} for m in checked}
    deltas = {}
    for model in checked:
        if model["name"] not in weekly:  # built or merged whole: tested whole
            continue
        published, current = {}, {}
        for test in model.get("tests", []):
            if "relationships" not in test:
                continue
            parent, key = test["relationships"]["to"], test["relationships"]["field"]
            view, files = f"{parent}__published", storage.parquet_files(layout.gold / parent)
            if parent in weekly and key in unique.get(parent, set()):
                folders = {f"{incremental.PERIOD}={week}" for week in weekly[parent]}
                files = [f for f in files if f.parent.name in folders]
                current[parent] = views[parent][0]
            if files:
                engine.read_parquet(view, files, schema=None)
            else:
                engine.create_view(view, f"select * from {parent} where 1 = 0")
            published[parent] = view
        deltas[model["name"]] = Delta(*views[model["name"]], published, current)
    if deltas:
        log.info("gold: tested on the rows this build rewrote and their links to the rest: %s", ", ".join(deltas))
    return deltas


def _plan(ctx: RunContext, previous: dict | None, fingerprint: str,
          silver_runs: list[str]) -> tuple[str, list[str], str]:
    """(full | incremental | current, the silver batches to add, why)."""
    if ctx.full_refresh:
        return "full", silver_runs, "full refresh requested"
    if previous is None:
        return "full", silver_runs, "no gold build yet"
    if previous.get("fingerprint") != fingerprint:
        return "full", silver_runs, "the engine, the models or the config they use changed since the last build"
    missing = [m["name"] for m in models() if m.get("publish", True) and not storage.parquet_files(
        ctx.layout.gold / m["name"])]
    if missing:
        return "full", silver_runs, f"published table(s) missing: {', '.join(missing)}"
    built = set(previous.get("silver_runs", []))
    if not built <= set(silver_runs):
        return "full", silver_runs, "silver batches the last build used are gone"
    new_runs = sorted(set(silver_runs) - built)
    if not new_runs:
        return "current", [], f"already built from all {len(silver_runs)} silver batch(es)"
    return "incremental", new_runs, f"{len(new_runs)} new silver batch(es) since build {previous['build_id']}"


def _current(ctx: RunContext, previous: dict, started: float) -> dict[str, int]:
    """Nothing new in silver: the published star stands; its tests passed when it was built."""
    engine, layout = ctx.engine, ctx.layout
    names = [m["name"] for m in models() if m.get("publish", True)]
    for name in names:
        engine.read_parquet(name, storage.parquet_files(layout.gold / name), schema=None)
    counts = engine.row_counts(names)
    for name in names:
        engine.drop(name)
    ctx.quality["gold"] = {"mode": "current", "build_id": previous["build_id"], "row_counts": counts,
                           "seconds": round(time.perf_counter() - started, 3)}
    return counts
