-- what the new batch is de-duplicated against when a retraction runs: silver without the rows that leave, with
-- the promoted copies
{% import 'silver/_retracted.sql' as parts %}
with final as (
    select {{ columns | join(', ') }}
    from silver_current rows
    where not {{ parts.retracted('rows') }}
    union all
    select {{ columns | join(', ') }}
    from promoted_copies
)

select * from final
