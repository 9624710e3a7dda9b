-- one row per week holding rows of the part a batch can change: rebuilt rows, and published ones where a
-- replaced row may move to another week (a visit that now starts earlier) or go (an event that left silver)
{% from 'incremental/_replaced.sql' import replaced with context %}
with final as (
    select distinct {{ week_of('candidate.' ~ model.period_from) }} as week
    from {{ rebuilt }} candidate
    where {{ replaced(model, 'candidate') }}
{% if with_published %}
    union
    select distinct {{ week_of('candidate.' ~ model.period_from) }} as week
    from {{ published }} candidate
    where {{ replaced(model, 'candidate') }}
{% endif %}
)

select * from final
