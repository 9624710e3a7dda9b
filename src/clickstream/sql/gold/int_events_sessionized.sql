-- one row per silver event, with the visit (derived session) it belongs to
{% set visit_attributes = visit_attributes | default([]) %}
with events as (
    select event_id, user_id, session_id, event_ts, event_type, product_id, amount, outcome{% for name in visit_attributes %}, {{ identifier(name) }}{% endfor %}

    from silver_events
),

gaps as (
    select
        *,
        -- a visit ends after an inactivity gap, even inside one supplied session id
        lag(event_ts) over (partition by user_id, session_id order by event_ts, event_id) as previous_event_ts
    from events
),

flagged as (
    select
        *,
        case
            when previous_event_ts is null then 1
            when {{ epoch_us('event_ts') }} - {{ epoch_us('previous_event_ts') }} > {{ timeout_us }} then 1
            else 0
        end as is_session_start
    from gaps
),

numbered as (
    select
        *,
        -- timestamps only grow along the order, so the latest start so far is this visit's start
        max(case when is_session_start = 1 then event_ts end) over visit_order as session_start_ts
    from flagged
    window visit_order as (
        partition by user_id, session_id order by event_ts, event_id
        rows between unbounded preceding and current row
    )
),

final as (
    select
        event_id,
        md5({{ key_of(['user_id', 'session_id', 'cast(' ~ epoch_us('session_start_ts') ~ ' as string)'],
                      free_text=['user_id', 'session_id'] if may_hold_unit_separator | default(true) else []) }})
            as session_key,
        user_id,
        session_id,
        session_start_ts,
        event_ts,
        event_type,
        product_id,
        amount,
        outcome,
{% for name in visit_attributes %}
        {{ identifier(name) }},
{% endfor %}
        is_session_start = 1 as is_session_start
    from numbered
)

select * from final
