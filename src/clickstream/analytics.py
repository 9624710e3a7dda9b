"""Analytics: the business questions answered from the gold star schema, written as tables and shown."""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clickstream import declarations, gold, incremental, quality, storage
from clickstream.build import build_model
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


def queries(group: str = "all") -> list[dict]:
    """The queries of one group (basic, advanced) or all of them, in their declared order."""
    return [q for q in declarations.analytics_queries() if group == "all" or q["group"] == group]


def natural_order(query: dict, columns: list[str]) -> str:
    """The ORDER BY clause of a query's declared natural order (empty for a one-row table).

    A plain column name the table does not have is skipped: a funnel without a breakdown has no breakdown_value.
    """
    terms = [term for term in query["order_by"]
             if not (re.fullmatch(r"\w+", term) and term not in columns)]
    return f" order by {', '.join(terms)}" if terms else ""


def write_csv_copy(engine: Engine, name: str, order: str, path: Path) -> None:
    """The CSV copy of table `name`, for people: in its natural order, each text cell a spreadsheet would read
    as a formula neutralised (sql.spreadsheet_safe); numbers stay numbers."""
    text = set(engine.text_columns(name))
    columns, _ = engine.fetch(f"select * from {name} limit 0")
    cells = ", ".join(f"{spreadsheet_safe(engine.quote_identifier(c), engine)} as {engine.quote_identifier(c)}"
                      if c in text else engine.quote_identifier(c) for c in columns)
    ordered = f"{name}__ordered"
    engine.create_view(ordered, f"select {cells} from {name}{order}")
    engine.write_csv(ordered, path)
    engine.drop(ordered)


def run(ctx: RunContext) -> list[QueryResult]:
    started = time.perf_counter()
    engine, layout = ctx.engine, ctx.layout
    for model in gold.models():
        if model.get("publish", True):
            files = storage.parquet_files(layout.gold / model["name"])
            if not files:
                raise PipelineError(f"analytics: gold table {layout.gold / model['name']} not found; run the gold "
                                    f"layer first (clickstream gold)")
            engine.read_parquet(model["name"], files, schema=None)
    context = gold.model_context(ctx)
    show = ctx.config.analytics.show_rows
    selected = queries(ctx.analytics_group)
    gold_build = incremental.read_manifest(layout.gold) or {}
    previous = (incremental.read_manifest(layout.analytics) or {}).get("queries", {})
    built: dict[str, dict] = {}
    # Staged and published as one directory, like gold; a partial run carries the other results over.
    root = storage.staging_path(layout.data_dir, "analytics")
    root.mkdir(parents=True)
    results = []
    for query in selected:
        name = query["name"]
        sql = {name: render(f"analytics/{name}", engine, **context)}
        spec = incremental.per_user_model(query)
        if spec:  # and the SQL that rebuilds it for the affected users
            sql["incremental"] = render(f"analytics/{name}", engine, **{**context, "incremental": True})
        fingerprint = incremental.fingerprint(engine, sql, query)
        changes = _changed_users(ctx, name, previous.get(name), gold_build, fingerprint) if spec else None
        if changes is None:
            build_model(ctx, "analytics", name, sql[name], root, partition_by_week=query.get("partition_by_week"))
        else:
            _build_per_user(ctx, spec, sql["incremental"], changes, root)
        built[name] = {"gold_build_id": gold_build.get("build_id"), "fingerprint": fingerprint,
                       "mode": "full" if changes is None else "incremental"}
        columns, _ = engine.fetch(f"select * from {name} limit 0")
        order = natural_order(query, columns)
        # the first rows in the table's natural order: the same rows on every engine
        columns, rows = engine.fetch(f"select * from {name}{order} limit {show}") if show else ([], [])
        results.append(QueryResult(name, query["title"], first_comment_line(f"analytics/{name}"), columns, rows, 0))
        if query["csv"]:
            write_csv_copy(engine, name, order, root / f"{name}.csv")
    counts = engine.row_counts([q["name"] for q in selected])
    flags = quality.analytics_flags(engine, ctx.config.analytics, {q["name"] for q in selected})
    cautions = {table: flag["message"] for flag in flags for table in flag["tables"]}
    results = [QueryResult(r.name, r.title, r.description + (f". Caution: {cautions[r.name]}" if r.name in cautions
                                                             else ""), r.columns, r.rows, counts[r.name])
               for r in results]
    for query in selected:
        log.info("analytics: %s rows=%d (%s)", query["name"], counts[query["name"]], built[query["name"]]["mode"])
    rebuilt = {q["name"] for q in selected}
    storage.carry_over(layout.analytics, root, keep=lambda path: path.name.split(".")[0] not in rebuilt
                       and path.name not in (REPORT, incremental.MANIFEST))
    events = engine.row_counts(["fct_events"])["fct_events"]
    (root / REPORT).write_text(markdown_report(results, ctx.run_id, events), encoding="utf-8")
    carried = {name: entry for name, entry in previous.items() if name not in rebuilt}
    incremental.write_manifest(root, {"queries": {**carried, **built}})
    storage.publish_table(root, layout.analytics)
    elapsed = time.perf_counter() - started
    ctx.quality["analytics"] = {"row_counts": counts, "modes": {n: b["mode"] for n, b in built.items()},
                                "flags": flags, "seconds": round(elapsed, 3)}
    log.info("analytics: %d queries in %.2f s", len(selected), elapsed)
    return results


