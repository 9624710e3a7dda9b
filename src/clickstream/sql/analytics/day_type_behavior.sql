-- one row per day type (weekday, weekend): activity per calendar day and visit conversion
with days as (
    select date_key, is_weekend from dim_date
),

user_days as (
    -- one row per day and active user, with that user's events of the day: every sum below reads these
    select
        date_key,
        user_key,
        count(*) as events,
        count(case when is_purchase then 1 end) as purchases,
        sum(case when is_purchase then amount end) as revenue
    from fct_events
    group by date_key, user_key
),

events as (
    select
        days.is_weekend,
        cast(sum(user_days.events) as bigint) as events,
        cast(sum(user_days.purchases) as bigint) as purchases,
        sum(user_days.revenue) as revenue,
        count(user_days.user_key) as user_days
    from user_days
    join days on user_days.date_key = days.date_key
    group by days.is_weekend
),

sessions as (
    select
        days.is_weekend,
        count(*) as sessions,
        count(case when dim_sessions.has_purchase then 1 end) as converting_sessions,
        avg(dim_sessions.duration_seconds) as avg_session_seconds
    from dim_sessions
    join days on dim_sessions.start_date_key = days.date_key
    group by days.is_weekend
),

calendar as (
    select is_weekend, count(*) as calendar_days from days group by is_weekend
),

final as (
    select
        case when calendar.is_weekend then 'weekend' else 'weekday' end as day_type,
        calendar.calendar_days,
        coalesce(events.events, 0) as events,
        {{ safe_divide('events.events', 'calendar.calendar_days') }} as events_per_day,
        {{ safe_divide('events.user_days', 'calendar.calendar_days') }} as active_users_per_day,
        coalesce(sessions.sessions, 0) as sessions,
        {{ safe_divide('sessions.sessions', 'calendar.calendar_days') }} as sessions_per_day,
        coalesce(events.purchases, 0) as purchases,
        cast(coalesce(events.revenue, 0) as decimal(18,2)) as revenue,
        {{ safe_divide('events.revenue', 'calendar.calendar_days') }} as revenue_per_day,
        {{ safe_divide('sessions.converting_sessions', 'sessions.sessions') }} as session_conversion_rate,
        sessions.avg_session_seconds
    from calendar
    left join events on calendar.is_weekend = events.is_weekend
    left join sessions on calendar.is_weekend = sessions.is_weekend
)

select * from final order by day_type
