-- one row per distinct clean event of the batch that silver did not hold before
with final as (
    select
        event_id, user_id, session_id, event_ts, event_type, product_id, amount, outcome,
        source_name, source_file, batch_id, ingestion_timestamp, ingestion_date
    from silver_candidates
    where disposition = 'silver'
)

select * from final
