"""Analytics: the business questions answered from the gold star schema, written as tables and shown."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clickstream import catalog, churn, declarations, gold, incremental, predictive, quality, storage
from clickstream.build import build_model
from clickstream.config import Config
from clickstream.context import PipelineError, RunContext
from clickstream.engines.base import Engine
from clickstream.report.tables import markdown_report
from clickstream.sql import first_comment_line, render, spreadsheet_safe

log = logging.getLogger(__name__)

REPORT = "REPORT.md"


@dataclass(frozen=True)
class QueryResult:
    name: str
    title: str
    description: str
    columns: list[str]
    rows: list[tuple[Any, ...]]  # the first rows, for people
    total_rows: int


def model_context(config: Config, may_hold_unit_separator: bool = True) -> dict:
    """What the analytics queries and the predictive features are rendered with, from the config alone: gold's
    parameters (gold.model_context) and the analytics settings."""
    return {**gold.model_context(config, may_hold_unit_separator), **_settings(config)}


def context_of(ctx: RunContext) -> dict:
    """model_context of a run: gold's parameters as gold renders them (gold.context_of), the analytics settings."""
    return {**gold.context_of(ctx), **_settings(ctx.config)}


def _settings(config: Config) -> dict:
    analytics = config.analytics
    return {
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
    }


def queries(group: str = "all", config: Config | None = None) -> list[dict]:
    """The queries of one group (basic, advanced) or all of them, in their declared order; with `config`, only
    those whose needs it meets (revenue_by_attribute needs gold.product_attributes)."""
    return [q for q in declarations.analytics_queries() if (group == "all" or q["group"] == group)
            and (config is None or not q.get("needs") or getattr(config.gold, q["needs"]))]


def natural_order(query: dict, columns: list[str]) -> str:
    """The ORDER BY clause of a query's declared natural order (empty for a one-row table).

    A plain column name the table does not have is skipped: a funnel without a breakdown has no breakdown_value.
    """
    terms = [term for term in query["order_by"]
             if not (re.fullmatch(r"\w+", term) and term not in columns)]
    return f" order by {', '.join(terms)}" if terms else ""


def write_csv_copy(engine: Engine, name: str, columns: list[str], order: str, path: Path) -> None:
    """The CSV copy of table `name` (of `columns`), for people: in its natural order, each text cell a spreadsheet
    would read as a formula neutralised (sql.spreadsheet_safe); numbers stay numbers."""
    text = set(engine.text_columns(name))
    cells = ", ".join(f"{spreadsheet_safe(engine.quote_identifier(c), engine)} as {engine.quote_identifier(c)}"
                      if c in text else engine.quote_identifier(c) for c in columns)
    ordered = f"{name}__ordered"
    engine.create_view(ordered, f"select {cells} from {name}{order}")
    engine.write_csv(ordered, path)
    engine.drop(ordered)


@dataclass(frozen=True)
class Plan:
    """What a run of analytics would answer, and what it would answer it from."""
    selected: list[dict]  # the queries, in their declared order
    fitted: list[predictive.Output]  # the predictive results, after the queries
    context: dict  # what the queries and the predictive features are rendered with (context_of)
    rendered: dict[str, dict[str, str]]  # per query: its SQL (and, per user, the SQL rebuilding affected users)
    fingerprints: dict[str, str]  # per query: what decides its output apart from gold
    settings: str  # what decides every output apart from gold and the SQL: the analytics settings, the engine
    gold_build: dict  # the manifest of the star the results are answered from
    published: dict  # the manifest of the published results


