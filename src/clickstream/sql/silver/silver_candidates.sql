-- one row per clean bronze row of the batch (narrow: typed columns and lineage), kept or counted as a duplicate
with clean as (
    select
        event_id, user_id, session_id, event_ts, event_type, product_id, amount, outcome,
        source_name, source_file, batch_id, ingestion_timestamp, ingestion_date
    from silver_typed
    where rejection_reasons = ''
),

ranked as (
    select
        clean.*,
        -- copies of one event are equal: keep the first by file and batch so every run keeps the same
        row_number() over (partition by clean.event_id order by clean.source_file, clean.batch_id) as copy_number,
        silver_existing.event_id is not null as is_already_in_silver
    from clean
    left join silver_existing on clean.event_id = silver_existing.event_id
),

final as (
    select
        *,
        case when copy_number > 1 or is_already_in_silver then 'duplicate' else 'silver' end as disposition
    from ranked
)

select * from final
