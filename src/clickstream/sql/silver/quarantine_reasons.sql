-- one row per source file and combination of broken rules, with how many rows broke exactly those
with final as (
    select source_file, rejection_reasons, count(*) as rows_rejected
    from quarantine_written
    group by source_file, rejection_reasons
)

select * from final order by source_file, rejection_reasons