def run(ctx: RunContext) -> list[QueryResult]:
    """Answer the selected queries from the published star and publish them with REPORT.md: each result whole, or
    for the users gold changed; nothing when gold, the SQL and the settings are as when they were published."""
    started = time.perf_counter()
    plan = _plan(ctx)
    if _results_stand(ctx, plan):
        log.info("analytics: gold and the analytics settings are as when the published results were answered "
                 "(gold build %s): nothing to answer again", plan.gold_build.get("build_id"))
        ctx.record.analytics = {"mode": "current", "gold_build_id": plan.gold_build.get("build_id")}
        return _standing_results(ctx, plan) if ctx.show_results else []
    _read_gold(ctx)
    # Staged and published as one directory, like gold; a partial run carries the other results over.
    root = storage.staging_path(ctx.layout.data_dir, "analytics")
    root.mkdir(parents=True)
    built, orders = {}, {}
    standing = _standing(ctx, plan)
    affected = incremental.AffectedFact()
    models = _models_time(ctx, plan) if plan.fitted else None
    with predictive.importing_ahead(models is not None and models.kept is None):
        for query in plan.selected:
            name = query["name"]
            if name in standing:  # read as published (and carried over), not answered again
                ctx.engine.read_parquet(name, storage.parquet_files(ctx.layout.analytics / name), schema=None)
                orders[name] = _columns_and_order(ctx, query)[1]
            else:
                built[name], orders[name] = _answer(ctx, plan, query, root, affected)
        affected.close(ctx.engine)
        if models is not None:
            with ctx.profile.step("predictive models", "analytics"):
                fitted = _fit(ctx, plan, root, models)
                for output in plan.fitted:
                    built[output.name], orders[output.name] = fitted[output.name], _output_order(output)
    with ctx.profile.step("results and flags", "analytics"):
        results, counts, flags = _results(ctx, plan, orders)
    for name, entry in built.items():
        log.info("analytics: %s rows=%d (%s)", name, counts[name], entry["mode"])
    with ctx.profile.step("publish", "analytics"):
        _publish(ctx, plan, root, built, results)
    elapsed = time.perf_counter() - started
    ctx.record.analytics = {"row_counts": counts, "modes": {**{name: "current" for name in standing},
                                                            **{n: b["mode"] for n, b in built.items()}},
                            "flags": flags, "seconds": round(elapsed, 3)}
    due = next((entry["due"] for entry in built.values() if entry.get("due")), None)
    if due:
        ctx.record.analytics["models_due"] = due
    log.info("analytics: %d queries and %d fitted results in %.2f s", len(plan.selected), len(plan.fitted), elapsed)
    return results


def _plan(ctx: RunContext) -> Plan:
    engine = ctx.engine
    context = context_of(ctx)
    selected = queries(ctx.analytics_group, ctx.config)
    fitted = predictive.enabled(ctx.config.analytics) if ctx.analytics_group in ("all", "advanced") else []
    rendered = {q["name"]: _rendered(engine, q, context) for q in selected}
    fingerprints = {q["name"]: incremental.fingerprint(engine, rendered[q["name"]], q) for q in selected}
    if fitted:
        features = predictive.fingerprint(engine, context, ctx.config.analytics)
        fingerprints.update({output.name: features for output in fitted})
    return Plan(selected, fitted, context, rendered, fingerprints, _settings_fingerprint(ctx),
                incremental.read_manifest(ctx.layout.gold) or {}, incremental.read_manifest(ctx.layout.analytics) or {})


def _read_gold(ctx: RunContext) -> None:
    for table in catalog.gold_tables():
        files = storage.parquet_files(table.path(ctx.layout.data_dir))
        if not files:
            raise PipelineError(f"analytics: gold table {table.path(ctx.layout.data_dir)} not found; run the gold "
                                f"layer first (clickstream gold)")
        ctx.engine.read_parquet(table.name, files, schema=None)


def _answer(ctx: RunContext, plan: Plan, query: dict, root: Path,
            affected: incremental.AffectedFact) -> tuple[dict, str]:
    """Build one query's result into `root` (whole, or merged for the users gold changed), with its CSV copy;
    returns its manifest entry and its natural order."""
    name = query["name"]
    sql, fingerprint = plan.rendered[name], plan.fingerprints[name]
    spec = incremental.per_user_model(query)
    previous = plan.published.get("queries", {}).get(name)
    changes = incremental.changed_users(ctx, name, previous, plan.gold_build, fingerprint) if spec else None
    if changes is None:
        build_model(ctx, "analytics", name, sql[name], root, partition_by_week=query.get("partition_by_week"))
    else:
        with ctx.profile.step(name, "analytics"):
            incremental.build_per_user(ctx, spec, sql["incremental"], changes, root, affected)
    columns, order = _columns_and_order(ctx, query)
    if query["csv"]:
        with ctx.profile.step(f"{name}.csv", "analytics"):
            write_csv_copy(ctx.engine, name, columns, order, root / f"{name}.csv")
    return {"gold_build_id": plan.gold_build.get("build_id"), "fingerprint": fingerprint,
            "mode": "full" if changes is None else "incremental"}, order


def _columns_and_order(ctx: RunContext, query: dict) -> tuple[list[str], str]:
    """A built result's columns, and the ORDER BY of its natural order."""
    columns = ctx.engine.columns_of(query["name"])
    return columns, natural_order(query, columns)


