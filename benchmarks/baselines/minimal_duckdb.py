"""Minimal DuckDB: the least a hand-written script does to apply the same rules, for the benchmark's second ratio.

Beside `plain_duckdb.py` (the same work as the project, table for table), this is the floor: one DuckDB
connection, every step a single SQL statement, nothing kept between runs. Raw CSV read with an explicit all-text
schema, typed once in memory; every rejected row written to quarantine with its reasons (the project's rules:
missing user or event type, product events without a product, purchases without an amount, timestamps that do not
parse or are out of range, amounts that do not parse or are negative); duplicates removed (the same event
values, any file); 30-minute visits; eight answers (top products, conversion funnel, daily activity, user
segments, revenue, user journey, weekday vs weekend, RFM scores). Outputs are Parquet under DIR. What it leaves
out on purpose: a bronze copy, dimensions, data tests, a ledger, manifests, incremental state, atomic
publishing, CSV copies and reports. It imports nothing from clickstream.

    python benchmarks/baselines/minimal_duckdb.py --data-dir DIR      # reads DIR/raw/*.csv

Step times go to DIR/reports/timings.json in the project's shape ({"timings_seconds": {...}}).
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import duckdb

RAW_COLUMNS = ["UserID", "SessionID", "Timestamp", "EventType", "ProductID", "Amount", "Outcome"]
OUTPUTS = ["minimal", "reports", "_tmp"]
PARQUET = "format parquet, compression snappy"

REASONS = """
concat_ws(';',
    case when user_id is null then 'missing_user_id' end,
    case when event_type is null then 'missing_event_type' end,
    case when timestamp_text is null then 'missing_timestamp' when event_ts is null then 'invalid_timestamp'
         when event_ts < timestamp '2000-01-01' or event_ts > now()::timestamp + interval 1 day
         then 'timestamp_out_of_range' end,
    case when event_type in ('product_view', 'add_to_cart', 'purchase') and product_id is null
         then 'missing_product_id' end,
    case when event_type = 'purchase' and amount_text is null then 'missing_amount' end,
    case when amount_text is not null and amount is null then 'invalid_amount' end,
    case when amount < 0 then 'negative_amount' end)
