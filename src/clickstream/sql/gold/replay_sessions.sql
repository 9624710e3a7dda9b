-- one row per supplied session (user and session id) that holds events at or after its user's first new event:
-- the time its events are sessionized again from, the start of its last published visit at or before that
-- first new event (NULL: from its first event). The visits before that one stand: every later event, old or
-- new, comes after a gap longer than the timeout, so none can join them. A supplied session with no event
-- from the first new one on stands whole.
with published as (
    select
        sessions.user_key as user_id,
        sessions.source_session_id as session_id,
        case when sessions.session_start_ts <= scope.first_new_ts then sessions.session_start_ts end
            as visit_start,
        sessions.session_end_ts >= scope.first_new_ts as reaches_first_new
    from published_sessions sessions
    join scope_users scope on sessions.user_key = scope.scope_key
),

new as (
    select distinct user_id, session_id, cast(null as timestamp) as visit_start, true as reaches_first_new
    from silver_batch
),

final as (
    select user_id, session_id, max(visit_start) as replay_from
    from (select * from published union all select * from new) sessions
    group by user_id, session_id
    having max(case when reaches_first_new then 1 else 0 end) = 1
)

select * from final
