-- per file, the rows of {{ table }} that belong to a replaced file version (the retraction's proof)
{% import 'silver/_retracted.sql' as parts %}
with final as (
    select rows.source_file, count(*) as retracted_rows
    from {{ table }} rows
    where {{ parts.retracted('rows') }}
    group by rows.source_file
)

select * from final
