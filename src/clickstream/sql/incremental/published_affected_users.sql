-- one row per user a gold build recomputed, as it publishes them for the analytics after it: the time from which
-- their rows can change (first_new_ts), and the start of their first visit it sessionized again (visits_from)
{#
  Every visit of the user that starts before visits_from stands as published, with all its events (a visit
  sessionized again starts at its replay_from: replay_sessions.sql), so a result with one row per visit, or per
  event read within its visit, can change only from there on. visits_from is never after first_new_ts.
#}
with replayed as (
    select user_id as user_key, min(replay_from) as replay_from
    from {{ replay_table }}
    group by user_id
),

final as (
    select
        affected.user_key,
        affected.first_new_ts,
        least(affected.first_new_ts, coalesce(replayed.replay_from, affected.first_new_ts)) as visits_from
    from {{ affected_users }} affected
    left join replayed on affected.user_key = replayed.user_key
)

select * from final
