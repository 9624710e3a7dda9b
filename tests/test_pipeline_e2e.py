"""End to end: the CLI on generated data with every defect, on the shared real dataset, and its failure paths."""
from __future__ import annotations

import csv
import datetime as dt
import json
import math
import subprocess
import sys
from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pytest

from helpers import SHARED_DATASET, analytics_context, run_model

from clickstream.cli import main
from clickstream.config import Config, DuckDBSettings, duration_seconds
from clickstream.engines.duckdb_engine import DuckDBEngine
from clickstream.generate import DefectRates, generate

REPO = Path(__file__).resolve().parents[1]


def table(data: Path, name: str, partitioned: bool = False) -> duckdb.DuckDBPyRelation:
    hive = ", hive_partitioning = true, hive_types = {'ingestion_date': 'DATE'}" if partitioned else ""
    return duckdb.sql(f"select * from read_parquet('{data / name}/**/*.parquet'{hive})")


def count(data: Path, name: str) -> int:
    files = list((data / name).rglob("*.parquet"))
    return duckdb.sql(f"select count(*) from read_parquet({[str(f) for f in files]})").fetchall()[0][0] if files else 0


def run_cli(*args: str) -> int:
    return main(["run", *args])


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Three generated files with every defect, run once through the CLI."""
    root = tmp_path_factory.mktemp("generated")
    data = root / "data"
    result = generate(data / "raw", rows=20_000, seed=7, files=3)
    assert run_cli("--data-dir", str(data)) == 0
    return data, result


def test_the_ledger_adds_up_per_file_from_the_written_tables(generated):
    data, result = generated
    bronze = dict(duckdb.sql(f"select source_file, count(*) from read_parquet('{data}/bronze/**/*.parquet') "
                             f"group by 1").fetchall())
    silver = Counter(dict(duckdb.sql(f"select source_file, count(*) from read_parquet('{data}/silver/**/*.parquet') "
                                     f"group by 1").fetchall()))
    quarantine = Counter(dict(duckdb.sql(f"select source_file, count(*) from "
                                         f"read_parquet('{data}/quarantine/**/*.parquet') group by 1").fetchall()))
    report = json.loads((data / "reports" / "quality_report.json").read_text())["last_run"]
    ledger = {row["source_file"]: row for row in report["silver"]["ledger"]}
    assert bronze == {f.name: n for f, n in zip(result.files, result.rows_per_file.values())}
    for source_file, rows in bronze.items():
        row = ledger[source_file]
        assert (row["bronze_rows"], row["silver_rows"], row["quarantine_rows"]) == (
            rows, silver[source_file], quarantine[source_file])
        assert rows == row["silver_rows"] + row["quarantine_rows"] + row["duplicate_rows"]


def test_every_injected_defect_lands_in_quarantine_with_its_reason(generated):
    data, result = generated
    reasons = Counter(dict(duckdb.sql(f"select rejection_reasons, count(*) from "
                                      f"read_parquet('{data}/quarantine/**/*.parquet') group by 1").fetchall()))
    expected = {k: v for k, v in result.defects.items() if k not in ("duplicate", "late") and v}
    assert reasons == expected
    report = json.loads((data / "reports" / "quality_report.json").read_text())["last_run"]
    assert report["silver"]["totals"]["duplicate_rows"] == result.defects["duplicate"]
    assert report["silver"]["totals"]["silver_rows"] == (
        result.total_rows - sum(expected.values()) - result.defects["duplicate"])


def test_quarantine_keeps_the_raw_values_and_the_source_file(generated):
    data, _ = generated
    rows = duckdb.sql(f"select Timestamp, source_file from read_parquet('{data}/quarantine/**/*.parquet') "
                      f"where rejection_reasons = 'invalid_timestamp'").fetchall()
    assert rows and {r[1] for r in rows} <= {"clickstream_7_001.csv", "clickstream_7_002.csv",
                                             "clickstream_7_003.csv"}
    assert {r[0] for r in rows} & {"not-a-time", "2024-13-45 25:61:00", "yesterday"}
    amounts = duckdb.sql(f"select distinct Amount from read_parquet('{data}/quarantine/**/*.parquet') "
                         f"where rejection_reasons = 'invalid_amount'").fetchall()
    assert amounts and {type(a) for (a,) in amounts} == {str}  # the raw text, as it arrived
    assert {a for (a,) in amounts} & {"12,50", "abc", "N/A"}


def test_late_events_pass_and_fact_equals_silver(generated):
    data, result = generated
    last = result.files[-1].name
    first_max, late = duckdb.sql(
        f"select (select max(event_ts) from read_parquet('{data}/silver/**/*.parquet') "
        f"where source_file = 'clickstream_7_001.csv'), count(*) from read_parquet('{data}/silver/**/*.parquet') "
        f"where source_file = '{last}' and event_ts <= (select max(event_ts) from "
        f"read_parquet('{data}/silver/**/*.parquet') where source_file = 'clickstream_7_001.csv')").fetchall()[0]
    # the generator moves this many clean rows of the first days into the last file: all of them, and only them
    assert first_max is not None
    assert late == result.defects["late"] == round(DefectRates().late * 20_000)
    assert count(data, "gold/fct_events") == count(data, "silver")


def test_gold_keys_are_unique_and_every_fact_key_is_in_its_dimension(generated):
    data, _ = generated
    con = duckdb.connect()
    for name in ["fct_events", "dim_users", "dim_sessions", "dim_products", "dim_event_types", "dim_date"]:
        con.execute(f"create view {name} as select * from read_parquet('{data}/gold/{name}/**/*.parquet', "
                    f"hive_partitioning = false)")
    checks = con.sql("""
        select
            (select count(*) - count(distinct event_id) from fct_events),
            (select count(*) - count(distinct session_key) from dim_sessions),
            (select count(*) from fct_events f anti join dim_users d on f.user_key = d.user_key),
            (select count(*) from fct_events f anti join dim_sessions d on f.session_key = d.session_key),
            (select count(*) from fct_events f anti join dim_products d on f.product_key = d.product_key),
            (select count(*) from fct_events f anti join dim_date d on f.date_key = d.date_key)
    """).fetchall()[0]
    assert checks == (0, 0, 0, 0, 0, 0)
    report = json.loads((data / "reports" / "quality_report.json").read_text())["last_run"]
    assert {t["status"] for t in report["gold"]["tests"]} == {"pass"}


def test_a_second_run_adds_nothing_and_a_new_file_adds_only_its_rows(generated, tmp_path):
    data, result = generated
    before = {name: count(data, name) for name in ("bronze", "silver", "quarantine", "gold/fct_events")}
    assert run_cli("--data-dir", str(data)) == 0
    assert {name: count(data, name) for name in before} == before

    extra = generate(data / "raw", rows=500, seed=99, files=1, defects=DefectRates.none(), prefix="extra",
                     start="2024-04-01", days=3)
    assert run_cli("--data-dir", str(data)) == 0
    after = {name: count(data, name) for name in before}
    assert after == {"bronze": before["bronze"] + 500, "silver": before["silver"] + 500,
                     "quarantine": before["quarantine"], "gold/fct_events": before["gold/fct_events"] + 500}
    new_rows = duckdb.sql(f"select distinct source_file from read_parquet('{data}/bronze/**/*.parquet') "
                          f"where batch_id = (select max(batch_id) from read_parquet('{data}/bronze/**/*.parquet'))"
                          ).fetchall()
    assert new_rows == [(extra.files[0].name,)]


def test_results_are_printed_and_outputs_named(generated, capsys):
    data, _ = generated
    assert main(["analytics", "--show-results", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    for title in ["1. Top products", "2a. Conversion funnel", "2b. Funnel, order and time ignored", "5. Revenue",
                  "8b. RFM segments", "9a. Retention by cohort", "10b. Cart abandonment"]:
        assert title in out
    assert f"analytics   {data / 'analytics'}" in out
    assert (data / "analytics" / "top_products.csv").read_text().startswith("product_rank,product_id,views")


def test_each_result_has_the_rows_its_grain_gives_on_silvers_events(generated):
    # every number here is computed from silver's events (DuckDB over its Parquet files), not by the models
    data, _ = generated
    silver = f"read_parquet('{data}/silver/**/*.parquet')"
    events, users, purchasers, products, first_ts, last_ts = duckdb.sql(
        f"select count(*), count(distinct user_id), count(distinct case when event_type = 'purchase' then user_id "
        f"end), count(distinct product_id), min(event_ts), max(event_ts) from {silver}").fetchall()[0]
    days = [first_ts.date() + dt.timedelta(days=n) for n in range((last_ts.date() - first_ts.date()).days + 1)]
    per_day = dict(duckdb.sql(f"select cast(event_ts as date), count(*) from {silver} group by 1").fetchall())

    def monday(day: dt.date) -> dt.date:
        return day - dt.timedelta(days=day.weekday())

    # weekly retention: one row per cohort (the week of a user's first event) and week from it to the data's last
    cohorts = {monday(t.date()) for (t,) in duckdb.sql(f"select min(event_ts) from {silver} group by user_id"
                                                       ).fetchall()}
    retention_rows = sum((monday(last_ts.date()) - cohort).days // 7 + 1 for cohort in cohorts)
    # a day is full when the data covers it from midnight to midnight
    day_types = defaultdict(lambda: [0, 0, 0])  # full days, partial days, events on full days
    for day in days:
        start = dt.datetime.combine(day, dt.time())
        full = first_ts <= start and start + dt.timedelta(days=1) <= last_ts
        counts = day_types["weekend" if day.isoweekday() >= 6 else "weekday"]
        counts[0 if full else 1] += 1
        counts[2] += per_day.get(day, 0) if full else 0
    steps = Config().analytics.funnel.steps
    expected = {"top_products": min(Config().analytics.top_n, products), "conversion_funnel": len(steps),
                "funnel_any_order": len(steps), "daily_activity": len(days), "cart_abandonment_daily": len(days),
                "revenue_metrics": 1, "cart_abandonment": 1, "user_journey": events, "rfm_scores": purchasers,
                "retention": retention_rows, "day_type_behavior": len(day_types)}
    assert {query: count(data, f"analytics/{query}") for query in expected} == expected
    assert table(data, "analytics/day_type_behavior").select("day_type, full_days, partial_days, events").order(
        "day_type").fetchall() == [(day_type, *counts) for day_type, counts in sorted(day_types.items())]
    # the segments share out the users and the purchasing users; every visit leaves its first step once
    assert table(data, "analytics/user_segments").sum("users").fetchall() == [(users,)]
    assert table(data, "analytics/rfm_segments").sum("customers").fetchall() == [(purchasers,)]
    assert table(data, "analytics/paths").filter("step = 1").sum("sessions").fetchall() == [
        (count(data, "gold/dim_sessions"),)]


def test_the_advanced_group_runs_only_the_advanced_queries(generated, capsys):
    data, _ = generated
    basic = table(data, "analytics/top_products").order("product_rank").fetchall()
    csv_text = (data / "analytics" / "top_products.csv").read_text()
    assert main(["analytics", "--group", "advanced", "--show-results", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "8b. RFM segments" in out and "6c. Most common paths to a purchase" in out
    assert "1. Top products" not in out
    # the basic results of the earlier run are carried over, not lost, when only one group is rebuilt
    assert table(data, "analytics/top_products").order("product_rank").fetchall() == basic
    assert (data / "analytics" / "top_products.csv").read_text() == csv_text


def test_the_models_score_as_of_monday_of_the_last_week_and_the_page_says_so(generated):
    data, _ = generated
    (last,) = table(data, "gold/fct_events").aggregate("max(event_ts)").fetchall()[0]
    monday = dt.datetime.combine(last.date() - dt.timedelta(days=last.weekday()), dt.time())
    assert table(data, "analytics/churn_scores").aggregate("min(scored_at), max(scored_at)").fetchall() == [
        (monday, monday)]
    (status,) = table(data, "analytics/churn_model").project("status").fetchall()[0]
    assert status == "ok"  # the page shows the scores only then
    page = (data / "analytics" / "report.html").read_text(encoding="utf-8")
    assert f"Scored as of {monday:%Y-%m-%d %H:%M} UTC, the models&#39; time (analytics.models_as_of)" in page


def test_the_basic_group_holds_the_state_its_results_count(generated):
    # cart abandonment (basic) counts the carts state, the funnel funnel_users: each answered in the same group
    data, _ = generated
    daily = table(data, "analytics/cart_abandonment_daily").order("cart_date").fetchall()
    funnel = table(data, "analytics/conversion_funnel").order("step_number").fetchall()
    assert main(["analytics", "--group", "basic", "--full-refresh", "--data-dir", str(data)]) == 0
    assert table(data, "analytics/cart_abandonment_daily").order("cart_date").fetchall() == daily
    assert table(data, "analytics/conversion_funnel").order("step_number").fetchall() == funnel


# ---- the shared real dataset -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    # the path lives in helpers, not conftest: `import conftest` is ambiguous with tests/engines/conftest.py
    if not SHARED_DATASET.is_file():
        pytest.skip(f"the shared dataset is not at {SHARED_DATASET} (it is always present in CI)")
    data = tmp_path_factory.mktemp("real") / "data"
    (data / "raw").mkdir(parents=True)
    (data / "raw" / SHARED_DATASET.name).symlink_to(SHARED_DATASET)
    assert run_cli("--data-dir", str(data)) == 0
    with SHARED_DATASET.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return data, rows


def test_real_dataset_lands_whole_in_bronze_and_silver(real):
    data, rows = real
    assert len(rows) == 74_817
    assert (count(data, "bronze"), count(data, "silver"), count(data, "quarantine")) == (74_817, 74_817, 0)


def test_real_dataset_carries_no_churn_signal_and_the_model_is_not_ok(real):
    data, rows = real
    # every user is back within every 28 days, so no cutoff has churned users to learn from
    last = {}
    for r in rows:
        last[r["UserID"]] = max(last.get(r["UserID"], ""), r["Timestamp"])
    model = table(data, "analytics/churn_model").fetchall()
    assert len(model) == 1 and model[0][0] != "ok"
    status, horizon, train, test, churn_rate = (model[0][0], model[0][1], model[0][3], model[0][4], model[0][5])
    assert (status, horizon, test) == ("insufficient_history", 28, len(last)) and train > 0 and churn_rate < 0.01
    assert table(data, "analytics/churn_scores").fetchall() == []
    # the clusters still cover every user once
    assert table(data, "analytics/user_clusters").aggregate("count(*), count(distinct user_key)").fetchall() == [
        (len(last), len(last))]


def test_real_dataset_revenue_matches_an_independent_computation(real):
    data, rows = real
    cents = [Decimal(r["Amount"]).quantize(Decimal("0.01"), ROUND_HALF_UP)
             for r in rows if r["EventType"] == "purchase"]
    purchasers = {r["UserID"] for r in rows if r["EventType"] == "purchase"}
    result = table(data, "analytics/revenue_metrics").fetchall()[0]
    assert result[:5] == (sum(cents), len(cents), 0, len({r["UserID"] for r in rows}), len(purchasers))


def test_real_dataset_order_free_funnel_matches_an_independent_computation(real):
    data, rows = real
    users = defaultdict(set)
    for r in rows:
        users[r["EventType"]].add(r["UserID"])
    through_cart = users["product_view"] & users["add_to_cart"]
    expected = [(1, "product_view", len(users["product_view"]), len(users["product_view"])),
                (2, "add_to_cart", len(users["add_to_cart"]), len(through_cart)),
                (3, "purchase", len(users["purchase"]), len(through_cart & users["purchase"]))]
    got = table(data, "analytics/funnel_any_order").order("step_number").fetchall()
    assert [g[:4] for g in got] == expected


def test_real_dataset_top_products_and_daily_activity_match(real):
    data, rows = real
    views = Counter(r["ProductID"] for r in rows if r["EventType"] == "product_view")
    bought = Counter(r["ProductID"] for r in rows if r["EventType"] == "purchase")
    revenue = defaultdict(Decimal)
    for r in rows:
        if r["EventType"] == "purchase":
            revenue[r["ProductID"]] += Decimal(r["Amount"]).quantize(Decimal("0.01"), ROUND_HALF_UP)
    # by revenue, then units, then views, then id
    ranking = sorted(revenue, key=lambda p: (-revenue[p], -bought[p], -views[p], p))[:20]
    top = table(data, "analytics/top_products").order("product_rank").fetchall()
    assert [(t[0], t[1], t[2], t[4], t[5]) for t in top] == [
        (i, p, views[p], bought[p], revenue[p]) for i, p in enumerate(ranking, start=1)]
    assert all(0 <= rate <= 1 for t in top for rate in t[9:] if rate is not None)
    per_day = Counter(r["Timestamp"][:10] for r in rows)
    daily = {str(d): (n, partial) for d, n, partial in duckdb.sql(
        f"select activity_date, events, is_partial_day from read_parquet('{data}/analytics/daily_activity/*.parquet')"
    ).fetchall()}
    assert {d: n for d, (n, _) in daily.items() if n} == dict(per_day)
    # the first event is at 00:01:35 on the first day, the last at 10:13:04 on the last: both days partial
    assert [d for d, (_, partial) in sorted(daily.items()) if partial] == [min(per_day), max(per_day)]


# ---- the shared dataset against the metrics' definitions (docs/METRICS.md), computed here in plain Python

def parsed(rows: list[dict]) -> dict[str, list[tuple[dt.datetime, str, dict]]]:
    """Each user's events, by time: (UTC time, event type, the row)."""
    users = defaultdict(list)
    for r in rows:
        users[r["UserID"]].append((dt.datetime.fromisoformat(r["Timestamp"]), r["EventType"], r))
    for events in users.values():
        events.sort(key=lambda e: e[0])
    return users


