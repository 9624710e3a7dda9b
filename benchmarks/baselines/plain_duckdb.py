"""Plain DuckDB: the clickstream medallion written by hand, without the clickstream framework.

What a competent engineer would write to do the same work in one script, for the benchmark to compare
against: raw CSV read with an explicit all-text schema -> bronze Parquet partitioned by ingestion_date ->
silver (typed, every rejected row quarantined with its reasons, de-duplicated) -> the gold star schema ->
the analytics queries. Same rules and definitions as the project's SQL (src/clickstream/sql/), same
tables as Parquet under DIR; no manifests, ledger, data tests, CSV copies or report. Each layer reads
what the layer before it wrote. It imports nothing from clickstream on purpose.

    python benchmarks/baselines/plain_duckdb.py --data-dir DIR      # reads DIR/raw/*.csv

Layer times go to DIR/reports/timings.json in the project's shape ({"timings_seconds": {...}}).
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb

# The project's default rules (config/config.yaml), written out as a hand-written script would.
SESSION_TIMEOUT_US = 30 * 60 * 1_000_000
TOP_N = 20
HIGH_MIN_EVENTS, MEDIUM_MIN_EVENTS = 50, 10
# The product key of events without a product (the not-applicable member of dim_products): empty, since
# silver turns an empty product id into NULL, so no real product can have it.
NO_PRODUCT = ""
RAW_COLUMNS = ["UserID", "SessionID", "Timestamp", "EventType", "ProductID", "Amount", "Outcome"]
OUTPUTS = ["bronze", "silver", "quarantine", "gold", "analytics", "reports", "_tmp"]
PARQUET = "format parquet, compression snappy"


def key(columns: list[str], free_text: list[str]) -> str:
    """The values joined by chr(31), NULL as '' (values are never empty); a row where a text value holds chr(31)
    is written with one chr(31) more, each value escaped (a backslash doubled, chr(31) as `\\s`, NULL as `\\N`),
    so distinct tuples give distinct keys."""
    plain = ", ".join(f"coalesce({c}, '')" for c in columns)
    escaped = ", ".join(f"coalesce(replace(replace({c}, '\\', '\\\\'), chr(31), '\\s'), '\\N')" for c in columns)
    holds = " or ".join(f"coalesce(contains({c}, chr(31)), false)" for c in free_text)
    return (f"case when {holds} then concat(chr(31), concat_ws(chr(31), {escaped})) "
            f"else concat_ws(chr(31), {plain}) end")


def bronze(con: duckdb.DuckDBPyConnection, data: Path, batch_id: str, ingested_at: datetime) -> None:
    columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in RAW_COLUMNS) + "}"
    con.execute(f"""
        copy (
            select UserID, SessionID, Timestamp, EventType, ProductID, Amount, Outcome,
                   cast(null as bigint) as source_line, cast(null as varchar) as raw_line,
                   cast(null as varchar) as parse_error,
                   'clickstream' as source_name,
                   parse_filename(filename) as source_file,
                   '{batch_id}' as batch_id,
                   timestamp '{ingested_at:%Y-%m-%d %H:%M:%S.%f}' as ingestion_timestamp,
                   date '{ingested_at:%Y-%m-%d}' as ingestion_date
            from read_csv('{data}/raw/*.csv', columns = {columns}, header = true, auto_detect = false,
                          delim = ',', quote = '"', escape = '"', filename = true, strict_mode = true)
        ) to '{data}/bronze' ({PARQUET}, partition_by (ingestion_date))
    """)


def silver(con: duckdb.DuckDBPyConnection, data: Path) -> dict[str, int]:
    # Typed values get their own names: DuckDB names are case-insensitive, so `amount` would shadow `Amount`.
    con.execute(f"""
        create temp table classified as
        with typed as (
            select
                nullif(trim(UserID), '') as user_id,
                nullif(trim(SessionID), '') as session_id,
                nullif(trim(Timestamp), '') as timestamp_text,
                try_strptime(nullif(trim(Timestamp), ''), ['%Y-%m-%d %H:%M:%S.%f', '%Y-%m-%d %H:%M:%S']) as event_ts,
                nullif(trim(EventType), '') as event_type,
                nullif(trim(ProductID), '') as product_id,
                nullif(trim(Amount), '') as amount_text,
                try_cast(nullif(trim(Amount), '') as decimal(18,2)) as amount_value,
                nullif(trim(Outcome), '') as outcome_value,
                *
            from read_parquet('{data}/bronze/*/*.parquet', hive_partitioning = true)
        ),
        checked as (
            select *,
                concat_ws(';',
                    case when user_id is null then 'missing_user_id' end,
                    case when event_type is null then 'missing_event_type' end,
                    case when timestamp_text is null then 'missing_timestamp'
                         when event_ts is null then 'invalid_timestamp'
                         when event_ts < timestamp '2000-01-01' or event_ts > ingestion_timestamp + interval 1 day
                         then 'timestamp_out_of_range' end,
                    case when event_type in ('product_view', 'add_to_cart', 'purchase') and product_id is null
                         then 'missing_product_id' end,
                    case when event_type = 'purchase' and amount_text is null then 'missing_amount' end,
                    case when amount_text is not null and amount_value is null then 'invalid_amount' end,
                    case when amount_value < 0 then 'negative_amount' end
                ) as rejection_reasons
            from typed
        )
        select *,
            case when rejection_reasons = '' then md5({key(['user_id', 'session_id',
                'cast(epoch_us(event_ts) as varchar)', 'event_type', 'product_id', 'cast(amount_value as varchar)',
                'outcome_value'], ['user_id', 'session_id', 'event_type', 'product_id', 'outcome_value'])}) end
                as event_id
        from checked
    """)
    con.execute(f"""
        copy (
            select event_id, user_id, session_id, event_ts, event_type, product_id, amount_value as amount,
                   outcome_value as outcome, source_name, source_file, batch_id, ingestion_timestamp, ingestion_date
            from classified
            where rejection_reasons = ''
            qualify row_number() over (partition by event_id order by source_file) = 1
        ) to '{data}/silver' ({PARQUET}, partition_by (ingestion_date))
    """)
    con.execute(f"""
        copy (
            select UserID, SessionID, Timestamp, EventType, ProductID, Amount, Outcome, rejection_reasons,
                   source_line, raw_line, source_name, source_file, batch_id, ingestion_timestamp, ingestion_date
            from classified
            where rejection_reasons <> ''
        ) to '{data}/quarantine' ({PARQUET}, partition_by (ingestion_date))
    """)
    bronze_rows, quarantine_rows = con.execute(
        "select count(*), count(*) filter (where rejection_reasons <> '') from classified").fetchone()
    silver_rows = con.execute(f"select count(*) from read_parquet('{data}/silver/*/*.parquet')").fetchone()[0]
    con.execute("drop table classified")
    return {"bronze_rows": bronze_rows, "silver_rows": silver_rows, "quarantine_rows": quarantine_rows,
            "duplicate_rows": bronze_rows - quarantine_rows - silver_rows}


def gold(con: duckdb.DuckDBPyConnection, data: Path) -> dict[str, int]:
    # A visit ends after 30 minutes of inactivity, even inside one supplied session id; its key is the
    # user, the supplied session and the visit's first event time.
    con.execute(f"""
        create temp table sessionized as
        with flagged as (
            select event_id, user_id, session_id, event_ts, event_type, product_id, amount, outcome,
                case when lag(event_ts) over visit is null
                       or epoch_us(event_ts) - epoch_us(lag(event_ts) over visit) > {SESSION_TIMEOUT_US}
                     then 1 else 0 end as is_session_start
            from read_parquet('{data}/silver/*/*.parquet')
            window visit as (partition by user_id, session_id order by event_ts, event_id)
        ),
        started as (
            select *,
                max(case when is_session_start = 1 then event_ts end) over (
                    partition by user_id, session_id order by event_ts, event_id
                    rows between unbounded preceding and current row) as session_start_ts
            from flagged
        )
        select event_id,
            md5({key(['user_id', 'session_id', 'cast(epoch_us(session_start_ts) as varchar)'],
                     ['user_id', 'session_id'])}) as session_key,
            user_id, session_id, event_ts, event_type, product_id, amount, outcome
        from started
    """)
    con.execute(f"""
        create temp view fct_events as
        select event_id, user_id as user_key, session_key, coalesce(product_id, '{NO_PRODUCT}') as product_key,
            event_type as event_type_key,
            cast(year(event_ts) * 10000 + month(event_ts) * 100 + day(event_ts) as integer) as date_key,
            cast(hour(event_ts) * 100 + minute(event_ts) as integer) as time_key,
            event_ts, amount, outcome, event_type = 'purchase' as is_purchase
        from sessionized
    """)
    con.execute("""
        create temp view dim_users as
        select user_key, user_key as user_id, min(event_ts) as first_seen_ts, max(event_ts) as last_seen_ts,
            count(*) as total_events, count(distinct session_key) as total_sessions,
            count(*) filter (where is_purchase) as total_purchases,
            cast(coalesce(sum(amount) filter (where is_purchase), 0) as decimal(18,2)) as total_spent,
            min(event_ts) filter (where is_purchase) as first_purchase_ts,
            max(event_ts) filter (where is_purchase) as last_purchase_ts,
            count(*) filter (where is_purchase) > 0 as is_purchaser
        from fct_events
        group by user_key
    """)
    con.execute("""
        create temp view dim_sessions as
        select session_key, min(user_id) as user_key, min(session_id) as source_session_id,
            min(event_ts) as session_start_ts, max(event_ts) as session_end_ts,
            (epoch_us(max(event_ts)) - epoch_us(min(event_ts))) / 1e6 as duration_seconds,
            cast(year(min(event_ts)) * 10000 + month(min(event_ts)) * 100 + day(min(event_ts)) as integer)
                as start_date_key,
            count(*) as total_events,
            count(*) filter (where event_type = 'page_view') as page_views,
            count(*) filter (where event_type = 'product_view') as product_views,
            count(*) filter (where event_type = 'add_to_cart') as cart_adds,
            count(*) filter (where event_type = 'purchase') as purchases,
            cast(coalesce(sum(amount) filter (where event_type = 'purchase'), 0) as decimal(18,2)) as revenue,
            count(*) = 1 as is_bounce,
            count(*) filter (where event_type = 'purchase') > 0 as has_purchase
        from sessionized
        group by session_key
    """)
    con.execute(f"""
        create temp view dim_products as
        select product_key, product_key as product_id,
            count(*) filter (where event_type_key = 'product_view') as views,
            count(*) filter (where event_type_key = 'add_to_cart') as cart_adds,
            count(*) filter (where is_purchase) as purchases,
            cast(coalesce(sum(amount) filter (where is_purchase), 0) as decimal(18,2)) as revenue,
            count(distinct user_key) as unique_users,
            min(event_ts) as first_seen_ts, max(event_ts) as last_seen_ts, false as is_not_applicable
        from fct_events
        where product_key <> '{NO_PRODUCT}'
        group by product_key
        union all
        select '{NO_PRODUCT}', cast(null as varchar), cast(0 as bigint), cast(0 as bigint), cast(0 as bigint),
            cast(0 as decimal(18,2)), cast(0 as bigint), cast(null as timestamp), cast(null as timestamp), true
    """)
    con.execute("""
        create temp view dim_event_types as
        with observed as (
            select event_type_key, count(*) as total_events from fct_events group by event_type_key
        ),
        all_types as (
            select event_type_key from observed
            union
            select unnest(['add_to_cart', 'product_view', 'purchase'])
        )
        select all_types.event_type_key, all_types.event_type_key as event_type,
            all_types.event_type_key in ('product_view', 'add_to_cart', 'purchase') as is_product_event,
            all_types.event_type_key = 'purchase' as is_purchase,
            case all_types.event_type_key when 'product_view' then 1 when 'add_to_cart' then 2
                                          when 'purchase' then 3 end as funnel_step,
            coalesce(observed.total_events, 0) as total_events
        from all_types left join observed using (event_type_key)
    """)
    con.execute("""
        create temp view dim_date as
        with days as (
            select cast(unnest(generate_series(cast(min(event_ts) as date)::timestamp,
                                               cast(max(event_ts) as date)::timestamp, interval 1 day)) as date)
                as date_day
            from fct_events
        )
        select cast(year(date_day) * 10000 + month(date_day) * 100 + day(date_day) as integer) as date_key,
            date_day,
            cast(year(date_day) as integer) as year,
            cast(quarter(date_day) as integer) as quarter,
            cast(month(date_day) as integer) as month,
            monthname(date_day) as month_name,
            cast(day(date_day) as integer) as day_of_month,
            cast(isodow(date_day) as integer) as day_of_week,
            dayname(date_day) as day_name,
            cast(weekofyear(date_day) as integer) as iso_week,
            isodow(date_day) in (6, 7) as is_weekend
        from days
    """)
    con.execute("""
        create temp view dim_time as
        select cast(h.range * 100 + m.range as integer) as time_key, cast(h.range as integer) as hour_of_day,
            cast(m.range as integer) as minute_of_hour,
            case when h.range < 6 then 'night' when h.range < 12 then 'morning'
                 when h.range < 18 then 'afternoon' else 'evening' end as day_part
        from range(24) h cross join range(60) m
    """)
    counts = {}
    for table in ["fct_events", "dim_users", "dim_sessions", "dim_products", "dim_event_types", "dim_date",
                  "dim_time"]:
        (data / "gold" / table).mkdir(parents=True)
        con.execute(f"copy {table} to '{data}/gold/{table}/data.parquet' ({PARQUET})")
    for table in ["fct_events", "dim_sessions", "dim_users"]:
        counts[table] = con.execute(f"select count(*) from read_parquet('{data}/gold/{table}/*.parquet')").fetchone()[0]
    for view in ["dim_time", "dim_date", "dim_event_types", "dim_products", "dim_sessions", "dim_users",
                 "fct_events"]:
        con.execute(f"drop view {view}")
    con.execute("drop table sessionized")
    return counts


ANALYTICS = {
    "top_products": f"""
        select cast(row_number() over (order by views desc, purchases desc, product_key) as integer) as view_rank,
            product_id, views, cart_adds, purchases, revenue, unique_users,
            cart_adds::double / nullif(views, 0) as view_to_cart_rate,
            purchases::double / nullif(cart_adds, 0) as cart_to_purchase_rate,
            purchases::double / nullif(views, 0) as view_to_purchase_rate
        from dim_products
        where not is_not_applicable
        qualify view_rank <= {TOP_N}
        order by view_rank
    """,
    "conversion_funnel": """
        with user_steps as (
            select user_key,
                max(case when event_type_key = 'product_view' then 1 else 0 end) as viewed,
                max(case when event_type_key = 'add_to_cart' then 1 else 0 end) as carted,
                max(case when event_type_key = 'purchase' then 1 else 0 end) as purchased
            from fct_events
            where event_type_key in ('product_view', 'add_to_cart', 'purchase')
            group by user_key
        ),
        counts as (
            select count(*) filter (where viewed = 1) as reached_1,
                count(*) filter (where viewed = 1) as through_1,
                count(*) filter (where carted = 1) as reached_2,
                count(*) filter (where viewed = 1 and carted = 1) as through_2,
                count(*) filter (where purchased = 1) as reached_3,
                count(*) filter (where viewed = 1 and carted = 1 and purchased = 1) as through_3
            from user_steps
        )
        select 1 as step_number, 'product_view' as event_type, reached_1 as users_reached,
            through_1 as users_through_all_steps, through_1::double / nullif(reached_1, 0) as step_conversion,
            through_1::double / nullif(reached_1, 0) as overall_conversion
        from counts
        union all
        select 2, 'add_to_cart', reached_2, through_2, through_2::double / nullif(through_1, 0),
            through_2::double / nullif(reached_1, 0)
        from counts
        union all
        select 3, 'purchase', reached_3, through_3, through_3::double / nullif(through_2, 0),
            through_3::double / nullif(reached_1, 0)
        from counts
        order by step_number
    """,
    "daily_activity": """
        with daily as (
            select date_key, count(distinct user_key) as active_users, count(*) as events,
                count(distinct session_key) as sessions, count(*) filter (where is_purchase) as purchases,
                sum(amount) filter (where is_purchase) as revenue
            from fct_events
            group by date_key
        )
        select dim_date.date_day as activity_date, dim_date.day_name, dim_date.is_weekend,
            coalesce(daily.active_users, 0) as active_users, coalesce(daily.events, 0) as events,
            daily.events::double / nullif(daily.active_users, 0) as events_per_user,
            coalesce(daily.sessions, 0) as sessions, coalesce(daily.purchases, 0) as purchases,
            cast(coalesce(daily.revenue, 0) as decimal(18,2)) as revenue
        from dim_date left join daily using (date_key)
        order by activity_date
    """,
    "user_segments": f"""
        with users as (
            select *,
                case when total_sessions = 1 then 'one_time'
                     when total_events >= {HIGH_MIN_EVENTS} then 'high'
                     when total_events >= {MEDIUM_MIN_EVENTS} then 'medium'
                     else 'low' end as segment
            from dim_users
        )
        select segment, count(*) as users,
            sum(total_events)::double / count(*) as avg_events,
            sum(total_sessions)::double / count(*) as avg_sessions,
            sum(total_purchases)::double / count(*) as avg_purchases,
            sum(total_spent)::double / count(*) as avg_spent,
            cast(sum(total_spent) as decimal(18,2)) as total_spent,
            (count(*) filter (where is_purchaser))::double / count(*) as purchaser_rate
        from users
        group by segment
        order by case segment when 'high' then 1 when 'medium' then 2 when 'low' then 3 else 4 end
    """,
    "revenue_metrics": """
        with per_user as (
            select user_key, count(*) as orders, sum(amount) as spent
            from fct_events where is_purchase group by user_key
        ),
        totals as (
            select cast(coalesce(sum(spent), 0) as decimal(18,2)) as total_revenue,
                cast(coalesce(sum(orders), 0) as bigint) as total_orders,
                count(*) as purchasers, count(*) filter (where orders > 1) as repeat_purchasers
            from per_user
        ),
        all_users as (select count(*) as users from dim_users)
        select total_revenue, total_orders, users, purchasers, repeat_purchasers,
            repeat_purchasers::double / nullif(purchasers, 0) as repeat_purchaser_rate,
            total_revenue::double / nullif(total_orders, 0) as average_order_value,
            total_revenue::double / nullif(users, 0) as revenue_per_user,
            total_revenue::double / nullif(purchasers, 0) as revenue_per_purchaser
        from totals cross join all_users
    """,
    "user_journey": f"""
        select user_key, row_number() over by_user as event_number, event_ts, event_type_key as event_type,
            nullif(product_key, '{NO_PRODUCT}') as product_id, session_key,
            lag(event_type_key) over by_user as previous_event_type,
            (epoch_us(event_ts) - epoch_us(lag(event_ts) over by_user)) / 1e6 as seconds_since_previous
        from fct_events
        window by_user as (partition by user_key order by event_ts, event_id)
    """,
    "purchase_paths": f"""
        with paths as (
            select concat_ws(' > ', lag(event_type_key, 2) over by_session, lag(event_type_key, 1) over by_session,
                             event_type_key) as path,
                is_purchase
            from fct_events
            window by_session as (partition by session_key order by event_ts, event_id)
        ),
        counted as (select path, count(*) as purchases from paths where is_purchase group by path)
        select cast(row_number() over (order by purchases desc, path) as integer) as path_rank, path, purchases,
            purchases::double / sum(purchases) over () as share_of_purchases
        from counted
        qualify path_rank <= {TOP_N}
        order by path_rank
    """,
    "day_type_behavior": """
        with events as (
            select d.is_weekend, count(*) as events, count(*) filter (where f.is_purchase) as purchases,
                sum(f.amount) filter (where f.is_purchase) as revenue
            from fct_events f join dim_date d using (date_key)
            group by d.is_weekend
        ),
        users as (
            select is_weekend, sum(active_users) as user_days
            from (select d.is_weekend, f.date_key, count(distinct f.user_key) as active_users
                  from fct_events f join dim_date d using (date_key)
                  group by d.is_weekend, f.date_key)
            group by is_weekend
        ),
        sessions as (
            select d.is_weekend, count(*) as sessions, count(*) filter (where s.has_purchase) as converting_sessions,
                avg(s.duration_seconds) as avg_session_seconds
            from dim_sessions s join dim_date d on s.start_date_key = d.date_key
            group by d.is_weekend
        ),
        calendar as (select is_weekend, count(*) as calendar_days from dim_date group by is_weekend)
        select case when calendar.is_weekend then 'weekend' else 'weekday' end as day_type,
            calendar.calendar_days,
            coalesce(events.events, 0) as events,
            events.events::double / calendar.calendar_days as events_per_day,
            users.user_days::double / calendar.calendar_days as active_users_per_day,
            coalesce(sessions.sessions, 0) as sessions,
            sessions.sessions::double / calendar.calendar_days as sessions_per_day,
            coalesce(events.purchases, 0) as purchases,
            cast(coalesce(events.revenue, 0) as decimal(18,2)) as revenue,
            events.revenue::double / calendar.calendar_days as revenue_per_day,
            sessions.converting_sessions::double / nullif(sessions.sessions, 0) as session_conversion_rate,
            sessions.avg_session_seconds
        from calendar
        left join events using (is_weekend)
        left join users using (is_weekend)
        left join sessions using (is_weekend)
        order by day_type
    """,
    # Recency is counted from the last event in the data, so the same data always gives the same scores.
    "rfm_scores": """
        with purchasers as (
            select user_key,
                cast(floor((epoch_us((select max(event_ts) from fct_events)) - epoch_us(last_purchase_ts))
                           / 8.64e10) as bigint) as recency_days,
                total_purchases as frequency, total_spent as monetary
            from dim_users
            where is_purchaser
        ),
        scored as (
            select *,
                cast(ntile(5) over (order by recency_days desc, user_key) as integer) as recency_score,
                cast(ntile(5) over (order by frequency, user_key) as integer) as frequency_score,
                cast(ntile(5) over (order by monetary, user_key) as integer) as monetary_score
            from purchasers
        )
        select *,
            case when recency_score >= 4 and frequency_score >= 4 and monetary_score >= 4 then 'champions'
                 when recency_score >= 3 and frequency_score >= 3 then 'loyal'
                 when recency_score >= 4 then 'promising'
                 when recency_score = 3 then 'needs_attention'
                 when frequency_score >= 3 then 'at_risk'
                 else 'hibernating' end as segment
        from scored
    """,
    "rfm_segments": """
        select segment, count(*) as customers,
            count(*)::double / sum(count(*)) over () as share_of_customers,
            sum(recency_days)::double / count(*) as avg_recency_days,
            sum(frequency)::double / count(*) as avg_frequency,
            cast(sum(monetary) as decimal(18,2)) as total_monetary,
            sum(monetary)::double / count(*) as avg_monetary
        from rfm_scores
        group by segment
        order by case segment when 'champions' then 1 when 'loyal' then 2 when 'promising' then 3
                              when 'needs_attention' then 4 when 'at_risk' then 5 else 6 end
    """,
}


def analytics(con: duckdb.DuckDBPyConnection, data: Path) -> dict[str, int]:
    for table in ["fct_events", "dim_users", "dim_sessions", "dim_products", "dim_date"]:
        con.execute(f"create temp view {table} as select * from read_parquet('{data}/gold/{table}/*.parquet')")
    counts = {}
    for name, sql in ANALYTICS.items():
        (data / "analytics" / name).mkdir(parents=True)
        target = f"{data}/analytics/{name}/data.parquet"
        if name == "rfm_scores":  # rfm_segments reads it
            con.execute(f"create temp table rfm_scores as {sql}")
            con.execute(f"copy rfm_scores to '{target}' ({PARQUET})")
        else:
            con.execute(f"copy ({sql}) to '{target}' ({PARQUET})")
        counts[name] = con.execute(f"select count(*) from read_parquet('{target}')").fetchone()[0]
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="reads DIR/raw/*.csv, writes beside it")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory limit, e.g. 6GB (default: DuckDB's)")
    args = parser.parse_args()
    data = args.data_dir.resolve()
    if not any((data / "raw").glob("*.csv")):
        parser.error(f"no CSV files in {data / 'raw'}")
    for name in OUTPUTS:  # a full refresh: this script's own outputs only
        shutil.rmtree(data / name, ignore_errors=True)

    con = duckdb.connect(config={"preserve_insertion_order": False})
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"set temp_directory = '{data}/_tmp'")
    if args.threads:
        con.execute(f"set threads = {args.threads}")
    if args.memory_limit:
        con.execute(f"set memory_limit = '{args.memory_limit}'")

    ingested_at = datetime.now(timezone.utc).replace(tzinfo=None)
    batch_id = ingested_at.strftime("%Y%m%dT%H%M%S")
    timings: dict[str, float] = {}
    counts: dict[str, int] = {}

    started = time.perf_counter()
    bronze(con, data, batch_id, ingested_at)
    timings["bronze"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    counts.update(silver(con, data))
    timings["silver"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    counts.update(gold(con, data))
    timings["gold"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    counts.update(analytics(con, data))
    timings["analytics"] = round(time.perf_counter() - started, 3)
    con.close()
    shutil.rmtree(data / "_tmp", ignore_errors=True)

    (data / "reports").mkdir(parents=True, exist_ok=True)
    report = {"engine": "plain-duckdb", "timings_seconds": timings, "row_counts": counts}
    (data / "reports" / "timings.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("Rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print("Layer times: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
