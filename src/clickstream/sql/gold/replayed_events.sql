-- one row per silver event an incremental build sessionizes again: the new events and, where a replayed session
-- holds published events from the time it is replayed from, those too (replay_sessions.sql)
with new_events as (
    select silver.*
    from silver_batch silver
    join replay_sessions replay
        on silver.user_id = replay.user_id and silver.session_id is not distinct from replay.session_id
    where silver.event_ts >= replay.replay_from
),

{% if reads_published %}
published_events as (
    select silver.*
    from silver_earlier silver
    join replay_sessions replay
        on silver.user_id = replay.user_id and silver.session_id is not distinct from replay.session_id
    where silver.event_ts >= replay.replay_from and replay.reads_published
),

{% endif %}
final as (
    select * from new_events
{% if reads_published %}
    union all
    select * from published_events
{% endif %}
)

select * from final