def _results(ctx: RunContext, plan: Plan, orders: dict[str, str]) -> tuple[list[QueryResult], dict[str, int],
                                                                          list[dict]]:
    """Each result's first rows in its natural order (`orders`: the same rows on every engine), its row count and
    the cautions of `quality.analytics_flags`, for people."""
    engine, show = ctx.engine, ctx.config.analytics.show_rows
    names = [q["name"] for q in plan.selected] + [output.name for output in plan.fitted]
    counts = engine.row_counts(names)
    flags = quality.analytics_flags(engine, ctx.config.analytics, set(names))
    cautions = {table: flag["message"] for flag in flags for table in flag["tables"]}
    shown = [(q["name"], q["title"], q["name"], first_comment_line(f"analytics/{q['name']}")
              + (f". Caution: {cautions[q['name']]}" if q["name"] in cautions else "")) for q in plan.selected]
    # churn_scores is shown with each user's value and last event (its model in sql/predictive/)
    shown += [(o.name, o.title, f"({render(f'predictive/{o.shown_by}', engine)}) shown" if o.shown_by else o.name,
               o.description) for o in plan.fitted]
    results = []
    for name, title, source, description in shown:
        columns, rows = engine.first_rows(source, orders[name], show) if show else ([], [])
        if name == "churn_model" and rows:
            description += ". " + churn.verdict(dict(zip(columns, rows[0])))
        results.append(QueryResult(name, title, description, columns, rows, counts[name]))
    return results, counts, flags


def _output_order(output: predictive.Output) -> str:
    return natural_order({"order_by": output.order_by}, [c for c, _ in output.schema])


@dataclass(frozen=True)
class _ModelsTime:
    """The events the models see (`predictive.span`), the time they are fitted up to, and the time the published
    models stand at when they are kept (`_standing_models_time`), else None: they are fitted."""
    events: tuple[dt.datetime, dt.datetime] | None
    as_of: str | None
    kept: str | None


def _models_time(ctx: RunContext, plan: Plan) -> _ModelsTime:
    """Whether the models are fitted in this run, decided before the queries (which do not change the star), so
    that their library is imported meanwhile only when they are."""
    with ctx.profile.step("predictive models' time", "analytics"):
        events = predictive.span(ctx.engine, ctx.config.analytics)
        as_of = events[1].isoformat() if events else None
        return _ModelsTime(events, as_of, _standing_models_time(ctx, plan, as_of))


def _fit(ctx: RunContext, plan: Plan, root: Path, models: _ModelsTime) -> dict[str, dict]:
    """Fit the predictive models on the published star, or keep the published ones where no event they see
    changed; write their tables into `root` with their CSV copies; returns each one's manifest entry."""
    engine = ctx.engine
    events, as_of, kept = models.events, models.as_of, models.kept
    if kept is not None:
        storage.carry_over(ctx.layout.analytics, root, keep=lambda path: path.name.split(".")[0] in {
            output.name for output in plan.fitted})
        for output in plan.fitted:
            engine.read_parquet(output.name, storage.parquet_files(root / output.name), schema=None)
        due = {"due": as_of} if kept != as_of else {}
        log.info("analytics: no event up to %s changed: the predictive models stand%s", kept,
                 f" (fitting them up to {as_of} is left for later)" if due else "")
        return {output.name: {**{k: v for k, v in plan.published["queries"][output.name].items() if k != "due"},
                              "gold_build_id": plan.gold_build.get("build_id"), "mode": "current", **due}
                for output in plan.fitted}
    tables = predictive.fit(engine, plan.context, ctx.config.analytics, events)
    entries = {}
    for output in plan.fitted:
        table, columns = tables[output.name], [column for column, _ in output.schema]
        engine.register_rows(output.name, output.schema, list(zip(*(table[c].to_pylist() for c in columns))))
        engine.write_parquet(output.name, root / output.name)
        engine.drop(output.name)
        engine.read_parquet(output.name, storage.parquet_files(root / output.name), schema=None)
        write_csv_copy(engine, output.name, columns, _output_order(output), root / f"{output.name}.csv")
        entries[output.name] = {"gold_build_id": plan.gold_build.get("build_id"),
                                "fingerprint": plan.fingerprints[output.name], "as_of": as_of, "mode": "full"}
        log.info("analytics: %s fitted", output.name)
    return entries


def _standing_models_time(ctx: RunContext, plan: Plan, as_of: str | None) -> str | None:
    """The models' time the published models stand at: `as_of` when they stand there (`_models_stand`); with
    `ctx.models_later`, also the earlier time they were fitted up to when no changed event reaches it (the
    models are then due, not fitted again: `clickstream watch` fits them when no batch waits); else None."""
    if _models_stand(ctx, plan, as_of):
        return as_of
    published = plan.published.get("queries", {})
    times = {(published.get(output.name) or {}).get("as_of") for output in plan.fitted}
    if not ctx.models_later or as_of is None or len(times) != 1 or None in times:
        return None
    (earlier,) = times
    if dt.datetime.fromisoformat(earlier) >= dt.datetime.fromisoformat(as_of):
        return None  # the data's end moved back: models of a later time are never kept
    return earlier if _models_stand(ctx, plan, earlier) else None


