-- one row per funnel step (per breakdown value, with a breakdown): users who reached it in order within the window, in progress, dropped, conversion and time from the step before
{#
  Ordered funnel. Every step-1 event starts an attempt; each next step is the first event of its type at or after
  the previous step's time and at most funnel_window_us after the attempt's step 1. A user counts once, at the
  furthest step of any attempt; their times between steps are those of their earliest attempt reaching it.
  Times are compared as epoch microseconds: exact, and the same on every engine.
#}
{% set n = funnel | length %}
{% set part = 'session_key' if funnel_scope == 'visit' else 'user_key' %}
with events as (
    select user_key, session_key, event_id, event_type_key, {{ epoch_us('event_ts') }} as ts_us
    from fct_events
    where event_type_key in {{ in_list(funnel) }}
),

data_end as (
    -- an attempt whose window ends after the data's last event may still complete
    select {{ epoch_us('max(event_ts)') }} as end_us from fct_events
),

reach_1 as (
    select user_key, {{ part }} as part_key, event_id as attempt_id, ts_us as step_1_us
    from events
    where event_type_key = {{ literal(funnel[0]) }}
),
{% for k in range(2, n + 1) %}

reach_{{ k }} as (
    -- The attempts that reached step {{ k - 1 }}, and step {{ k }}'s events, in one stream scanned from the latest: at
    -- one time the events come first (they count as after the step before), so the running minimum of event
    -- times at an attempt is the first step-{{ k }} event at or after its step {{ k - 1 }}.
    select part_key, attempt_id, step_1_us, next_us as step_{{ k }}_us
    from (
        select
            part_key, attempt_id, step_1_us, is_attempt,
            min(case when is_attempt = 0 then ts_us end) over (
                partition by part_key order by ts_us desc, is_attempt, row_id
                rows between unbounded preceding and current row) as next_us
        from (
            select part_key, attempt_id, step_1_us, step_{{ k - 1 }}_us as ts_us, 1 as is_attempt, attempt_id as row_id
            from reach_{{ k - 1 }}
            union all
            select {{ part }}, cast(null as string), cast(null as bigint), ts_us, 0, event_id
            from events
            where event_type_key = {{ literal(funnel[k - 1]) }}
        ) stream
    ) scanned
    where is_attempt = 1 and next_us <= step_1_us + {{ funnel_window_us }}
),
{% endfor %}

attempts as (
    select
        reach_1.user_key,
        reach_1.attempt_id,
{% for k in range(1, n + 1) %}
        reach_{{ k }}.step_{{ k }}_us,
{% endfor %}
{% if n == 1 %}
        1 as reached,
{% else %}
        case
{% for k in range(n, 1, -1) %}
            when reach_{{ k }}.attempt_id is not null then {{ k }}
{% endfor %}
            else 1
        end as reached,
{% endif %}
        reach_1.step_1_us + {{ funnel_window_us }} > data_end.end_us as is_open
    from reach_1
{% for k in range(2, n + 1) %}
    left join reach_{{ k }} on reach_1.attempt_id = reach_{{ k }}.attempt_id
{% endfor %}
    cross join data_end
),

ranked as (
    select
        *,
        row_number() over (partition by user_key order by reached desc, step_1_us, attempt_id) as attempt_rank,
        max(case when is_open then 1 else 0 end) over (partition by user_key) as has_open_attempt
    from attempts
),

user_funnel as (
    -- one row per user who started: the furthest step, and the earliest attempt that reached it
    select
        ranked.user_key,
{% if funnel_breakdown in visit_attributes | default([]) %}
        first_visits.breakdown_value,
{% elif funnel_breakdown %}
        cast(dim_users.{{ funnel_breakdown }} as string) as breakdown_value,
{% else %}
        cast(null as string) as breakdown_value,
{% endif %}
        ranked.reached as furthest,
        -- not through, and an attempt still inside its window: it may yet reach every remaining step
        ranked.reached < {{ n }} and ranked.has_open_attempt = 1 as is_in_progress,
{% for k in range(1, n + 1) %}
        ranked.step_{{ k }}_us{{ "," if not loop.last }}
{% endfor %}
    from ranked
{% if funnel_breakdown in visit_attributes | default([]) %}
    left join (
        -- the attribute's value on the user's first visit
        select user_key, breakdown_value
        from (
            select
                user_key,
                {{ identifier(funnel_breakdown) }} as breakdown_value,
                row_number() over (partition by user_key order by session_start_ts, session_key) as visit_number
            from dim_sessions
        ) visits
        where visit_number = 1
    ) first_visits on ranked.user_key = first_visits.user_key
{% elif funnel_breakdown %}
    left join dim_users on ranked.user_key = dim_users.user_key
{% endif %}
    where ranked.attempt_rank = 1
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
