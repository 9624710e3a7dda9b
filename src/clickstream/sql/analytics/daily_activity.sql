-- one row per calendar day: the share of it the data covers, active users, events, events per user, sessions, purchases, revenue, day type
with daily as (
    -- each day's users added up: a visit belongs to one user, so its visits are the sum of theirs
    select
        date_key,
        count(*) as active_users,
        cast(sum(events) as bigint) as events,
        cast(sum(sessions) as bigint) as sessions,
        cast(sum(purchases) as bigint) as purchases,
        cast(sum(priced_purchases) as bigint) as priced_purchases,
        sum(revenue) as revenue
    from user_days
    group by date_key
),

bounds as (
    select {{ epoch_us('min(event_ts)') }} as first_us, {{ epoch_us('max(event_ts)') }} as last_us from fct_events
),

covered as (
    -- the data covers a day from midnight, or its first event, to the next midnight, or its last event
    select
        dim_date.date_key,
        (least({{ epoch_us('cast(dim_date.date_day as timestamp)') }} + 86400000000, bounds.last_us)
         - greatest({{ epoch_us('cast(dim_date.date_day as timestamp)') }}, bounds.first_us)) / 8.64e10
            as share_of_day_covered
    from dim_date
    cross join bounds
),

final as (
    select
        dim_date.date_day as activity_date,
        dim_date.day_name,
        dim_date.is_weekend,
        covered.share_of_day_covered < 1 as is_partial_day,
        covered.share_of_day_covered,
        coalesce(daily.active_users, 0) as active_users,
        coalesce(daily.events, 0) as events,
        {{ safe_divide('daily.events', 'daily.active_users') }} as events_per_user,
        coalesce(daily.sessions, 0) as sessions,
        coalesce(daily.purchases, 0) as purchases,
        -- the known amounts; NULL where there were purchases and none carries an amount (a feed without prices)
        case when daily.priced_purchases > 0 or coalesce(daily.purchases, 0) = 0
             then cast(coalesce(daily.revenue, 0) as decimal(18,2)) end as revenue
    from dim_date
    join covered on dim_date.date_key = covered.date_key
    left join daily on dim_date.date_key = daily.date_key
)

select * from final order by activity_date
