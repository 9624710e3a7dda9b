-- one row per distinct clean event of the batch that silver did not hold before: the clean rows whose event
-- is unique, and the one copy kept of each repeated event
with unique_events as (
    select *
    from silver_clean
    where not exists (select 1 from silver_repeats where silver_repeats.event_id = silver_clean.event_id)
),

kept_copies as (
    select
        event_id, user_id, session_id, event_ts, event_type, product_id, amount, outcome,
        source_name, source_file, batch_id, ingestion_timestamp, ingestion_date
    from silver_repeats
    where disposition = 'silver'
),

final as (
    select * from unique_events
    union all
    select * from kept_copies
)

select * from final
