-- one row per user and UTC day they were active: their events, visits, purchases and spend that day, the per-user state daily_activity and day_type_behavior count
{#
  A visit belongs to one user, so a day's visits are the sum of its users' visits (a visit crossing midnight
  counts on each day it has events, as in daily_activity). A user's rows depend on their own events only, so an
  incremental run rebuilds them for the users gold changed, and the daily results add up the rows instead of
  reading the whole fact again.
#}
with events as (
    select user_key, date_key, session_key, is_purchase, amount from fct_events
),

final as (
    select
        user_key,
        date_key,
        count(*) as events,
        count(distinct session_key) as sessions,
        count(case when is_purchase then 1 end) as purchases,
        count(case when is_purchase then amount end) as priced_purchases,
        -- the known amounts of the day's purchases; NULL where none carries one
        cast(sum(case when is_purchase then amount end) as decimal(18,2)) as revenue
    from events
    group by user_key, date_key
)

select * from final
