-- one row per row a merge writes into the weeks it touches: the rebuilt rows of the part a batch can change,
-- and, in the weeks written again, the published rows it does not change
{% from 'incremental/_replaced.sql' import replaced with context %}
with kept as (
{% if rewritten_weeks %}
    select * from {{ published }} published
    where {{ week_of('published.' ~ model.period_from) }} in {{ in_list(rewritten_weeks) }}
        and not {{ replaced(model, 'published') }}
{% else %}
    select * from {{ rebuilt }} where 1 = 0
{% endif %}
),

rebuilt as (
    select * from {{ rebuilt }} rebuilt
    where {{ replaced(model, 'rebuilt') }}
        and {{ week_of('rebuilt.' ~ model.period_from) }} in {{ in_list(touched_weeks) }}
),

final as (
    select * from kept
    union all
    select * from rebuilt
)

select * from final
