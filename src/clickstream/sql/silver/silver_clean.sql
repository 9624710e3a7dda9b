-- one row per clean bronze row of the batch (it broke no rule): typed columns and lineage, as silver stores them
{# with supplied ids or attributes, also the supplied id and the copy's content (silver_repeats ranks by them) #}
with final as (
    select
        {{ columns | join(', ') }}{{ ', supplied_event_id' if identified }}{{ ', content_id' if with_content }}
    from silver_typed
    where rejection_reasons = ''
)

select * from final
