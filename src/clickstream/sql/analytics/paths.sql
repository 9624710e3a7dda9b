-- one row per step of the visits' paths and edge leaving it: from an event type to the next one (or exit), with the visits and users that took it
{# Counted from visit_paths (one row per step of a visit's collapsed path: see visit_paths.sql). #}
with counted as (
    select step, from_event, to_event, count(*) as sessions, count(distinct user_key) as users
    from visit_paths
    group by step, from_event, to_event
),

final as (
    select
        step,
        from_event,
        to_event,
        sessions,
        users,
        {{ safe_divide('sessions', 'sum(sessions) over (partition by step)') }} as share_of_step
    from counted
)

select * from final order by step, sessions desc, from_event, to_event
