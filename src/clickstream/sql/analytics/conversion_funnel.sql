-- one row per funnel step (per breakdown value, with a breakdown): users who reached it in order within the window, in progress, dropped, conversion and time from the step before
{#
  Ordered funnel, counted from funnel_users (one row per user who started: the furthest step of any attempt and
  the times of the earliest attempt reaching it). A user counts once, at their furthest step. A user not through
  is in progress while their latest attempt's window has not ended by the data's last event: the data's end
  moves with every batch, so it is decided here, over the per-user state, not stored with it.
  Times are compared as epoch microseconds: exact, and the same on every engine.
#}
{% set n = funnel | length %}
with data_end as (
    -- an attempt whose window ends after the data's last event may still complete
    select {{ epoch_us('max(event_ts)') }} as end_us from fct_events
),

user_funnel as (
    select
        funnel_users.user_key,
        funnel_users.breakdown_value,
        funnel_users.furthest_step as furthest,
        -- not through, and an attempt still inside its window: it may yet reach every remaining step
        funnel_users.furthest_step < {{ n }}
            and {{ epoch_us('funnel_users.last_attempt_ts') }} + {{ funnel_window_us }} > data_end.end_us
            as is_in_progress,
{% for k in range(1, n + 1) %}
        {{ epoch_us('funnel_users.step_' ~ k ~ '_ts') }} as step_{{ k }}_us{{ "," if not loop.last }}
{% endfor %}
    from funnel_users
    cross join data_end
),

user_steps as (
{% for k in range(1, n + 1) %}
    select
        breakdown_value, user_key, {{ k }} as step_number, furthest, is_in_progress,
        {{ 'cast(null as bigint)' if k == 1 else 'step_' ~ k ~ '_us - step_' ~ (k - 1) ~ '_us' }}
            as us_from_previous
    from user_funnel
    where furthest >= {{ k }}
{% if not loop.last %}
    union all
{% endif %}
{% endfor %}
),

timed as (
    select
        *,
        us_from_previous / 1e6 as seconds_from_previous,
        row_number() over (partition by breakdown_value, step_number order by us_from_previous, user_key)
            as time_rank,
        count(us_from_previous) over (partition by breakdown_value, step_number) as timed_users
    from user_steps
),

counted as (
    select
        breakdown_value,
        step_number,
        count(*) as users,
        count(case when furthest = step_number and is_in_progress then 1 end) as in_progress,
        count(case when furthest = step_number and step_number < {{ n }} and not is_in_progress then 1 end)
            as dropped,
        -- the middle time, or the mean of the two middle ones
        avg(case when time_rank in (floor((timed_users + 1) / 2), floor((timed_users + 2) / 2))
                 then seconds_from_previous end) as median_seconds_from_previous,
        -- exact: the same bits whatever the order the rows are added in
        {{ mean_seconds('us_from_previous') }} as mean_seconds_from_previous
    from timed
    group by breakdown_value, step_number
),

funnels as (
{% if funnel_breakdown %}
    select distinct breakdown_value from user_funnel
{% else %}
    select cast(null as string) as breakdown_value
{% endif %}
),

steps as (
{% for step in funnel %}
    select {{ loop.index }} as step_number, {{ literal(step) }} as event_type
{% if not loop.last %}
    union all
{% endif %}
{% endfor %}
),

filled as (
    select
        funnels.breakdown_value,
        steps.step_number,
        steps.event_type,
        coalesce(counted.users, 0) as users,
        coalesce(counted.in_progress, 0) as in_progress,
        coalesce(counted.dropped, 0) as dropped,
        counted.median_seconds_from_previous,
        counted.mean_seconds_from_previous
    from funnels
    cross join steps
    left join counted
        on (funnels.breakdown_value = counted.breakdown_value
            or (funnels.breakdown_value is null and counted.breakdown_value is null))
        and steps.step_number = counted.step_number
),

final as (
    select
{% if funnel_breakdown %}
        breakdown_value,
{% endif %}
        cast(step_number as integer) as step_number,
        event_type,
        users,
        in_progress,
        dropped,
        -- users still in progress are left out: their outcome is not known yet
        {{ safe_divide('users', 'users + coalesce(lag(dropped) over by_funnel, 0)') }} as conversion_from_previous,
        {{ safe_divide('users', 'users + coalesce(sum(dropped) over (partition by breakdown_value order by '
                       'step_number rows between unbounded preceding and 1 preceding), 0)') }} as conversion_from_first,
        median_seconds_from_previous,
        mean_seconds_from_previous
    from filled
    window by_funnel as (partition by breakdown_value order by step_number)
)

select * from final order by {{ 'breakdown_value, ' if funnel_breakdown }}step_number
