-- one row per clean bronze row of the batch whose event is not unique: it repeats within the batch or silver
-- already holds it. Usually a small share of the batch, so every other row goes straight through (silver_events).
{% import 'silver/_identity.sql' as identity with context %}
{% set free = ['user_id', 'session_id', 'event_type', 'product_id', 'outcome'] %}
{# with a supplied id, copies of one event may differ: ranked by their content too, and those unlike the copy
   silver keeps flagged as conflicting #}
with clean as (
    select * from silver_clean
),

repeated as (
    -- an id seen more than once in the batch, or one silver already holds (with what that copy holds)
    select event_id, bool_or(is_already_in_silver) as is_already_in_silver{{ ', max(held_content_id) as held_content_id' if with_content }}
    from (
        select event_id, false as is_already_in_silver{{ ', cast(null as string) as held_content_id' if with_content }}
        from clean group by event_id having count(*) > 1
        union all
        select event_id, true{{ ', ' ~ identity.content_id(attribute_names, free) if with_content }}
        from silver_existing where event_id in (select event_id from clean)
    ) candidates
    group by event_id
),

ranked as (
    select
        clean.*,
        repeated.is_already_in_silver,
{% if with_content %}
        coalesce(repeated.held_content_id,
                 first_value(clean.content_id) over copies_in_order) as kept_content_id,
{% endif %}
        -- copies of one event are equal but for a supplied id's: keep the first by file, batch (and content), so
        -- every run keeps the same
        row_number() over copies_in_order as copy_number
    from clean
    join repeated on clean.event_id = repeated.event_id
    window copies_in_order as (partition by clean.event_id order by clean.source_file, clean.batch_id{{ ', clean.content_id' if with_content }})
),

final as (
    select
        *,
        -- an event silver held before is delivered again (another file, an overlapping export); else the first
        -- copy by file and batch stays and the others repeat it within the batch
        case when is_already_in_silver then 'redelivered' when copy_number > 1 then 'duplicate' else 'silver' end
            as disposition{{ ',' if identified }}
{% if identified %}
        -- a supplied id whose copies hold other content than the one silver keeps
        supplied_event_id is not null and content_id <> kept_content_id as is_conflicting
{% endif %}
    from ranked
)

select * from final
