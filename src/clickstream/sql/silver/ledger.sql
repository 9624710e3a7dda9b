-- one row per source file of the batch: its bronze rows against the silver, quarantine and duplicate rows written
with bronze as (
    select source_file, count(*) as bronze_rows from bronze_batch group by source_file
),

silver as (
    select source_file, count(*) as silver_rows from silver_written group by source_file
),

quarantine as (
    select source_file, count(*) as quarantine_rows from quarantine_written group by source_file
),

duplicates as (
    select source_file, count(*) as duplicate_rows
    from silver_candidates
    where disposition = 'duplicate'
    group by source_file
),

final as (
    select
        bronze.source_file,
        bronze.bronze_rows,
        coalesce(silver.silver_rows, 0) as silver_rows,
        coalesce(quarantine.quarantine_rows, 0) as quarantine_rows,
        coalesce(duplicates.duplicate_rows, 0) as duplicate_rows
    from bronze
    left join silver on bronze.source_file = silver.source_file
    left join quarantine on bronze.source_file = quarantine.source_file
    left join duplicates on bronze.source_file = duplicates.source_file
)

select * from final order by source_file
