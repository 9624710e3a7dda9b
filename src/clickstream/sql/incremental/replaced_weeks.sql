-- one row per week, among the published files read, where published rows are replaced: such a week is written
-- again (a week where rows are only added keeps its files and gains one)
{% from 'incremental/_replaced.sql' import replaced with context %}
with final as (
    select distinct {{ week_of('candidate.' ~ model.period_from) }} as week
    from {{ published }} candidate
    where {{ replaced(model, 'candidate') }}
)

select * from final
