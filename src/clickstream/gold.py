"""Gold: the star schema rebuilt from all of silver, checked, then published table by table."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from clickstream import bronze, declarations, incremental, silver, storage
from clickstream.build import build_model
from clickstream.config import Config
from clickstream.context import QualityGateError, RunContext
from clickstream.quality import Delta, compile_tests, run_tests
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


@dataclass
class Built:
    """What building the models gave, before the star's tests."""

    results: list[dict] = field(default_factory=list)  # tests already run (an incremental build's steps)
    merged: dict[str, dict] = field(default_factory=dict)  # per merged table, the weeks it rewrote and appended
    removals: bool = False  # events left silver since the last build (a file replaced by a new version)
    untested_steps: list[dict] = field(default_factory=list)  # intermediate models still to test


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
        built = _build_incremental(ctx, declared, sql, root, plan.new_runs, silver_state)
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


def _build_full(ctx: RunContext, declared: list[dict], sql: dict[str, str], root: Path) -> Built:
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
    return Built(untested_steps=steps)


def _test(ctx: RunContext, declared: list[dict], built: Built, root: Path,
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
    deltas = _deltas(ctx, published, built.merged, root) if previous and previous.get("tests_passed") is True \
        else {}
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


def _build_incremental(ctx: RunContext, declared: list[dict], sql: dict[str, str], root: Path,
                       new_runs: list[str], silver_state: dict) -> Built:
    """Rebuild the per-user models for the users of `new_runs`, merge them, then rebuild the other models.

    The per-user models run in their declared order, each over its inputs cut down to what can change: the
    silver events of the replayed visits (`replay_sessions.sql`, `replayed_events.sql`), or a merged table's
    rows of the affected users. Each published one is merged as soon as it is built. The intermediate ones
    are tested then, against their cut-down input.
    """
    removals = any("superseded" in silver_state["runs"][run] for run in new_runs)
    batch_files = _register_new_events(ctx, new_runs, silver_state, removals)
    reads_published = _replay(ctx, declared, sql, new_runs)
    if reads_published:
        _register_published_events(ctx, batch_files, removals)
    ctx.engine.create_view("silver_events", render("gold/replayed_events", ctx.engine,
                                                   reads_published=reads_published))
    built = Built(removals=removals)
    _merge_per_user_models(ctx, declared, sql, root, built)
    ctx.engine.read_parquet("silver_events", silver.current_files(ctx), silver.silver_schema(ctx), partitioned=True)
    for name in built.merged:  # the whole tables again, for the other models and the tests
        ctx.engine.drop(name)
        ctx.engine.read_parquet(name, storage.parquet_files(root / name), schema=None)
        ctx.engine.drop(f"{name}__merged")
    for model in declared:
        if incremental.per_user_model(model) is None:
            build_model(ctx, "gold", model["name"], sql[model["name"]], root)
    ctx.engine.write_parquet(incremental.AFFECTED_USERS, root / incremental.AFFECTED_USERS_DIR)
    return built


def _register_new_events(ctx: RunContext, new_runs: list[str], silver_state: dict, removals: bool) -> list[Path]:
    """`silver_batch`: the events new to gold; and the affected users, each with the time from which their rows
    can change (their first new event, or an event that left silver). Returns the new runs' files."""
    engine = ctx.engine
    batch_files = storage.batch_files(ctx.layout.silver, set(new_runs))
    if not removals:
        engine.read_parquet("silver_batch", batch_files, silver.silver_schema(ctx), partitioned=True)
        incremental.register_affected_users(engine, "silver")
        return batch_files
    new_batches = sorted({b for run in new_runs for b in silver_state["runs"][run]["bronze_batches"]})
    engine.read_parquet("silver_new_runs", batch_files, silver.silver_schema(ctx), partitioned=True)
    engine.read_parquet("silver_run_changes", storage.batch_files(silver.changes_dir(ctx), set(new_runs)),
                        silver.CHANGES_SCHEMA)
    engine.create_view("silver_batch", render("gold/new_silver_events", engine, new=True, new_batches=new_batches))
    engine.create_view("silver_rewritten", render("gold/new_silver_events", engine, new=False,
                                                  new_batches=new_batches))
    incremental.register_affected_users(engine, "silver", removals=True)
    return batch_files


def _replay(ctx: RunContext, declared: list[dict], sql: dict[str, str], new_runs: list[str]) -> bool:
    """Decide which supplied sessions to sessionize again, and from when (replay_sessions.sql); returns whether
    any of them holds published events from then on."""
    engine = ctx.engine
    visits = next(m["name"] for m in declared if "replayed" in m)  # the model built from the replayed visits
    engine.read_parquet("published_sessions", storage.parquet_files(ctx.layout.gold / visits), schema=None)
    engine.materialize(incremental.REPLAY_TABLE, sql[incremental.REPLAY_TABLE])
    engine.drop("published_sessions")
    _, rows = engine.fetch(render("incremental/replay_counts", engine, replay_table=incremental.REPLAY_TABLE))
    replayed, reading_published = rows[0]
    users = engine.row_counts([incremental.AFFECTED_USERS])[incremental.AFFECTED_USERS]
    log.info("gold: %d user(s) in %d new silver batch(es) to rebuild; %d supplied session(s) to sessionize again, "
             "%d of them with published events", users, len(new_runs), replayed, reading_published)
    return reading_published > 0


def _register_published_events(ctx: RunContext, batch_files: list[Path], removals: bool) -> None:
    """`silver_earlier`: the events published before, for the replayed sessions that hold some."""
    earlier = sorted(set(silver.current_files(ctx)) - set(batch_files))
    if not removals:
        ctx.engine.read_parquet("silver_earlier", earlier, silver.silver_schema(ctx), partitioned=True)
        return
    ctx.engine.read_parquet("silver_earlier_files", earlier, silver.silver_schema(ctx), partitioned=True)
    ctx.engine.create_union_view("silver_earlier", ["silver_earlier_files", "silver_rewritten"])


def _merge_per_user_models(ctx: RunContext, declared: list[dict], sql: dict[str, str], root: Path,
                           built: Built) -> None:
    engine, layout = ctx.engine, ctx.layout
    scratch = storage.staging_path(layout.data_dir, "gold-weeks")
    for model in declared:
        spec = incremental.per_user_model(model)
        if spec is None:
            continue
        with ctx.profile.step(spec.name, "gold"):
            engine.materialize(spec.name, sql[spec.name])
            if not model.get("publish", True):  # checked now, while its input is still the cut-down one
                built.results += run_tests(engine, compile_tests(spec.name, model.get("tests", []), engine),
                                           ctx.config.quality.gold_tests)
                continue
            built.merged[spec.name] = incremental.merge(engine, spec, layout.gold / spec.name, root / spec.name,
                                                        scratch, built.removals)
        engine.drop(spec.name)
        engine.read_parquet(f"{spec.name}__merged", storage.parquet_files(root / spec.name), schema=None)
        incremental.register_affected_rows(engine, spec.name, f"{spec.name}__merged", spec.user_column)
        log.info("gold: %s merged (%s)", spec.name, incremental.describe(built.merged[spec.name]))


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
                engine.create_empty_like(view, parent)
            published[parent] = view
        deltas[model["name"]] = Delta(*views[model["name"]], published, current)
    if deltas:
        log.info("gold: tested on the rows this build rewrote and their links to the rest: %s", ", ".join(deltas))
    return deltas


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
    """Nothing new in silver: the published star stands; its tests passed when it was built."""
    engine, layout = ctx.engine, ctx.layout
    names = [m["name"] for m in models() if m.get("publish", True)]
    for name in names:
        engine.read_parquet(name, storage.parquet_files(layout.gold / name), schema=None)
    counts = engine.row_counts(names)
    for name in names:
        engine.drop(name)
    ctx.record.gold = {"mode": BuildMode.CURRENT.value, "build_id": previous["build_id"], "row_counts": counts,
                           "seconds": round(time.perf_counter() - started, 3)}
    return counts
