-- one row per row of `source` (the affected users' rows of the fact) in a visit holding an event at or after its user's first_new_ts: what a per-visit result reads to rebuild its rows from that event on
{#
  Every row a merge replaces (changes_from at or after first_new_ts) belongs to such a visit, and its visit is
  read whole: a path or a purchase's path is the same as from the whole history. A visit whose events all come
  before first_new_ts is not read; its rows stand as published.
#}
with changed_visits as (
    select distinct source_rows.session_key
    from {{ source }} source_rows
    join affected_users affected on source_rows.user_key = affected.user_key
    where source_rows.event_ts >= affected.first_new_ts
),

final as (
    select source_rows.*
    from {{ source }} source_rows
    where source_rows.session_key in (select changed_visits.session_key from changed_visits)
)

select * from final
