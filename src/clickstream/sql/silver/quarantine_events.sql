-- one row per rejected bronze row: its raw values as they arrived and every rule it broke
with final as (
    select
        UserID, SessionID, Timestamp, EventType, ProductID, Amount, Outcome,
        rejection_reasons,
        source_name, source_file, batch_id, ingestion_timestamp, ingestion_date
    from silver_classified
    where disposition = 'quarantine'
)

select * from final
