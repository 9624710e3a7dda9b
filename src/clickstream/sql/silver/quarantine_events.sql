-- one row per rejected bronze row: its raw values as they arrived and every rule it broke
with final as (
    select
        raw_user_id as UserID, raw_session_id as SessionID, raw_timestamp as Timestamp,
        raw_event_type as EventType, raw_product_id as ProductID, raw_amount as Amount, raw_outcome as Outcome,
        raw_event_id as EventID,
        rejection_reasons,
        source_line, raw_line,
        source_name, source_file, batch_id, ingestion_timestamp, ingestion_date
    from silver_typed
    where rejection_reasons <> ''
)

select * from final
