-- one row per clean bronze row of the batch that silver did not keep: a repeat within the batch (`duplicate`)
-- or an event silver already held (`redelivered`), typed as silver stores it
with final as (
    select
        event_id, user_id, session_id, event_ts, event_type, product_id, amount, outcome,
        source_name, source_file, batch_id, ingestion_timestamp, ingestion_date,
        disposition as duplicate_kind
    from silver_repeats
    where disposition <> 'silver'
)

select * from final
