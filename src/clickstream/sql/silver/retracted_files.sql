-- the files of {{ table }} holding a row of a replaced file version{% if promotes %}, or a copy of a promoted event{% endif %}:
-- the files a retraction writes again
{% import 'silver/_retracted.sql' as parts %}
with final as (
    select distinct rows.file_path
    from {{ table }}_current rows
    where {{ parts.retracted('rows') }}
{% if promotes %}
    union
    select distinct rows.file_path
    from duplicates_current rows
    where rows.event_id in (select event_id from promoted_copies)
{% endif %}
)

select * from final