def _models_stand(ctx: RunContext, plan: Plan, as_of: str | None) -> bool:
    """Whether the published models were fitted by the same features and settings up to the same time, from the
    gold build this one follows (or this very one), and every event that build added or removed comes after
    that time: then fitting again would give the same tables."""
    published = plan.published.get("queries", {})
    previous = {output.name: published.get(output.name) for output in plan.fitted}
    if as_of is None or any(not entry or entry.get("as_of") != as_of for entry in previous.values()):
        return False
    changes = {incremental.changed_users(ctx, name, entry, plan.gold_build, plan.fingerprints[name])
               for name, entry in previous.items()}
    if changes == {"none"}:
        return True
    stand = False
    if changes == {"gold"}:  # one gold build since: its earliest change must come after the models' time
        earliest = ctx.engine.fetch(render("incremental/earliest_change", ctx.engine))[1][0][0]
        stand = earliest is None or earliest > dt.datetime.fromisoformat(as_of)
    ctx.engine.drop(incremental.PUBLISHED_AFFECTED_USERS)
    return stand


def _standing_results(ctx: RunContext, plan: Plan) -> list[QueryResult]:
    """The published results' first rows, read back (a run with nothing new that was asked to show them)."""
    _read_gold(ctx)  # for the cautions
    for name in [q["name"] for q in plan.selected] + [output.name for output in plan.fitted]:
        ctx.engine.read_parquet(name, storage.parquet_files(ctx.layout.analytics / name), schema=None)
    orders = {q["name"]: _columns_and_order(ctx, q)[1] for q in plan.selected}
    return _results(ctx, plan, {**orders, **{output.name: _output_order(output) for output in plan.fitted}})[0]


def _publish(ctx: RunContext, plan: Plan, root: Path, built: dict[str, dict], results: list[QueryResult]) -> None:
    """REPORT.md and the manifest beside the results; the other queries' results carried over; one rename."""
    layout = ctx.layout
    # a predictive result switched off is not carried over: it would stand stale beside the others
    switched_off = {output.name for output in predictive.OUTPUTS if output not in predictive.enabled(
        ctx.config.analytics)}
    gone = set(built) | switched_off
    storage.carry_over(layout.analytics, root, keep=lambda path: path.name.split(".")[0] not in gone
                       and path.name not in (REPORT, incremental.MANIFEST))
    events = ctx.engine.row_counts(["fct_events"])["fct_events"]
    (root / REPORT).write_text(markdown_report(results, ctx.run_id, events), encoding="utf-8")
    carried = {name: entry for name, entry in plan.published.get("queries", {}).items() if name not in gone}
    incremental.write_manifest(root, {"queries": {**carried, **built}, "settings": plan.settings})
    storage.publish_table(root, layout.analytics)


def _settings_fingerprint(ctx: RunContext) -> str:
    """What decides the published results besides gold and each query's SQL: the analytics settings (rows shown,
    the cautions' thresholds, the page) and the engine."""
    return hashlib.sha256(f"{ctx.engine.name}\0{ctx.config.analytics.model_dump_json()}".encode()).hexdigest()


def _rendered(engine: Any, query: dict, context: dict) -> dict[str, str]:
    """A query's SQL, and for a per-user query also the SQL that rebuilds it for the affected users."""
    name = query["name"]
    sql = {name: render(f"analytics/{name}", engine, **context)}
    if incremental.per_user_model(query):
        sql["incremental"] = render(f"analytics/{name}", engine, **{**context, "incremental": True})
    return sql


def _results_stand(ctx: RunContext, plan: Plan) -> bool:
    """Whether every selected result was answered from this very gold build by the same SQL under the same
    settings, so answering again would write the same tables: then a run changes nothing (no query, no
    REPORT.md, no page)."""
    return all(_stands(ctx, plan, name) for name in plan.fingerprints)


def _standing(ctx: RunContext, plan: Plan) -> set[str]:
    """The first selected queries whose published results stand (`_stands`), up to the first that does not: a
    query may read the ones above it, so every one after a query answered again is answered again too. A run
    that fits models left due, for one, answers nothing else."""
    standing = set()
    for query in plan.selected:
        if not _stands(ctx, plan, query["name"]):
            break
        standing.add(query["name"])
    return standing


def _stands(ctx: RunContext, plan: Plan, name: str) -> bool:
    """Whether the published result `name` was answered from this very gold build by the same SQL under the same
    settings, and is not a model left due."""
    build_id = plan.gold_build.get("build_id")
    if ctx.full_refresh or not build_id or plan.published.get("settings") != plan.settings:
        return False
    entry = plan.published.get("queries", {}).get(name) or {}
    return (entry.get("gold_build_id") == build_id and entry.get("fingerprint") == plan.fingerprints[name]
            and not entry.get("due") and bool(storage.parquet_files(ctx.layout.analytics / name)))
