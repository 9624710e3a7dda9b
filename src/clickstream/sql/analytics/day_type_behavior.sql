-- one row per day type (weekday, weekend): activity per full calendar day and visit conversion, the days the data covers only in part left out
with bounds as (
    select {{ epoch_us('min(event_ts)') }} as first_us, {{ epoch_us('max(event_ts)') }} as last_us from fct_events
),

days as (
    -- a day is full when the data covers it from midnight to midnight: not the first or last day, as a rule
    select
        dim_date.date_key,
        dim_date.is_weekend,
        {{ epoch_us('cast(dim_date.date_day as timestamp)') }} >= bounds.first_us
            and {{ epoch_us('cast(dim_date.date_day as timestamp)') }} + 86400000000 <= bounds.last_us as is_full_day
    from dim_date
    cross join bounds
),

full_days as (
    select date_key, is_weekend from days where is_full_day
),

events as (
    -- the users' days (user_days): one row per day and active user, with that user's events of the day
    select
        full_days.is_weekend,
        cast(sum(user_days.events) as bigint) as events,
        cast(sum(user_days.purchases) as bigint) as purchases,
        sum(user_days.priced_purchases) as priced_purchases,
        cast(sum(user_days.revenue) as decimal(38,2)) as revenue,
        count(user_days.user_key) as user_days
    from user_days
    join full_days on user_days.date_key = full_days.date_key
    group by full_days.is_weekend
),

sessions as (
    select
        full_days.is_weekend,
        count(*) as sessions,
        count(case when dim_sessions.has_purchase then 1 end) as converting_sessions,
        -- durations are whole microseconds: their exact mean, not an order-dependent sum of doubles
        {{ mean_seconds('cast(round(dim_sessions.duration_seconds * 1000000) as bigint)') }} as avg_session_seconds
    from dim_sessions
    join full_days on dim_sessions.start_date_key = full_days.date_key
    group by full_days.is_weekend
),

calendar as (
    select
        is_weekend,
        count(case when is_full_day then 1 end) as full_days,
        count(case when not is_full_day then 1 end) as partial_days
    from days
    group by is_weekend
),

final as (
    select
        case when calendar.is_weekend then 'weekend' else 'weekday' end as day_type,
        calendar.full_days,
        calendar.partial_days,
        coalesce(events.events, 0) as events,
        {{ safe_divide('events.events', 'calendar.full_days') }} as events_per_day,
        {{ safe_divide('events.user_days', 'calendar.full_days') }} as active_users_per_day,
        coalesce(sessions.sessions, 0) as sessions,
        {{ safe_divide('sessions.sessions', 'calendar.full_days') }} as sessions_per_day,
        coalesce(events.purchases, 0) as purchases,
        -- the known amounts; NULL where there were purchases and none carries an amount (a feed without prices)
        case when events.priced_purchases > 0 or coalesce(events.purchases, 0) = 0
             then cast(coalesce(events.revenue, 0) as decimal(18,2)) end as revenue,
        {{ safe_divide('events.revenue', 'calendar.full_days') }} as revenue_per_day,
        {{ safe_divide('sessions.converting_sessions', 'sessions.sessions') }} as session_conversion_rate,
        sessions.avg_session_seconds
    from calendar
    left join events on calendar.is_weekend = events.is_weekend
    left join sessions on calendar.is_weekend = sessions.is_weekend
)

select * from final order by day_type
