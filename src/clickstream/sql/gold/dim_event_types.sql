-- one row per event type (grain: event_type_key): the configured types and any other type seen
with observed as (
    select event_type_key, count(*) as total_events from fct_events group by event_type_key
),

configured as (
{% if not known_event_types %}
    select cast(null as string) as event_type_key where 1 = 0
{% endif %}
{% for event_type in known_event_types %}
    select {{ literal(event_type) }} as event_type_key
{% if not loop.last %}
    union all
{% endif %}
{% endfor %}
),

all_types as (
    select event_type_key from observed
    union
    select event_type_key from configured
),

final as (
    select
        all_types.event_type_key,
        all_types.event_type_key as event_type,
        all_types.event_type_key in {{ in_list(product_event_types) }} as is_product_event,
        all_types.event_type_key in {{ in_list(purchase_event_types) }} as is_purchase,
        case
{% for step in funnel %}
            when all_types.event_type_key = {{ literal(step) }} then {{ loop.index }}
{% endfor %}
        end as funnel_step,
        coalesce(observed.total_events, 0) as total_events
    from all_types
    left join observed on all_types.event_type_key = observed.event_type_key
)

select * from final
