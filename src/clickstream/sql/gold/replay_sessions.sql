-- one row per supplied session (user and session id) that holds events at or after its user's first new event:
-- the time its events are sessionized again from, and whether any of them was published before. That time is
-- the start of its last published visit at or before the first new event, or the first new event itself when
-- there is no such visit or it ended more than the timeout before. Every visit before it stands: every later
-- event, old or new, comes after a gap longer than the timeout, so none can join it. A supplied session with
-- no event from the first new one on stands whole.
with published as (
    select
        sessions.user_key as user_id,
        sessions.source_session_id as session_id,
        case when sessions.session_start_ts <= affected.first_new_ts then sessions.session_start_ts end
            as visit_start,
        case when sessions.session_start_ts <= affected.first_new_ts then sessions.session_end_ts end
            as visit_end,
        sessions.session_end_ts
    from published_sessions sessions
    join affected_users affected on sessions.user_key = affected.user_key
),

new as (
    select distinct
        user_id,
        session_id,
        cast(null as timestamp) as visit_start,
        cast(null as timestamp) as visit_end,
        cast(null as timestamp) as session_end_ts
    from silver_batch
),

reaching as (
    select
        sessions.user_id,
        sessions.session_id,
        max(affected.first_new_ts) as first_new_ts,
        -- the visits are disjoint, so the latest start and the latest end are those of the last visit
        max(sessions.visit_start) as last_visit_start,
        max(sessions.visit_end) as last_visit_end,
        max(sessions.session_end_ts) as last_published_ts,
        -- new events, or a published visit that ends at or after the first new event
        count(case when sessions.session_end_ts is null or sessions.session_end_ts >= affected.first_new_ts then 1 end)
            as reaching_first_new
    from (select * from published union all select * from new) sessions
    join affected_users affected on sessions.user_id = affected.user_key
    group by sessions.user_id, sessions.session_id
),

final as (
    select
        user_id,
        session_id,
        case
            when last_visit_end is null
                or {{ epoch_us('first_new_ts') }} - {{ epoch_us('last_visit_end') }} > {{ timeout_us }}
                then first_new_ts
            else last_visit_start
        end as replay_from,
        last_published_ts
    from reaching
    where reaching_first_new > 0
),

flagged as (
    select user_id, session_id, replay_from, coalesce(last_published_ts >= replay_from, false) as reads_published
    from final
)

select * from flagged
