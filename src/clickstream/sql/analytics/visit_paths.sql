-- one row per step of a visit's path (repeats collapsed, the first path_steps steps) and the edge leaving it: to the next step's event type, or exit
{#
  A visit's path depends on its own events only, and a visit belongs to one user, so an incremental build
  rebuilds the paths of the users gold changed, and takes only their visits from the first one gold sessionized
  again on (session_start_ts: every earlier visit stands); `paths` counts this table. An event of the same type as the one
  just before it in the visit is no new step; at one time, events are ordered by event id.
#}
with events as (
    select
        session_key,
        user_key,
        event_id,
        event_ts,
        event_type_key,
        min(event_ts) over (partition by session_key) as session_start_ts,
        lag(event_type_key) over (partition by session_key order by event_ts, event_id) as previous_type
    from fct_events
),

collapsed as (
    select session_key, user_key, session_start_ts, event_id, event_ts, event_type_key
    from events
    where previous_type is null or previous_type <> event_type_key
),

numbered as (
    select
        session_key,
        user_key,
        session_start_ts,
        event_type_key,
        row_number() over by_visit as step,
        lead(event_type_key) over by_visit as next_type
    from collapsed
    window by_visit as (partition by session_key order by event_ts, event_id)
),

final as (
    -- every visit with a step leaves it once: to the next step's type, or out of the visit
    select
        user_key,
        session_key,
        session_start_ts,
        cast(step as integer) as step,
        event_type_key as from_event,
        coalesce(next_type, 'exit') as to_event
    from numbered
    where step <= {{ path_steps }}
)

select * from final