def ordered_funnel(users: dict, steps: list[str], window: dt.timedelta, end: dt.datetime) -> list[tuple]:
    """The ordered funnel by its definition: every step-1 event starts an attempt; each next step is the first
    event of its type at or after the step before, at most `window` after step 1; a user counts at the furthest
    step of any attempt, in progress while an attempt's window is open at the data's end."""
    furthest, in_progress, gaps = [], [], defaultdict(list)
    for events in users.values():
        attempts = []
        for start, kind, _ in events:
            if kind != steps[0]:
                continue
            times = [start]
            for step in steps[1:]:
                later = [t for t, k, _ in events if k == step and times[-1] <= t <= start + window]
                if not later:
                    break
                times.append(min(later))
            attempts.append((len(times), start + window > end, times))
        if not attempts:
            continue
        reached = max(a[0] for a in attempts)
        best = min((a for a in attempts if a[0] == reached), key=lambda a: a[2][0])
        furthest.append(reached)
        in_progress.append(reached < len(steps) and any(a[1] for a in attempts))
        for k in range(1, reached):
            gaps[k + 1].append((best[2][k] - best[2][k - 1]).total_seconds())
    table = []
    dropped_before = 0
    for k, step in enumerate(steps, start=1):
        users_k = sum(f >= k for f in furthest)
        waiting = sum(f == k and p for f, p in zip(furthest, in_progress))
        dropped = sum(f == k and not p and k < len(steps) for f, p in zip(furthest, in_progress))
        previous_dropped = table[-1][4] if table else 0
        times = sorted(gaps[k])
        median = (times[(len(times) - 1) // 2] + times[len(times) // 2]) / 2 if times else None
        table.append((k, step, users_k, waiting, dropped,
                      users_k / (users_k + previous_dropped) if users_k + previous_dropped else None,
                      users_k / (users_k + dropped_before) if users_k + dropped_before else None,
                      median, sum(times) / len(times) if times else None))
        dropped_before += dropped
    return table


def close(actual: list[tuple], expected: list[tuple]) -> bool:
    return len(actual) == len(expected) and all(
        len(a) == len(e) and all(x == y or (isinstance(x, float) and y is not None and math.isclose(x, y, rel_tol=1e-9))
                                 for x, y in zip(a, e)) for a, e in zip(actual, expected))


@pytest.mark.parametrize("window", ["1h", "24h", "7d"])
def test_real_dataset_ordered_funnel_matches_its_definition(real, window):
    data, rows = real
    users = parsed(rows)
    end = max(t for events in users.values() for t, _, _ in events)
    steps = ["product_view", "add_to_cart", "purchase"]
    expected = ordered_funnel(users, steps, dt.timedelta(seconds=duration_seconds(window)), end)
    if window == "7d":  # the run's own table, with the default window
        got = table(data, "analytics/conversion_funnel").order("step_number").fetchall()
    else:  # the same model on the run's gold tables, with another window
        engine = DuckDBEngine(DuckDBSettings(threads=2))
        try:
            engine.read_parquet("fct_events", sorted((data / "gold" / "fct_events").rglob("*.parquet")), schema=None)
            got = run_model(engine, "analytics/conversion_funnel", ordered=True, **analytics_context(
                funnel_window_us=duration_seconds(window) * 1_000_000))
        finally:
            engine.close()
    assert close(got, expected), (got, expected)


def test_real_dataset_retention_matches_its_definition(real):
    data, rows = real
    users = parsed(rows)
    end = max(t for events in users.values() for t, _, _ in events)

    def monday(t: dt.datetime) -> dt.date:
        return t.date() - dt.timedelta(days=t.weekday())

    cohorts, returns = defaultdict(set), defaultdict(set)
    for user, events in users.items():
        start = monday(events[0][0])
        cohorts[start].add(user)
        for t, _, _ in events:
            k = (monday(t) - start).days // 7
            if k > 0:
                returns[(start, k)].add(user)
    expected = []
    last = monday(end)
    for start in sorted(cohorts):
        size = len(cohorts[start])
        for k in range((last - start).days // 7 + 1):
            complete = dt.datetime.combine(start + dt.timedelta(weeks=k + 1), dt.time()) <= end
            retained = size if k == 0 else len(returns[(start, k)]) if complete else None
            expected.append((start, k, size, retained, None if retained is None else retained / size))
    got = table(data, "analytics/retention").order("cohort_start, period").fetchall()
    assert close(got, expected)
    assert expected[-1][3] is None  # the data ends inside its last week


def test_real_dataset_cart_abandonment_matches_its_definition(real):
    data, rows = real
    users = parsed(rows)
    end = max(t for events in users.values() for t, _, _ in events)
    window = dt.timedelta(hours=24)
    outcomes = Counter()
    for events in users.values():
        cart_last = None  # the open cart's last add_to_cart
        # at one time an add comes before a purchase
        for t, kind, _ in sorted((e for e in events if e[1] in ("add_to_cart", "purchase")),
                                 key=lambda e: (e[0], e[1] != "add_to_cart")):
            if kind == "add_to_cart":
                if cart_last is not None and t - cart_last > window:
                    outcomes["abandoned"] += 1
                    cart_last = None
                if cart_last is None:
                    outcomes["carts"] += 1
                cart_last = t
            elif cart_last is not None:
                outcomes["converted" if t - cart_last <= window else "abandoned"] += 1
                cart_last = None
        if cart_last is not None:
            outcomes["open" if cart_last + window > end else "abandoned"] += 1
    got = table(data, "analytics/cart_abandonment").fetchall()
    rate = outcomes["abandoned"] / (outcomes["converted"] + outcomes["abandoned"])
    # the feed carries no amounts on add_to_cart events: no abandoned value
    assert close(got, [(outcomes["carts"], outcomes["converted"], outcomes["abandoned"], outcomes["open"], rate,
                        None)])
    assert outcomes["carts"] == outcomes["converted"] + outcomes["abandoned"] + outcomes["open"]


def test_real_dataset_segments_match_their_definition(real):
    data, rows = real
    users = parsed(rows)
    visits = {}
    for user, events in users.items():  # a visit: one supplied session, no gap over 30 minutes
        sessions = defaultdict(list)
        for t, _, r in events:
            sessions[r["SessionID"]].append(t)
        visits[user] = sum(1 + sum(b - a > dt.timedelta(minutes=30) for a, b in zip(ts_, ts_[1:]))
                           for ts_ in (sorted(v) for v in sessions.values()))
    ranked = {u: len(e) for u, e in users.items() if visits[u] > 1}
    sizes = Counter()
    for user in users:
        if visits[user] == 1:
            sizes["one_time"] += 1
            continue
        above = sum(n > ranked[user] for n in ranked.values())
        sizes["high" if above * 100 < 10 * len(ranked) else "medium" if above * 100 < 50 * len(ranked) else "low"] += 1
    got = dict(table(data, "analytics/user_segments").select("segment, users").fetchall())
    assert got == dict(sizes)
    assert len(got) > 1  # the quantiles tell the users apart, where fixed thresholds put them all in "high"
    report = json.loads((data / "reports" / "quality_report.json").read_text())
    assert report["analytics"]["flags"] == []


def test_real_dataset_sessions_are_split_from_the_supplied_ids(real):
    data, rows = real
    supplied_pairs = len({(r["UserID"], r["SessionID"]) for r in rows})
    visits = count(data, "gold/dim_sessions")
    assert supplied_pairs < visits <= len(rows)  # months-long supplied sessions become many visits


# ---- failure paths ------------------------------------------------------------------------------------------


def test_bad_config_exits_2_with_one_line_naming_the_key(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("silver:\n  allow_negativ_amount: true\n")
    assert main(["run", "--config", str(config), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "silver.allow_negativ_amount" in err and str(config) in err


def test_a_malformed_line_with_on_malformed_fail_exits_1_naming_the_file_and_line(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "broken.csv").write_text("UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"
                                    "1,1,2024-01-01 10:00:00,page_view,,,\n1,2\n")
    config = tmp_path / "strict.yaml"
    config.write_text("sources:\n  - name: clickstream\n    on_malformed: fail\n")
    assert main(["run", "--config", str(config), "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("clickstream: error: bronze: broken.csv line 3: malformed_short_row ('1,2\\n')")
    assert count(tmp_path, "bronze") == 0


def test_a_failing_quality_threshold_stops_the_run_and_publishes_no_silver(tmp_path, capsys):
    data = tmp_path / "data"
    generate(data / "raw", rows=2_000, seed=3, defects=DefectRates(missing_user_id=0.1))
    config = tmp_path / "strict.yaml"
    config.write_text("quality:\n  quarantine_rate: {warn: 0.01, fail: 0.05}\n")
    assert main(["run", "--config", str(config), "--data-dir", str(data)]) == 1
    assert "quarantine_rate" in capsys.readouterr().err
    assert count(data, "silver") == 0 and count(data, "quarantine") == 0
    report = json.loads((data / "reports" / "quality_report.json").read_text())["last_run"]
    assert [c["status"] for c in report["silver"]["checks"]] == ["fail", "ok", "ok"]


def test_the_console_script_and_a_seed_job_run_as_processes(tmp_path):
    data = tmp_path / "data"
    generate(data / "raw", rows=300, seed=5, defects=DefectRates.none())
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "clickstream"), "bronze", "--data-dir", str(data)], check=True, cwd=tmp_path,
                   capture_output=True)
    done = subprocess.run([sys.executable, str(REPO / "jobs" / "silver_transform.py"), "--data-dir", str(data)],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert count(data, "silver") == 300
    assert list((data / "logs").glob("silver_*.log"))  # logs go under the data directory


def test_a_feed_without_prices_counts_its_orders_and_reports_revenue_unknown(tmp_path, capsys):
    # RetailRocket's events.csv: epoch milliseconds, no price column; 1 buys through the cart, 2 abandons a cart,
    # 3 buys twice without one, 4 views ten days later (still inside the funnel's window when the data ends)
    start, hour, day = 1433221332117, 3_600_000, 86_400_000
    rows = [(start, 1, "view", 1), (start + 60_000, 1, "addtocart", 1), (start + 120_000, 1, "transaction", 1),
            (start + hour, 2, "view", 2), (start + hour + 60_000, 2, "addtocart", 2),
            (start + 2 * hour, 3, "view", 1), (start + 2 * hour + 60_000, 3, "transaction", 1),
            (start + day, 3, "transaction", 2), (start + 10 * day, 4, "view", 3)]
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "events.csv").write_text(
        "timestamp,visitorid,event,itemid,transactionid\n" + "".join(f"{t},{u},{e},{p},\n" for t, u, e, p in rows))
    config = tmp_path / "retailrocket.yaml"
    config.write_text("sources:\n  - name: retailrocket\n    columns: {Timestamp: timestamp, UserID: visitorid, "
                      "EventType: event, ProductID: itemid, SessionID: null, Amount: null, Outcome: null}\n"
                      "    event_types: {view: product_view, addtocart: add_to_cart, transaction: purchase}\n"
                      "    timestamp_formats: [epoch_ms]\n")
    assert main(["run", "--config", str(config), "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert count(tmp_path, "quarantine") == 0
    assert table(tmp_path, "silver", partitioned=True).aggregate("min(event_ts), max(event_ts)").fetchall() == [
        (dt.datetime(2015, 6, 2, 5, 2, 12, 117000), dt.datetime(2015, 6, 12, 5, 2, 12, 117000))]
    # revenue, orders, without amount, users, purchasers, repeat, repeat rate, AOV, per user, per purchaser
    assert table(tmp_path, "analytics/revenue_metrics").fetchall() == [(None, 3, 3, 4, 2, 1, 0.5, None, None, None)]
    assert table(tmp_path, "analytics/cart_abandonment").fetchall() == [(2, 1, 1, 0, 0.5, None)]
    assert table(tmp_path, "analytics/daily_activity").filter("purchases > 0 or events = 0").project(
        "activity_date, purchases, revenue").order("activity_date").fetchall()[:3] == [
        (dt.date(2015, 6, 2), 2, None), (dt.date(2015, 6, 3), 1, None), (dt.date(2015, 6, 4), 0, Decimal("0.00"))]
    assert table(tmp_path, "analytics/rfm_scores").project("user_key, monetary, monetary_score").order(
        "user_key").fetchall() == [("1", None, None), ("3", None, None)]
    # decided users: 1 through, 2 dropped at the cart, 3 at the view; 4 still in progress
    assert "  conversion  33.33% of the users" in out
    assert "  revenue     unknown in 3 orders\n" in out
    note = "This feed carries no prices: none of its 3 orders has an amount"
    assert f"  prices      {note}" in out
    assert f"**{note}" in (tmp_path / "analytics" / "REPORT.md").read_text()
    page = (tmp_path / "analytics" / "report.html").read_text()
    assert note in page and "unknown (no prices)" in page


def test_an_escape_other_than_the_doubled_quote_runs_end_to_end_with_its_records_counted(tmp_path):
    # the scan counts records by the parity of quotes, which a backslash escape breaks: csv_lines counts them
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "escaped.csv").write_text(
        "UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"
        '1,s1,2024-01-01 10:00:00,page_view,,,\n'
        '1,s1,2024-01-01 10:01:00,product_view,"p\\"1",,\n'
        '2,s2,2024-01-02 10:00:00,purchase,"p\\\\,2",5.00,purchase\n')
    config = tmp_path / "escape.yaml"
    config.write_text('sources:\n  - name: clickstream\n    csv: {escape: "\\\\"}\n')
    assert main(["run", "--quiet", "--config", str(config), "--data-dir", str(tmp_path)]) == 0
    assert sorted(table(tmp_path, "silver", partitioned=True)
                  .select("user_id, event_type, product_id, amount").fetchall(), key=str) == [
        ("1", "page_view", None, None), ("1", "product_view", 'p"1', None),
        ("2", "purchase", "p\\,2", Decimal("5.00"))]
    report = json.loads((tmp_path / "reports" / "quality_report.json").read_text())
    assert [(f["path"], f["records"], f["rows"]) for f in report["bronze"]["files"]] == [("escaped.csv", 3, 3)]
    page = (tmp_path / "analytics" / "report.html").read_text()
    assert "<dt>records</dt><dd>3</dd>" in page
    assert (tmp_path / "analytics" / "REPORT.md").read_text().startswith("# Clickstream analytics\n")
    # appended lines: the file's records are the earlier count and the new lines'
    with (raw / "escaped.csv").open("a") as handle:
        handle.write('3,s3,2024-01-03 10:00:00,page_view,"\\"q\\"",,\n')
    assert main(["run", "--quiet", "--config", str(config), "--data-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "reports" / "quality_report.json").read_text())
    assert [(f["path"], f["records"], f["rows"]) for f in report["bronze"]["files"]] == [("escaped.csv", 4, 4)]
    assert "<dt>records</dt><dd>4</dd>" in (tmp_path / "analytics" / "report.html").read_text()
