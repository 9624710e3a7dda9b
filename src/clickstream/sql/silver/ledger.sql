-- one row per source file of the batch: its bronze rows against the silver, quarantine, duplicate and
-- re-delivered rows written (rows of earlier batches that a retraction wrote again are not this batch's)
with tallied as (
    -- one scan of each input, one grouping: which of the five counts a row adds to is the column it fills
    select source_file, 1 as bronze_row, cast(null as integer) as silver_row,
        cast(null as integer) as quarantine_row, cast(null as integer) as duplicate_row,
        cast(null as integer) as redelivered_row
    from bronze_batch
    union all
    select source_file, null, 1, null, null, null from silver_written where batch_id in {{ in_list(batches) }}
    union all
    select source_file, null, null, 1, null, null from quarantine_written where batch_id in {{ in_list(batches) }}
    union all
    select source_file, null, null, null,
        case when duplicate_kind = 'duplicate' then 1 end,
        case when duplicate_kind = 'redelivered' then 1 end
    from duplicates_written
    where batch_id in {{ in_list(batches) }}
),

final as (
    -- a file with rows written but none in bronze shows up with bronze_rows 0 and breaks the ledger
    select
        source_file,
        count(bronze_row) as bronze_rows,
        count(silver_row) as silver_rows,
        count(quarantine_row) as quarantine_rows,
        count(duplicate_row) as duplicate_rows,
        count(redelivered_row) as redelivered_rows
    from tallied
    group by source_file
)

select * from final order by source_file
