-- one row per user whose rows a build recomputes (user_key), with the time from which their rows can change
-- (first_new_ts): the earliest of their new events and of their events that left silver
{#
  `changes` says what tells of them (incremental.register_affected_users):
  - 'silver': a gold build's new events (silver_batch) and, with `removals`, the events that left silver
  - 'gold': the affected users a gold build published (gold_affected_users), for the analytics after it, from
    the start of their first visit that build sessionized again (visits_from: every earlier visit stands, so a
    result per visit can change only from there; published_affected_users.sql)
  - 'none': no user (the analytics were built from this very gold build)
#}
with changes as (
{% if changes == 'silver' %}
    select user_id as user_key, event_ts as first_new_ts from silver_batch
{% if removals %}
    union all
    select user_id as user_key, event_ts as first_new_ts from silver_run_changes where change = 'removed'
{% endif %}
{% elif changes == 'gold' %}
    select user_key, visits_from as first_new_ts from gold_affected_users
{% else %}
    select cast(null as string) as user_key, cast(null as timestamp) as first_new_ts where 1 = 0
{% endif %}
),

final as (
    select user_key, min(first_new_ts) as first_new_ts
    from changes
    where user_key is not null
    group by user_key
)

select * from final
