-- one row per distinct clean event of the batch that silver did not hold before: the clean rows whose event
-- is unique, and the one copy kept of each repeated event
with unique_events as (
    select {{ columns | join(', ') }}
    from silver_clean
    where not exists (select 1 from silver_repeats where silver_repeats.event_id = silver_clean.event_id)
),

kept_copies as (
    select {{ columns | join(', ') }}
    from silver_repeats
    where disposition = 'silver'
),

final as (
    select * from unique_events
    union all
    select * from kept_copies
)

select * from final