"""
TYPED = """
create temp table typed as
select *, {reasons} as reasons from (
select
    nullif(trim(UserID), '') as user_id, nullif(trim(SessionID), '') as session_id,
    nullif(trim(Timestamp), '') as timestamp_text,
    try_strptime(nullif(trim(Timestamp), ''), ['%Y-%m-%d %H:%M:%S.%f', '%Y-%m-%d %H:%M:%S']) as event_ts,
    nullif(trim(EventType), '') as event_type, nullif(trim(ProductID), '') as product_id,
    nullif(trim(Amount), '') as amount_text, try_cast(nullif(trim(Amount), '') as decimal(18,2)) as amount,
    nullif(trim(Outcome), '') as outcome, filename as source_file, *
from read_csv({files}, columns = {columns}, header = true, auto_detect = false, delim = ',', quote = '"',
              escape = '"', filename = true)
)
"""
STEPS = {
    "quarantine": f"""
        copy (select * exclude (user_id, session_id, timestamp_text, event_ts, event_type, product_id, amount_text,
                                amount, outcome, filename, reasons), reasons as rejection_reasons
              from typed where reasons <> '')
        to '{{out}}/quarantine.parquet' ({PARQUET})""",
    "silver": f"""
        create temp table events as
        select user_id, session_id, event_ts, event_type, product_id, amount, outcome, source_file
        from typed where reasons = ''
        qualify row_number() over (partition by user_id, session_id, event_ts, event_type, product_id, amount,
                                                outcome order by source_file) = 1""",
    "visits": """
        create temp table fct as
        select *, user_id || ':' || sum(new_visit) over (partition by user_id order by event_ts, event_type
                                                         rows unbounded preceding) as visit_id
        from (select *, case when lag(event_ts) over (partition by user_id order by event_ts, event_type) is null
                             or event_ts - lag(event_ts) over (partition by user_id order by event_ts, event_type)
                                > interval 30 minutes then 1 else 0 end as new_visit
              from events)""",
    "write_events": f"copy fct to '{{out}}/events.parquet' ({PARQUET})",
    "top_products": """
        select product_id, count(*) filter (where event_type = 'product_view') as views,
               count(*) filter (where event_type = 'purchase') as purchases,
               sum(amount) filter (where event_type = 'purchase') as revenue
        from fct where product_id is not null group by product_id order by revenue desc nulls last limit 20""",
    "conversion_funnel": """
        with firsts as (
            select user_id, min(event_ts) filter (where event_type = 'product_view') as viewed,
                   min(event_ts) filter (where event_type = 'add_to_cart') as carted,
                   min(event_ts) filter (where event_type = 'purchase') as bought
            from fct group by user_id)
        select count(viewed) as viewers,
               count(*) filter (where carted >= viewed and carted <= viewed + interval 7 days) as carters,
               count(*) filter (where carted >= viewed and bought >= carted
                                and bought <= viewed + interval 7 days) as buyers
        from firsts""",
    "daily_activity": """
        select cast(event_ts as date) as day, count(*) as events, count(distinct user_id) as users,
               count(distinct visit_id) as visits, coalesce(sum(amount) filter (where event_type = 'purchase'), 0)
               as revenue
        from fct group by day order by day""",
    "user_segments": """
        with per_user as (select user_id, count(*) as events from fct group by user_id),
        ranked as (select *, percent_rank() over (order by events desc) as position from per_user)
        select case when events = 1 then 'one_time' when position < 0.1 then 'high' when position < 0.5
               then 'medium' else 'low' end as segment, count(*) as users, avg(events) as avg_events
        from ranked group by segment""",
    "revenue": """
        select count(*) as orders, sum(amount) as revenue, avg(amount) as average_order,
               count(distinct user_id) as buyers
        from fct where event_type = 'purchase'""",
    "user_journey": """
        select user_id, visit_id, event_ts, event_type, product_id,
               row_number() over (partition by visit_id order by event_ts, event_type) as step
        from fct""",
    "weekday_weekend": """
        select case when dayofweek(event_ts) in (0, 6) then 'weekend' else 'weekday' end as day_type,
               count(*) / count(distinct cast(event_ts as date)) as events_per_day,
               count(distinct visit_id) filter (where event_type = 'purchase') / count(distinct visit_id)
               as visit_conversion
        from fct group by day_type""",
    "rfm": """
        with per_user as (
            select user_id, max(event_ts) as last_purchase, count(*) as frequency, sum(amount) as monetary
            from fct where event_type = 'purchase' group by user_id)
        select *, ntile(5) over (order by last_purchase) as r, ntile(5) over (order by frequency) as f,
               ntile(5) over (order by monetary) as m
        from per_user""",
}
QUERIES = ["top_products", "conversion_funnel", "daily_activity", "user_segments", "revenue", "user_journey",
           "weekday_weekend", "rfm"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="reads DIR/raw/*.csv, writes DIR/minimal/")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory limit, e.g. 6GB (default: DuckDB's)")
    args = parser.parse_args()
    data = args.data_dir.resolve()
    files = sorted(str(f) for f in (data / "raw").glob("*.csv"))
    if not files:
        parser.error(f"no CSV files in {data / 'raw'}")
    for name in OUTPUTS:
        shutil.rmtree(data / name, ignore_errors=True)
    out = data / "minimal"
    out.mkdir(parents=True)

    con = duckdb.connect(config={"preserve_insertion_order": False})
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"set temp_directory = '{data}/_tmp'")
    if args.threads:
        con.execute(f"set threads = {args.threads}")
    if args.memory_limit:
        con.execute(f"set memory_limit = '{args.memory_limit}'")
    timings: dict[str, float] = {}
    columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in RAW_COLUMNS) + "}"
    started = time.perf_counter()
    con.execute(TYPED.format(reasons=REASONS, files="[" + ", ".join(f"'{f}'" for f in files) + "]", columns=columns))
    timings["read"] = round(time.perf_counter() - started, 3)
    for name, sql in STEPS.items():
        started = time.perf_counter()
        if name in QUERIES:
            con.execute(f"copy ({sql}) to '{out}/{name}.parquet' ({PARQUET})")
        else:
            con.execute(sql.format(out=out))
        timings[name] = round(time.perf_counter() - started, 3)
    counts = {"bronze_rows": con.execute("select count(*) from typed").fetchone()[0],
              "silver_rows": con.execute("select count(*) from events").fetchone()[0],
              "fct_events": con.execute("select count(*) from fct").fetchone()[0],
              "quarantine_rows": con.execute(f"select count(*) from '{out}/quarantine.parquet'").fetchone()[0]}
    counts["duplicate_rows"] = counts["bronze_rows"] - counts["silver_rows"] - counts["quarantine_rows"]
    con.close()
    shutil.rmtree(data / "_tmp", ignore_errors=True)
    (data / "reports").mkdir(parents=True, exist_ok=True)
    report = {"engine": "minimal-duckdb", "timings_seconds": timings, "row_counts": counts}
    (data / "reports" / "timings.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("Rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print("Step times: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
