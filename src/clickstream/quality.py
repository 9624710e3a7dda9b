"""Data quality: thresholds that warn or fail, the data tests declared beside the models, the JSON report."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from clickstream import storage
from clickstream.config import Analytics, Threshold
from clickstream.context import RunContext
from clickstream.engines.base import Engine
from clickstream.sql import render

log = logging.getLogger(__name__)

REPORT = "quality_report.json"


def check_threshold(name: str, count: int, total: int, threshold: Threshold, min_rows: int = 0) -> dict[str, Any]:
    """`count / total` against a warn and a fail level (the rate of an empty batch is 0).

    Fewer than `min_rows` rows judged say little (one repeat in four rows is 25%): above the fail level, such
    a rate only warns.
    """
    value = count / total if total else 0.0
    status = "fail" if value > threshold.fail else "warn" if value > threshold.warn else "ok"
    too_few = status == "fail" and total < min_rows
    if too_few:
        status = "warn"
    result = {"name": name, "count": count, "total": total, "value": value, "warn": threshold.warn,
              "fail": threshold.fail, "status": status}
    if too_few:
        result["note"] = f"above the fail level, but only {total} rows judged (quality.min_rows: {min_rows})"
    level = logging.ERROR if status == "fail" else logging.WARNING if status == "warn" else logging.INFO
    log.log(level, "quality %s = %.4f (%d of %d; warn above %.4f, fail above %.4f): %s%s", name, value, count, total,
            threshold.warn, threshold.fail, status.upper(), f" ({result['note']})" if too_few else "")
    return result


@dataclass(frozen=True)
class Delta:
    """A model an incremental build rewrote only in part, and what the build it extends published.

    `changed` holds the rows of the files the build wrote (a table stored by week: the weeks written again and
    the files appended), `kept` the rows of the files linked unchanged from the last build, and `published`
    names, per parent of a relationship test, the parent as that build published it. Valid only when every
    test of that build passed: its rows are then known good.
    A parent also rewritten by week, and unique on the key, can lose a key only from its rewritten weeks:
    `published` may then hold only those weeks as published, and `current` names the parent's rewritten rows.
    """

    changed: str
    kept: str
    published: dict[str, str] = field(default_factory=dict)
    current: dict[str, str] = field(default_factory=dict)


def compile_tests(model: str, tests: list[dict[str, Any]], engine: Engine,
                  delta: Delta | None = None) -> list[tuple[list[str], str]]:
    """A model's declared tests as queries of one row: (test names, SQL with one failing-row count per name).

    Every check shares one query, so the model is read once for all of them: uniqueness is the count
    of its non-null values against their distinct count, and each relationship left-joins the parent's
    distinct keys, which keeps the model's rows as they are.

    With a `delta`, the row checks read only the changed rows, and what joins them to the kept rows is
    checked on its own; the counts are those of the whole table, since the kept rows passed every test:
    - uniqueness: repeats among the changed rows, plus kept rows holding a value of a changed row;
    - a relationship: changed rows without a parent, plus kept rows whose parent is gone since that build;
    - an equal row count: the whole table's (a count the engine reads from the files' metadata).
    """
    checks = []
    for test in tests:
        if len(test) != 1:
            raise ValueError(f"model {model}: a test is one kind with its arguments, got {test}")
        kind, arg = next(iter(test.items()))
        if kind == "not_null":
            checks += [{"kind": kind, "name": f"{model}.not_null({column})", "column": column} for column in arg]
        elif kind == "accepted_values":
            checks.append({"kind": kind, "name": f"{model}.accepted_values({arg['column']})", **arg})
        elif kind == "equal_row_count":
            checks.append({"kind": kind, "name": f"{model}.equal_row_count({arg})", "other": arg})
        elif kind == "unique":
            checks.append({"kind": kind, "name": f"{model}.unique({arg})", "column": arg})
        elif kind == "relationships":
            joins = sum(check["kind"] == "relationships" for check in checks)
            checks.append({"kind": kind, "name": f"{model}.relationships({arg['column']} -> {arg['to']}.{arg['field']})",
                           "join": joins, **arg})
        else:
            raise ValueError(f"model {model}: unknown test kind '{kind}'")
    if not checks:
        return []
    return [([check["name"] for check in checks], render("quality/data_tests", engine, model=model, checks=checks,
                                                          delta=delta))]


def run_tests(engine: Engine, queries: list[tuple[list[str], str]], severity: str) -> list[dict[str, Any]]:
    """Run every test in one query (one plan, one engine action) and log each result."""
    if not queries:
        return []
    names: list[str] = []
    parts = []
    for i, (query_names, sql) in enumerate(queries):
        aliases = ", ".join(f"cast(t{i}.c{j} as bigint) as f{len(names) + j}" for j in range(len(query_names)))
        columns = ", ".join(f"c{j}" for j in range(len(query_names)))
        parts.append((aliases, f"({sql}) as t{i}({columns})"))
        names.extend(query_names)
    select = ", ".join(aliases for aliases, _ in parts)
    sources = " cross join ".join(source for _, source in parts)
    _, rows = engine.fetch(f"select {select} from {sources}")
    results = []
    for name, count in zip(names, rows[0]):
        status = "pass" if count == 0 else severity
        (log.debug if status == "pass" else log.error if status == "fail" else log.warning)(
            "data test %s: %s (%d failing rows)", name, status.upper(), count)
        results.append({"test": name, "failures": int(count), "status": status})
    passed = sum(r["status"] == "pass" for r in results)
    log.info("data tests: %d passed, %d failed (severity %s)", passed, len(results) - passed, severity)
    return results


def analytics_flags(engine: Engine, config: Analytics, tables: set[str]) -> list[dict[str, Any]]:
    """Results that are right by their definition but mislead: each a warning in the quality report and the report.

    - one segment holds every user: the segment thresholds tell no users apart;
    - the observation window is shorter than analytics.rfm.min_days: recency and frequency mean little on it.
    """
    flags = []
    if "user_segments" in tables:
        rows = engine.select_columns("user_segments", ["segment", "users"])
        if len(rows) == 1 and rows[0][1] > 0:
            (segment, users), = rows
            flags.append({"flag": "single_segment", "tables": ["user_segments"], "status": "warn",
                          "message": f"every user ({users}) is in segment '{segment}': the segment definition tells "
                                     f"no users apart (analytics.segments)"})
    if "rfm_scores" in tables:
        _, rows = engine.fetch(f"select ({engine.epoch_us('max(event_ts)')} - {engine.epoch_us('min(event_ts)')})"
                               f" / 8.64e10 from fct_events")
        days = rows[0][0]
        if days is not None and days < config.rfm.min_days:
            flags.append({"flag": "short_rfm_window", "tables": ["rfm_scores", "rfm_segments"], "status": "warn",
                          "observation_days": days, "min_days": config.rfm.min_days,
                          "message": f"the data spans {days:.2f} days from its first to its last event, less than "
                                     f"analytics.rfm.min_days ({config.rfm.min_days:g}): recency and frequency "
                                     f"scores mean little on so short a window"})
    for flag in flags:
        log.warning("analytics %s: %s", flag["flag"], flag["message"])
    return flags


def write_report(ctx: RunContext, whole_ledger: Callable[[RunContext], list[dict]], finished: list[str] | None = None,
                 error: str | None = None) -> dict[str, Any]:
    """The quality report: the data as it is now, merged from the runs that built it, and this run as `last_run`.

    `reports/quality_report.json` holds one section per layer describing what that layer holds now (each taken
    from the run that last changed the layer, so a run with nothing new changes only `last_run`);
    `reports/history/quality_<run_id>.json` holds `last_run` alone, one file per run. `finished` names the layers
    that completed (None: every layer this run asked for); `error` is the failure that stopped the run;
    `whole_ledger` computes the ledger of the whole data directory, called only when silver changed.
    """
    run = ctx.record.as_dict()
    finished = list(ctx.record.layers) if finished is None else finished
    last_run = {"run_id": ctx.run_id, "engine": ctx.engine.name, "started_at": ctx.started_at.isoformat(),
                "outcome": "failed" if error else "no new data" if changed_nothing(run) else "succeeded",
                **({"error": error} if error else {}), **run, "profile": ctx.profile.record()}
    path = ctx.layout.reports / REPORT
    previous = storage.read_json(path, {})
    if previous.get("format") != REPORT_FORMAT:  # a report of the former shape described only its own run
        previous = {}
    current = merge_current(previous, last_run, finished, lambda: whole_ledger(ctx))
    report = {"format": REPORT_FORMAT, **current, "last_run": last_run}
    storage.write_json(path, report)
    storage.write_json(ctx.layout.reports / HISTORY / f"quality_{ctx.run_id}.json", last_run)
    return report


REPORT_FORMAT = 2
HISTORY = "history"


def record_end(ctx: RunContext, extra: dict[str, Any]) -> None:
    """Put the run's whole profile, and `extra` (its cost, its alert), into `last_run` of the report and of the
    run's history record: written with the report, the profile lacks the steps that come after it (the report
    itself, the warehouse, the page)."""
    steps = ctx.profile.record()
    for path, run in ((ctx.layout.reports / REPORT, lambda report: report.get("last_run") or {}),
                      (ctx.layout.reports / HISTORY / f"quality_{ctx.run_id}.json", lambda record: record)):
        written = storage.read_json(path, None)
        if written is not None and run(written).get("run_id") == ctx.run_id:
            run(written).update(profile=steps, **extra)
            storage.write_json(path, written)


def changed_nothing(run: dict[str, Any]) -> bool:
    """Whether a run's layers found nothing to do: no raw file ingested, no bronze batch validated, the star and
    the analytics results as published (a layer that did not run changed nothing either)."""
    return ((run.get("bronze") or {}).get("batch_id") is None
            and not (run.get("silver") or {}).get("bronze_batches")
            and run.get("gold", {"mode": "current"}).get("mode") == "current"
            and run.get("analytics", {"mode": "current"}).get("mode") == "current")
_LEDGER_COUNTS = ("bronze_rows", "silver_rows", "quarantine_rows", "duplicate_rows", "redelivered_rows")


def merge_current(previous: dict, run: dict, finished: list[str], ledger: Any) -> dict[str, Any]:
    """Each layer's section of the report as the layer is now: this run's where the run changed the layer, else
    the previous report's. `ledger` computes the whole ledger (called only when silver changed)."""
    current = {layer: previous[layer] for layer in ("bronze", "silver", "gold", "analytics") if layer in previous}
    bronze_run = run.get("bronze")
    if "bronze" in finished and bronze_run is not None:
        current["bronze"] = _merge_bronze(current.get("bronze", {}), bronze_run, run["run_id"])
    silver_run = run.get("silver")
    if "silver" in finished and silver_run and silver_run.get("bronze_batches"):
        current["silver"] = _merge_silver(current.get("silver", {}), silver_run, run["run_id"], ledger())
    gold_run = run.get("gold")
    if "gold" in finished and gold_run and gold_run.get("mode") != "current":
        current["gold"] = {"build_id": gold_run.get("build_id", run["run_id"]), "built_at": run["started_at"],
                           **{k: gold_run[k] for k in ("mode", "reason", "tests", "row_counts") if k in gold_run}}
    analytics_run = run.get("analytics")
    if "analytics" in finished and analytics_run is not None and analytics_run.get("mode") != "current":
        counts = {**current.get("analytics", {}).get("row_counts", {}), **analytics_run.get("row_counts", {})}
        current["analytics"] = {"row_counts": dict(sorted(counts.items())), "flags": analytics_run.get("flags", [])}
    return current


