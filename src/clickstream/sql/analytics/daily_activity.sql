-- one row per calendar day: active users, events, events per user, sessions, purchases, revenue, day type
with daily as (
    select
        date_key,
        count(distinct user_key) as active_users,
        count(*) as events,
        count(distinct session_key) as sessions,
        count(case when is_purchase then 1 end) as purchases,
        sum(case when is_purchase then amount end) as revenue
    from fct_events
    group by date_key
),

final as (
    select
        dim_date.date_day as activity_date,
        dim_date.day_name,
        dim_date.is_weekend,
        coalesce(daily.active_users, 0) as active_users,
        coalesce(daily.events, 0) as events,
        {{ safe_divide('daily.events', 'daily.active_users') }} as events_per_user,
        coalesce(daily.sessions, 0) as sessions,
        coalesce(daily.purchases, 0) as purchases,
        cast(coalesce(daily.revenue, 0) as decimal(18,2)) as revenue
    from dim_date
    left join daily on dim_date.date_key = daily.date_key
)

select * from final order by activity_date
