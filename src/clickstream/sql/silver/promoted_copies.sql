-- one row per event whose kept copy left silver with a replaced file version, when another copy of it remains
-- among the duplicates: the first by file and batch (and content: a supplied id's copies may differ), which now
-- stands for the event in silver
{% import 'silver/_retracted.sql' as parts %}
{% import 'silver/_identity.sql' as identity with context %}
{% set free = ['user_id', 'session_id', 'event_type', 'product_id', 'outcome'] %}
with removed as (
    select distinct current_rows.event_id
    from silver_current current_rows
    where {{ parts.retracted('current_rows') }}
),

candidates as (
    select
        copies.*,
        row_number() over (partition by copies.event_id
                           order by copies.source_file, copies.batch_id, copies.duplicate_kind, copies.file_path{{ ', ' ~ identity.content_id(attribute_names, free) if with_content }})
            as copy_number
    from duplicates_current copies
    join removed on copies.event_id = removed.event_id
    where not {{ parts.retracted('copies') }}
),

final as (
    select {{ columns | join(', ') }}, file_path
    from candidates
    where copy_number = 1
)

select * from final
