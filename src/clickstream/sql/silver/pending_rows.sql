-- one row per bronze row of the pending batches that silver takes in: all of them but the rows of a file version
-- those same batches replace
with final as (
    select *
    from bronze_pending rows
{% if replaced_parts %}
    where not exists (select 1 from retracted_parts parts
                      where parts.source_file = rows.source_file and parts.batch_id = rows.batch_id)
{% endif %}
)

select * from final
