-- one row per source file of the batch: its bronze rows against the silver, quarantine and duplicate rows written
with tallied as (
    -- one scan of each input, one grouping: which of the four counts a row adds to is the column it fills
    select source_file, 1 as bronze_row, cast(null as integer) as silver_row,
        cast(null as integer) as quarantine_row, cast(null as integer) as duplicate_row
    from bronze_batch
    union all
    select source_file, null, 1, null, null from silver_written
    union all
    select source_file, null, null, 1, null from quarantine_written
    union all
    select source_file, null, null, null, 1 from silver_repeats where disposition = 'duplicate'
),

final as (
    -- a file with rows written but none in bronze shows up with bronze_rows 0 and breaks the ledger
    select
        source_file,
        count(bronze_row) as bronze_rows,
        count(silver_row) as silver_rows,
        count(quarantine_row) as quarantine_rows,
        count(duplicate_row) as duplicate_rows
    from tallied
    group by source_file
)

select * from final order by source_file
