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
FUNNEL_WINDOW_US = 7 * 24 * 3600 * 1_000_000  # analytics.funnel.window: 7d
CART_WINDOW_US = 24 * 3600 * 1_000_000  # analytics.cart.window: 24h
PATH_STEPS = 5
HIGH_PERCENT, MEDIUM_PERCENT = 10, 40  # segments by quantiles of events per user
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
                   cast(null as varchar) as EventID,  -- the feed's own event id: this feed has none
                   cast(null as varchar) as extra,  -- the feed's unmapped columns: none
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
            select UserID, SessionID, Timestamp, EventType, ProductID, Amount, Outcome, EventID, rejection_reasons,
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
    # Rates on users: who viewed, carted, bought each product; ranked by revenue, units, views.
    "top_products": f"""
        with product_users as (
            select product_key, user_key,
                bool_or(event_type_key = 'product_view') as viewed, bool_or(event_type_key = 'add_to_cart') as carted,
                bool_or(is_purchase) as bought
            from fct_events where product_key <> '{NO_PRODUCT}'
            group by all
        ),
        users as (
            select product_key, count(*) filter (viewed) as viewers, count(*) filter (carted) as carters,
                count(*) filter (bought) as buyers, count(*) filter (viewed and carted) as viewed_carted,
                count(*) filter (carted and bought) as carted_bought,
                count(*) filter (viewed and bought) as viewed_bought
            from product_users group by product_key
        )
        select cast(row_number() over (order by revenue desc, purchases desc, views desc, product_key) as integer)
                as product_rank,
            product_id, views, cart_adds, purchases as units, revenue, viewers, carters, buyers,
            viewed_carted::double / nullif(viewers, 0) as view_to_cart_rate,
            carted_bought::double / nullif(carters, 0) as cart_to_purchase_rate,
            viewed_bought::double / nullif(viewers, 0) as view_to_purchase_rate
        from dim_products join users using (product_key)
        where not is_not_applicable
        qualify product_rank <= {TOP_N}
        order by product_rank
    """,
    # Ordered: each attempt starts at a view; the first cart at or after it (an as-of join), then the first purchase
    # at or after that cart, both within the window of the view.
    "conversion_funnel": f"""
        with ev as (
            select user_key, event_type_key, epoch_us(event_ts) as us from fct_events
            where event_type_key in ('product_view', 'add_to_cart', 'purchase')
        ),
        views as (select user_key, us as s1 from ev where event_type_key = 'product_view'),
        carts as (select user_key, us from ev where event_type_key = 'add_to_cart'),
        buys as (select user_key, us from ev where event_type_key = 'purchase'),
        with_cart as (
            select v.*, case when c.us <= v.s1 + {FUNNEL_WINDOW_US} then c.us end as s2
            from views v asof left join carts c on v.user_key = c.user_key and c.us >= v.s1
        ),
        with_buy as (
            select w.*, case when b.us <= w.s1 + {FUNNEL_WINDOW_US} then b.us end as s3
            from with_cart w asof left join buys b on w.user_key = b.user_key and b.us >= w.s2
        ),
        attempts as (
            select *, case when s3 is not null then 3 when s2 is not null then 2 else 1 end as reached,
                s1 + {FUNNEL_WINDOW_US} > (select epoch_us(max(event_ts)) from fct_events) as is_open
            from with_buy
        ),
        per_user as (
            select user_key, arg_min(struct_pack(s1, s2, s3), (-reached, s1)) as best, max(reached) as furthest,
                bool_or(is_open) as has_open
            from attempts group by user_key
        ),
        users as (
            select furthest, furthest < 3 and has_open as waiting,
                (best.s2 - best.s1) / 1e6 as t2, (best.s3 - best.s2) / 1e6 as t3
            from per_user
        ),
        steps as (
            select 1 as step_number, 'product_view' as event_type, count(*) as users,
                count(*) filter (furthest = 1 and waiting) as in_progress,
                count(*) filter (furthest = 1 and not waiting) as dropped,
                cast(null as double) as median_seconds_from_previous, cast(null as double) as mean_seconds_from_previous
            from users
            union all
            select 2, 'add_to_cart', count(*) filter (furthest >= 2), count(*) filter (furthest = 2 and waiting),
                count(*) filter (furthest = 2 and not waiting), median(t2) filter (furthest >= 2),
                avg(t2) filter (furthest >= 2)
            from users
            union all
            select 3, 'purchase', count(*) filter (furthest = 3), 0, 0, median(t3) filter (furthest = 3),
                avg(t3) filter (furthest = 3)
            from users
        )
        select cast(step_number as integer) as step_number, event_type, users, in_progress, dropped,
            users::double / nullif(users + coalesce(lag(dropped) over (order by step_number), 0), 0)
                as conversion_from_previous,
            users::double / nullif(users + coalesce(sum(dropped) over (order by step_number rows between unbounded
                preceding and 1 preceding), 0), 0) as conversion_from_first,
            median_seconds_from_previous, mean_seconds_from_previous
        from steps
        order by step_number
    """,
    "funnel_any_order": """
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
        ),
        bounds as (select min(event_ts) as first_ts, max(event_ts) as last_ts from fct_events)
        select dim_date.date_day as activity_date, dim_date.day_name, dim_date.is_weekend,
            covered < 1 as is_partial_day, covered as share_of_day_covered,
            coalesce(daily.active_users, 0) as active_users, coalesce(daily.events, 0) as events,
            daily.events::double / nullif(daily.active_users, 0) as events_per_user,
            coalesce(daily.sessions, 0) as sessions, coalesce(daily.purchases, 0) as purchases,
            cast(coalesce(daily.revenue, 0) as decimal(18,2)) as revenue
        from dim_date
        cross join bounds
        cross join lateral (select (epoch_us(least(date_day::timestamp + interval 1 day, last_ts))
                                    - epoch_us(greatest(date_day::timestamp, first_ts))) / 8.64e10 as covered)
        left join daily using (date_key)
        order by activity_date
    """,
    # One visit: one_time; the others by the share of multi-visit users with more events (ties share a segment).
    "user_segments": f"""
        with ranked as (
            select *, rank() over (partition by total_sessions = 1 order by total_events desc) - 1 as above,
                count(*) over (partition by total_sessions = 1) as ranked_users
            from dim_users
        ),
        users as (
            select *,
                case when total_sessions = 1 then 'one_time'
                     when above * 100 < {HIGH_PERCENT} * ranked_users then 'high'
                     when above * 100 < {HIGH_PERCENT + MEDIUM_PERCENT} * ranked_users then 'medium'
                     else 'low' end as segment
            from ranked
        )
        select segment, count(*) as users, count(*)::double / sum(count(*)) over () as share_of_users,
            min(total_events) as min_events, max(total_events) as max_events,
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
            select user_key, count(*) as orders, count(amount) as priced_orders, sum(amount) as spent
            from fct_events where is_purchase group by user_key
        ),
        totals as (
            select cast(coalesce(sum(spent), 0) as decimal(18,2)) as total_revenue,
                cast(coalesce(sum(orders), 0) as bigint) as total_orders,
                cast(coalesce(sum(orders - priced_orders), 0) as bigint) as orders_without_amount,
                count(*) as purchasers, count(*) filter (where orders > 1) as repeat_purchasers
            from per_user
        ),
        all_users as (select count(*) as users from dim_users)
        select total_revenue, total_orders, orders_without_amount, users, purchasers, repeat_purchasers,
            repeat_purchasers::double / nullif(purchasers, 0) as repeat_purchaser_rate,
            total_revenue::double / nullif(total_orders - orders_without_amount, 0) as average_order_value,
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
    # Within visits, consecutive repeats collapsed, the first steps kept; each step leaves to the next or to exit.
    "paths": f"""
        with collapsed as (
            select session_key, user_key, event_type_key, event_ts, event_id
            from fct_events
            qualify event_type_key is distinct from lag(event_type_key) over (partition by session_key
                                                                             order by event_ts, event_id)
        ),
        steps as (
            select user_key, event_type_key as from_event,
                row_number() over visit as step,
                coalesce(lead(event_type_key) over visit, 'exit') as to_event
            from collapsed
            window visit as (partition by session_key order by event_ts, event_id)
        )
        select cast(step as integer) as step, from_event, to_event, count(*) as sessions,
            count(distinct user_key) as users,
            count(*)::double / sum(count(*)) over (partition by step) as share_of_step
        from steps
        where step <= {PATH_STEPS}
        group by step, from_event, to_event
        order by step, sessions desc, from_event, to_event
    """,
    "day_type_behavior": """
        with bounds as (select min(event_ts) as first_ts, max(event_ts) as last_ts from fct_events),
        days as (
            select date_key, is_weekend,
                date_day::timestamp >= first_ts and date_day::timestamp + interval 1 day <= last_ts as is_full
            from dim_date cross join bounds
        ),
        full_days as (select date_key, is_weekend from days where is_full),
        events as (
            select d.is_weekend, count(*) as events, count(*) filter (where f.is_purchase) as purchases,
                sum(f.amount) filter (where f.is_purchase) as revenue
            from fct_events f join full_days d using (date_key)
            group by d.is_weekend
        ),
        users as (
            select is_weekend, sum(active_users) as user_days
            from (select d.is_weekend, f.date_key, count(distinct f.user_key) as active_users
                  from fct_events f join full_days d using (date_key)
                  group by d.is_weekend, f.date_key)
            group by is_weekend
        ),
        sessions as (
            select d.is_weekend, count(*) as sessions, count(*) filter (where s.has_purchase) as converting_sessions,
                avg(s.duration_seconds) as avg_session_seconds
            from dim_sessions s join full_days d on s.start_date_key = d.date_key
            group by d.is_weekend
        ),
        calendar as (
            select is_weekend, count(*) filter (where is_full) as full_days,
                count(*) filter (where not is_full) as partial_days
            from days group by is_weekend
        )
        select case when calendar.is_weekend then 'weekend' else 'weekday' end as day_type,
            calendar.full_days, calendar.partial_days,
            coalesce(events.events, 0) as events,
            events.events::double / nullif(calendar.full_days, 0) as events_per_day,
            users.user_days::double / nullif(calendar.full_days, 0) as active_users_per_day,
            coalesce(sessions.sessions, 0) as sessions,
            sessions.sessions::double / nullif(calendar.full_days, 0) as sessions_per_day,
            coalesce(events.purchases, 0) as purchases,
            cast(coalesce(events.revenue, 0) as decimal(18,2)) as revenue,
            events.revenue::double / nullif(calendar.full_days, 0) as revenue_per_day,
            sessions.converting_sessions::double / nullif(sessions.sessions, 0) as session_conversion_rate,
            sessions.avg_session_seconds
        from calendar
        left join events using (is_weekend)
        left join users using (is_weekend)
        left join sessions using (is_weekend)
        order by day_type
    """,
    # Recency is counted from the last event in the data, so the same data always gives the same scores. A score is
    # the quintile of the middle of the user's tie group: ceil(5 * (worse + equal / 2) / n).
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
                cast(ceil(5 * ((rank() over (order by recency_days desc) - 1)
                               + count(*) over (partition by recency_days) / 2) / count(*) over ()) as integer)
                    as recency_score,
                cast(ceil(5 * ((rank() over (order by frequency) - 1)
                               + count(*) over (partition by frequency) / 2) / count(*) over ()) as integer)
                    as frequency_score,
                cast(ceil(5 * ((rank() over (order by monetary) - 1)
                               + count(*) over (partition by monetary) / 2) / count(*) over ()) as integer)
                    as monetary_score
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
            sum(monetary)::double / count(*) as avg_monetary,
            any_value(o.first_ts) as observation_start_ts, any_value(o.last_ts) as observation_end_ts,
            any_value(o.days) as observation_days
        from rfm_scores
        cross join (select min(event_ts) as first_ts, max(event_ts) as last_ts,
                           (epoch_us(max(event_ts)) - epoch_us(min(event_ts))) / 8.64e10 as days from fct_events) o
        group by segment
        order by case segment when 'champions' then 1 when 'loyal' then 2 when 'promising' then 3
                              when 'needs_attention' then 4 when 'at_risk' then 5 else 6 end
    """,
    # First-time retention by ISO week (UTC): a week not over at the data's last event has no retention yet.
    "retention": """
        with weeks as (
            select user_key, date_trunc('week', event_ts)::date as week from fct_events
        ),
        cohorts as (select user_key, min(week) as cohort_start from weeks group by user_key),
        sizes as (select cohort_start, count(*) as cohort_users from cohorts group by cohort_start),
        returns as (
            select c.cohort_start, (w.week - c.cohort_start) // 7 as period, count(distinct w.user_key) as returned
            from weeks w join cohorts c using (user_key)
            where w.week > c.cohort_start
            group by all
        ),
        last_week as (select date_trunc('week', max(event_ts))::date as week, max(event_ts) as last_ts from fct_events)
        select s.cohort_start, cast(p.period as integer) as period, s.cohort_users,
            case when p.period = 0 then s.cohort_users
                 when s.cohort_start + cast(7 * (p.period + 1) as integer) <= l.last_ts then coalesce(r.returned, 0)
                 end as retained_users,
            case when p.period = 0 then 1.0::double
                 when s.cohort_start + cast(7 * (p.period + 1) as integer) <= l.last_ts
                 then coalesce(r.returned, 0)::double / s.cohort_users end as retention_rate
        from sizes s
        cross join last_week l
        cross join lateral (select unnest(range(0, (l.week - s.cohort_start) // 7 + 1)) as period) p
        left join returns r on r.cohort_start = s.cohort_start and r.period = p.period
        order by s.cohort_start, period
    """,
    # Per user across visits: an add opens a cart when none is open, joins it within the window of the previous
    # add with no purchase between; the next purchase within the window of the last add converts it.
    "cart_abandonment_daily": f"""
        with stream as (
            select user_key, event_id, event_ts, epoch_us(event_ts) as us, amount, is_purchase,
                lag(is_purchase) over w as previous_is_purchase, lag(epoch_us(event_ts)) over w as previous_us
            from fct_events
            where event_type_key = 'add_to_cart' or is_purchase
            window w as (partition by user_key order by event_ts, is_purchase, event_id)
        ),
        adds as (
            select *, sum(case when previous_is_purchase = false and us - previous_us <= {CART_WINDOW_US} then 0 else 1
                          end) over (partition by user_key order by us, event_id) as cart
            from stream where not is_purchase
        ),
        carts as (
            select user_key, cart, min(event_ts)::date as cart_date, max(us) as last_us, sum(amount) as value
            from adds group by all
        ),
        buys as (select user_key, us from stream where is_purchase),
        judged as (
            select c.cart_date, c.value,
                case when b.us - c.last_us <= {CART_WINDOW_US} then 'converted'
                     when c.last_us + {CART_WINDOW_US} > (select epoch_us(max(event_ts)) from fct_events) then 'open'
                     else 'abandoned' end as status
            from carts c asof left join buys b on c.user_key = b.user_key and b.us >= c.last_us
        ),
        daily as (
            select cart_date, count(*) as carts, count(*) filter (status = 'converted') as converted,
                count(*) filter (status = 'abandoned') as abandoned, count(*) filter (status = 'open') as open,
                sum(value) filter (status = 'abandoned') as abandoned_value
            from judged group by cart_date
        ),
        priced as (select count(amount) > 0 as has_amounts from fct_events where event_type_key = 'add_to_cart')
        select d.date_day as cart_date, coalesce(carts, 0) as carts, coalesce(converted, 0) as converted,
            coalesce(abandoned, 0) as abandoned, coalesce(open, 0) as open,
            abandoned::double / nullif(converted + abandoned, 0) as abandonment_rate,
            case when has_amounts then cast(coalesce(abandoned_value, 0) as decimal(18,2)) end as abandoned_value
        from dim_date d cross join priced left join daily on d.date_day = daily.cart_date
        order by cart_date
    """,
    "cart_abandonment": """
        select cast(sum(carts) as bigint) as carts, cast(sum(converted) as bigint) as converted,
            cast(sum(abandoned) as bigint) as abandoned, cast(sum(open) as bigint) as open,
            sum(abandoned)::double / nullif(sum(converted) + sum(abandoned), 0) as abandonment_rate,
            cast(sum(abandoned_value) as decimal(18,2)) as abandoned_value
        from cart_abandonment_daily
    """,
}

# Results a later query reads: kept as tables.
READ_BY_LATER = ("rfm_scores", "cart_abandonment_daily")


def analytics(con: duckdb.DuckDBPyConnection, data: Path) -> dict[str, int]:
    for table in ["fct_events", "dim_users", "dim_sessions", "dim_products", "dim_date"]:
        con.execute(f"create temp view {table} as select * from read_parquet('{data}/gold/{table}/*.parquet')")
    counts = {}
    for name, sql in ANALYTICS.items():
        (data / "analytics" / name).mkdir(parents=True)
        target = f"{data}/analytics/{name}/data.parquet"
        if name in READ_BY_LATER:
            con.execute(f"create temp table {name} as {sql}")
            con.execute(f"copy {name} to '{target}' ({PARQUET})")
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