def _changed_users(ctx: RunContext, name: str, previous: dict | None, gold_build: dict,
                   fingerprint: str) -> str | None:
    """How to rebuild a per-user query: None for from scratch, else what tells of the users to rebuild (the
    `changes` of `incremental.register_affected_users`).

    Incremental only when the published result was built by the same SQL from the gold build this one
    follows (or from this very build: then no user changed), and that build recorded whom it changed.
    """
    if ctx.full_refresh or not previous or previous.get("fingerprint") != fingerprint:
        return None
    if not storage.parquet_files(ctx.layout.analytics / name):
        return None
    if previous.get("gold_build_id") == gold_build.get("build_id"):
        return "none"
    affected = storage.parquet_files(ctx.layout.gold / incremental.AFFECTED_USERS_DIR)
    if gold_build.get("mode") == "incremental" and previous.get("gold_build_id") == gold_build.get(
            "previous_build_id") and affected:
        ctx.engine.read_parquet(incremental.PUBLISHED_AFFECTED_USERS, affected, schema=None)
        return "gold"
    return None


def _build_per_user(ctx: RunContext, spec: incremental.PerUserModel, sql: str, changes: str, root: Path) -> None:
    """Rebuild a per-user query for the users gold changed and merge it into the published result.

    `sql` is the query rendered for an incremental build: it reads `affected_users` and gives each user's rows
    from their first new event on (the ones `incremental.merge` replaces).
    """
    engine, layout = ctx.engine, ctx.layout
    incremental.register_affected_users(engine, changes)
    engine.drop(incremental.PUBLISHED_AFFECTED_USERS)
    name = spec.name
    # The query reads the fact under its usual name: for the moment, only the rows of the affected users.
    fact = storage.parquet_files(layout.gold / "fct_events")
    engine.read_parquet("fct_events__all", fact, schema=None)
    incremental.register_affected_rows(engine, "fct_events", "fct_events__all", "user_key")
    engine.materialize(name, sql)
    engine.read_parquet("fct_events", fact, schema=None)
    engine.drop("fct_events__all")
    scratch = storage.staging_path(layout.data_dir, f"{name}-weeks")
    removals = bool((incremental.read_manifest(layout.gold) or {}).get("removals"))
    summary = incremental.merge(engine, spec, layout.analytics / name, root / name, scratch, removals)
    engine.drop(name)
    engine.drop(incremental.AFFECTED_USERS)
    engine.read_parquet(name, storage.parquet_files(root / name), schema=None)
    log.info("analytics: %s merged for the users gold changed (%s)", name, incremental.describe(summary))
