-- one row per user who started the ordered funnel: the furthest step of any attempt, the times of the earliest attempt reaching it, and the start of their latest attempt
{#
  The per-user state of the ordered funnel (conversion_funnel counts it). Every step-1 event starts an attempt;
  each next step is the first event of its type at or after the previous step's time and at most
  funnel_window_us after the attempt's step 1. A user's row depends on their own events only (and their
  dim_users or first visit for the breakdown), so an incremental build rebuilds it for the users gold changed.
  Whether an attempt is still open depends on the data's end, which moves with every batch: that is decided
  by conversion_funnel from last_attempt_ts, never stored here. Times are compared as epoch microseconds: exact,
  and the same on every engine.
#}
{% set n = funnel | length %}
{% set part = 'session_key' if funnel_scope == 'visit' else 'user_key' %}
with events as (
    select user_key, session_key, event_id, event_type_key, event_ts, {{ epoch_us('event_ts') }} as ts_us
    from fct_events
    where event_type_key in {{ in_list(funnel) }}
),

reach_1 as (
    select user_key, {{ part }} as part_key, event_id as attempt_id, ts_us as step_1_us, event_ts as step_1_ts
    from events
    where event_type_key = {{ literal(funnel[0]) }}
),
{% for k in range(2, n + 1) %}

reach_{{ k }} as (
    -- The attempts that reached step {{ k - 1 }}, and step {{ k }}'s events, in one stream scanned from the latest: at
    -- one time the events come first (they count as after the step before), so the running minimum of event
    -- times at an attempt is the first step-{{ k }} event at or after its step {{ k - 1 }} (one running minimum, of
    -- the timestamps: their order is their microseconds')
    select part_key, attempt_id, step_1_us, {{ epoch_us('next_ts') }} as step_{{ k }}_us, next_ts as step_{{ k }}_ts
    from (
        select
            part_key, attempt_id, step_1_us, is_attempt,
            min(case when is_attempt = 0 then event_ts end) over scan as next_ts
        from (
            select part_key, attempt_id, step_1_us, step_{{ k - 1 }}_us as ts_us, step_{{ k - 1 }}_ts as event_ts,
                   1 as is_attempt, attempt_id as row_id
            from reach_{{ k - 1 }}
            union all
            select {{ part }}, cast(null as string), cast(null as bigint), ts_us, event_ts, 0, event_id
            from events
            where event_type_key = {{ literal(funnel[k - 1]) }}
        ) stream
        window scan as (partition by part_key order by ts_us desc, is_attempt, row_id
                        rows between unbounded preceding and current row)
    ) scanned
    where is_attempt = 1 and {{ epoch_us('next_ts') }} <= step_1_us + {{ funnel_window_us }}
),
{% endfor %}

attempts as (
    select
        reach_1.user_key,
        reach_1.attempt_id,
        reach_1.step_1_us,
{% for k in range(1, n + 1) %}
        reach_{{ k }}.step_{{ k }}_ts,
{% endfor %}
{% if n == 1 %}
        1 as reached
{% else %}
        case
{% for k in range(n, 1, -1) %}
            when reach_{{ k }}.attempt_id is not null then {{ k }}
{% endfor %}
            else 1
        end as reached
{% endif %}
    from reach_1
{% for k in range(2, n + 1) %}
    left join reach_{{ k }} on reach_1.attempt_id = reach_{{ k }}.attempt_id
{% endfor %}
),

ranked as (
    select
        *,
        row_number() over (partition by user_key order by reached desc, step_1_us, attempt_id) as attempt_rank,
        max(step_1_ts) over (partition by user_key) as last_attempt_ts
    from attempts
),

final as (
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
        cast(ranked.reached as integer) as furthest_step,
{% for k in range(1, n + 1) %}
        ranked.step_{{ k }}_ts,
{% endfor %}
        ranked.last_attempt_ts
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
)

select * from final
