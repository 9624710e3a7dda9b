-- the events a retraction takes out of silver ('removed') or moves into it from the duplicates ('promoted'),
-- for gold's next incremental build
{% import 'silver/_retracted.sql' as parts %}
with final as (
    select rows.user_id, rows.event_ts, rows.event_id, 'removed' as change
    from silver_current rows
    where {{ parts.retracted('rows') }}
    union all
    select user_id, event_ts, event_id, 'promoted' as change
    from promoted_copies
)

select * from final
