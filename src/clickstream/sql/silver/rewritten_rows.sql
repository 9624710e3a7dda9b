-- one row per row of {{ table }} that stays in a file this run writes again: every row of those files but the
-- replaced file versions' rows{% if promotes %} and the copy of each promoted event (it moves to silver){% endif %}

{% import 'silver/_retracted.sql' as parts %}
{% import 'silver/_identity.sql' as identity with context %}
{% set free = ['user_id', 'session_id', 'event_type', 'product_id', 'outcome'] %}
with in_rewritten_files as (
    select current_rows.*
    from {{ table }}_current current_rows
    join {{ table }}_rewritten files on current_rows.file_path = files.file_path
    where not {{ parts.retracted('current_rows') }}
),

{% if promotes %}
ranked as (
    -- numbered as promoted_copies.sql numbers them: the copy numbered 1 of a promoted event is the promoted one
    select
        *,
        row_number() over (partition by event_id
                           order by source_file, batch_id, duplicate_kind, file_path{{ ', ' ~ identity.content_id(attribute_names, free) if with_content }}) as copy_number
    from in_rewritten_files
),

final as (
    select {{ columns | join(', ') }}
    from ranked
    where not (copy_number = 1 and event_id in (select event_id from promoted_copies))
)
{% else %}
final as (
    select {{ columns | join(', ') }} from in_rewritten_files
)
{% endif %}

select * from final
