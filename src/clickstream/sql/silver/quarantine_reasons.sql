-- one row per source file and combination of broken rules, with how many rows of the batch broke exactly those
with final as (
    select source_file, rejection_reasons, count(*) as rows_rejected
    from quarantine_written
    where batch_id in {{ in_list(batches) }}
    group by source_file, rejection_reasons
)

select * from final order by source_file, rejection_reasons