def _merge_bronze(previous: dict, run: dict, run_id: str) -> dict:
    """Every ingested file's current version (with the profile of the batch that last ingested part of it), and
    what raw/ holds now that bronze does not ingest."""
    files = {entry["path"]: entry for entry in previous.get("files", [])}
    for entry in run.get("files", []):
        files[entry["path"]] = {key: value for key, value in entry.items() if key != "this_run"}
    refused = [{k: v for k, v in entry.items() if k != "this_run"} for entry in run.get("refused", [])]
    merged = {"files": [files[p] for p in sorted(files)], "refused": refused, "unmatched": run.get("unmatched", []),
              "not_regular": run.get("not_regular", {}),
              "copies": {**previous.get("copies", {}), **run.get("copies", {})},
              "ignored_changes": run.get("ignored_changes", []),
              "batches": sorted({*previous.get("batches", []), *([run["batch_id"]] if run.get("batch_id") else [])})}
    merged["rows"] = sum(entry.get("rows", 0) for entry in merged["files"])
    return merged


def _merge_silver(previous: dict, run: dict, run_id: str, ledger: list[dict]) -> dict:
    """The whole ledger as it is now, the rejection reasons of every row quarantine holds (a replaced file's
    earlier reasons dropped), and the gates of the last run that judged rows."""
    replaced = {f["source_file"] for f in (run.get("retraction") or {}).get("files", [])}
    per_file = {name: dict(reasons) for name, reasons in
                previous.get("rejection_reasons", {}).get("per_file", {}).items() if name not in replaced}
    for name, reasons in run.get("rejection_reasons", {}).get("per_file", {}).items():
        counts = per_file.setdefault(name, {})
        for reason, count in reasons.items():
            counts[reason] = counts.get(reason, 0) + count
    overall: dict[str, int] = {}
    for reasons in per_file.values():
        for reason, count in reasons.items():
            overall[reason] = overall.get(reason, 0) + count
    local_times = {row["source_file"]: row for row in previous.get("local_time_adjustments", [])
                   if row["source_file"] not in replaced}
    for row in run.get("local_time_adjustments", []):
        earlier = local_times.get(row["source_file"], {})
        local_times[row["source_file"]] = {key: value if key == "source_file" else earlier.get(key, 0) + value
                                           for key, value in row.items()}
    totals = {key: sum(row[key] for row in ledger) for key in (*_LEDGER_COUNTS, "pending_rows", "stale_rows")}
    return {"runs": sorted({*previous.get("runs", []), run_id}), "ledger": ledger, "totals": totals,
            "rejection_reasons": {"overall": dict(sorted(overall.items())),
                                  "per_file": {name: dict(sorted(r.items())) for name, r in sorted(per_file.items())}},
            "local_time_adjustments": [local_times[name] for name in sorted(local_times)],
            "checks": run.get("checks", []), "checked_by": run_id,
            **({"conflicting_event_ids": run["conflicting_event_ids"]} if "conflicting_event_ids" in run else {})}
