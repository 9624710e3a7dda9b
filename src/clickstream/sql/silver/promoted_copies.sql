-- one row per event whose kept copy left silver with a replaced file version, when another copy of it remains
-- among the duplicates: the first by file and batch, which now stands for the event in silver
with removed as (
    select distinct current_rows.event_id
    from silver_current current_rows
    join retracted_parts parts
        on current_rows.source_file = parts.source_file and current_rows.batch_id = parts.batch_id
),

candidates as (
    select
        copies.*,
        row_number() over (partition by copies.event_id
                           order by copies.source_file, copies.batch_id, copies.duplicate_kind, copies.file_path)
            as copy_number
    from duplicates_current copies
    join removed on copies.event_id = removed.event_id
    where not exists (select 1 from retracted_parts parts
                      where parts.source_file = copies.source_file and parts.batch_id = copies.batch_id)
),

final as (
    select
        event_id, user_id, session_id, event_ts, event_type, product_id, amount, outcome,
        source_name, source_file, batch_id, ingestion_timestamp, ingestion_date, file_path
    from candidates
    where copy_number = 1
)

select * from final
