-- one row per row of a table stored whole after a merge: the published rows a batch cannot change, and the
-- rebuilt rows of the part it can
{% from 'incremental/_replaced.sql' import replaced with context %}
with kept as (
    select * from {{ published }} published where not {{ replaced(model, 'published') }}
),

rebuilt as (
    select * from {{ rebuilt }} rebuilt where {{ replaced(model, 'rebuilt') }}
),

final as (
    select * from kept
    union all
    select * from rebuilt
)

select * from final
