-- one row per step of the visits' paths and edge leaving it: from an event type to the next one (or exit), with the visits and users that took it
with events as (
    select
        session_key,
        user_key,
        event_id,
        event_ts,
        event_type_key,
        lag(event_type_key) over (partition by session_key order by event_ts, event_id) as previous_type
    from fct_events
),

collapsed as (
    -- an event of the same type as the one just before it in the visit is no new step
    select session_key, user_key, event_id, event_ts, event_type_key
    from events
    where previous_type is null or previous_type <> event_type_key
),

numbered as (
    select
        session_key,
        user_key,
        event_type_key,
        row_number() over by_visit as step,
        lead(event_type_key) over by_visit as next_type
    from collapsed
    window by_visit as (partition by session_key order by event_ts, event_id)
),

edges as (
    -- every visit with a step leaves it once: to the next step's type, or out of the visit
    select step, event_type_key as from_event, coalesce(next_type, 'exit') as to_event, session_key, user_key
    from numbered
    where step <= {{ path_steps }}
),

counted as (
    select step, from_event, to_event, count(*) as sessions, count(distinct user_key) as users
    from edges
    group by step, from_event, to_event
),

final as (
    select
        cast(step as integer) as step,
        from_event,
        to_event,
        sessions,
        users,
        {{ safe_divide('sessions', 'sum(sessions) over (partition by step)') }} as share_of_step
    from counted
)

select * from final order by step, sessions desc, from_event, to_event
