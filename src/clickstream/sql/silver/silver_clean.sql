-- one row per clean bronze row of the batch (it broke no rule): typed columns and lineage, as silver stores them
with final as (
    select
        event_id, user_id, session_id, event_ts, event_type, product_id, amount, outcome,
        source_name, source_file, batch_id, ingestion_timestamp, ingestion_date
    from silver_typed
    where rejection_reasons = ''
)

select * from final
