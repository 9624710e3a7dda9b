"""Data quality: thresholds that warn or fail, the data tests declared beside the models, the JSON report."""
from __future__ import annotations

import logging
from typing import Any

from clickstream import storage
from clickstream.config import Threshold
from clickstream.context import RunContext
from clickstream.engines.base import Engine
from clickstream.sql import _in_list

log = logging.getLogger(__name__)

REPORT = "quality_report.json"


def check_threshold(name: str, count: int, total: int, threshold: Threshold) -> dict[str, Any]:
    """`count / total` against a warn and a fail level (the rate of an empty batch is 0)."""
    value = count / total if total else 0.0
    status = "fail" if value > threshold.fail else "warn" if value > threshold.warn else "ok"
    result = {"name": name, "count": count, "total": total, "value": value, "warn": threshold.warn,
              "fail": threshold.fail, "status": status}
    level = logging.ERROR if status == "fail" else logging.WARNING if status == "warn" else logging.INFO
    log.log(level, "quality %s = %.4f (%d of %d; warn above %.4f, fail above %.4f): %s", name, value, count, total,
            threshold.warn, threshold.fail, status.upper())
    return result


def compile_test(model: str, test: dict[str, Any]) -> list[tuple[str, str]]:
    """One declared test as (name, SQL returning the number of failing rows as `failures`)."""
    if len(test) != 1:
        raise ValueError(f"model {model}: a test is one kind with its arguments, got {test}")
    kind, arg = next(iter(test.items()))
    if kind == "unique":
        return [(f"{model}.unique({arg})",
                 f"select count(*) as failures from (select {arg} from {model} group by {arg} having count(*) > 1) d")]
    if kind == "not_null":
        return [(f"{model}.not_null({column})", f"select count(*) as failures from {model} where {column} is null")
                for column in arg]
    if kind == "relationships":
        column, target, field = arg["column"], arg["to"], arg["field"]
        return [(f"{model}.relationships({column} -> {target}.{field})",
                 f"select count(*) as failures from {model} child left join {target} parent "
                 f"on child.{column} = parent.{field} where child.{column} is not null and parent.{field} is null")]
    if kind == "accepted_values":
        column = arg["column"]
        return [(f"{model}.accepted_values({column})",
                 f"select count(*) as failures from {model} where {column} not in {_in_list(arg['values'])}")]
    if kind == "equal_row_count":
        return [(f"{model}.equal_row_count({arg})",
                 f"select abs((select count(*) from {model}) - (select count(*) from {arg})) as failures")]
    raise ValueError(f"model {model}: unknown test kind '{kind}'")


def run_tests(engine: Engine, tests: list[tuple[str, str]], severity: str) -> list[dict[str, Any]]:
    """Run every test in one query (one scan plan, one engine action) and log each result."""
    if not tests:
        return []
    union = " union all ".join(
        f"select {Engine.quote_literal(name)} as test_name, cast(failures as bigint) as failures from ({sql}) t{i}"
        for i, (name, sql) in enumerate(tests)
    )
    _, rows = engine.fetch(union)
    failures = {name: int(count) for name, count in rows}
    results = []
    for name, _ in tests:
        count = failures[name]
        status = "pass" if count == 0 else severity
        (log.debug if status == "pass" else log.error if status == "fail" else log.warning)(
            "data test %s: %s (%d failing rows)", name, status.upper(), count)
        results.append({"test": name, "failures": count, "status": status})
    passed = sum(r["status"] == "pass" for r in results)
    log.info("data tests: %d passed, %d failed (severity %s)", passed, len(results) - passed, severity)
    return results


def write_report(ctx: RunContext) -> None:
    """The run's quality summary as JSON: the latest one, and one per run for history."""
    report = {"run_id": ctx.run_id, "engine": ctx.engine.name, "started_at": ctx.started_at.isoformat(),
              **ctx.quality}
    storage.write_json(ctx.layout.reports / REPORT, report)
    storage.write_json(ctx.layout.reports / "history" / f"quality_{ctx.run_id}.json", report)
