-- one row per user (grain: user_key), with lifetime activity and spend
with events as (
    select * from fct_events
),

final as (
    select
        user_key,
        user_key as user_id,
        min(event_ts) as first_seen_ts,
        max(event_ts) as last_seen_ts,
        count(*) as total_events,
        count(distinct session_key) as total_sessions,
        count(case when is_purchase then 1 end) as total_purchases,
        -- the known amounts; NULL where the user bought and no purchase carries an amount (a feed without prices)
        case when count(case when is_purchase then amount end) > 0 or count(case when is_purchase then 1 end) = 0
             then cast(coalesce(sum(case when is_purchase then amount end), 0) as decimal(18,2)) end as total_spent,
        min(case when is_purchase then event_ts end) as first_purchase_ts,
        max(case when is_purchase then event_ts end) as last_purchase_ts,
        count(case when is_purchase then 1 end) > 0 as is_purchaser
    from events
    group by user_key
)

select * from final
