"""Analytics: the business questions answered from the gold star schema, written as tables and shown."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from clickstream import gold, storage
from clickstream.build import build_model
from clickstream.context import PipelineError, RunContext
from clickstream.report.tables import markdown_report
from clickstream.sql import first_comment_line, load_yaml

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
    declared = load_yaml("analytics/queries.yml")["queries"]
    return [q for q in declared if group == "all" or q["group"] == group]


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
    # Staged and published as one directory, like gold; a partial run carries the other results over.
    root = storage.staging_path(layout.data_dir, "analytics")
    results = []
    for query in selected:
        name = query["name"]
        build_model(ctx, "analytics", name, context, root)
        columns, rows = engine.fetch(f"select * from {name} limit {show}") if show else ([], [])
        results.append(QueryResult(name, query["title"], first_comment_line(f"analytics/{name}"), columns, rows, 0))
    counts = engine.row_counts([q["name"] for q in selected])
    results = [QueryResult(r.name, r.title, r.description, r.columns, r.rows, counts[r.name]) for r in results]
    for query in selected:
        if query.get("csv", True):
            engine.write_csv(query["name"], root / f"{query['name']}.csv")
        log.info("analytics: %s rows=%d", query["name"], counts[query["name"]])
    rebuilt = {q["name"] for q in selected}
    storage.carry_over(layout.analytics, root, keep=lambda path: path.name.split(".")[0] not in rebuilt
                       and path.name != REPORT)
    (root / REPORT).write_text(markdown_report(results, ctx.run_id), encoding="utf-8")
    storage.publish_table(root, layout.analytics)
    elapsed = time.perf_counter() - started
    ctx.quality["analytics"] = {"row_counts": counts, "seconds": round(elapsed, 3)}
    log.info("analytics: %d queries in %.2f s", len(selected), elapsed)
    return results
