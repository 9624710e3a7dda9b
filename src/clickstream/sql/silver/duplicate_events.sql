-- one row per clean bronze row of the batch that silver did not keep: a repeat within the batch (`duplicate`)
-- or an event silver already held (`redelivered`), typed as silver stores it
with final as (
    select
        {{ columns | join(', ') }},
        disposition as duplicate_kind
    from silver_repeats
    where disposition <> 'silver'
)

select * from final
