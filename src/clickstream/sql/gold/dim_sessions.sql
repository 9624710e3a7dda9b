-- one row per visit (grain: session_key): a supplied session split wherever the user was inactive too long
{% set visit_attributes = visit_attributes | default([]) %}
with events as (
    select * from int_events_sessionized
),

final as (
    select
        session_key,
        min(user_id) as user_key,
        min(session_id) as source_session_id,
        min(event_ts) as session_start_ts,
        max(event_ts) as session_end_ts,
        ({{ epoch_us('max(event_ts)') }} - {{ epoch_us('min(event_ts)') }}) / 1e6 as duration_seconds,
        {{ date_key('min(event_ts)') }} as start_date_key,
        count(*) as total_events,
        count(case when event_type = 'page_view' then 1 end) as page_views,
        count(case when event_type in {{ in_list(product_view_event_types) }} then 1 end) as product_views,
        count(case when event_type in {{ in_list(cart_add_event_types) }} then 1 end) as cart_adds,
        count(case when event_type in {{ in_list(purchase_event_types) }} then 1 end) as purchases,
        -- the known amounts; NULL where the visit bought and no purchase carries an amount
        case when count(case when event_type in {{ in_list(purchase_event_types) }} then amount end) > 0
                  or count(case when event_type in {{ in_list(purchase_event_types) }} then 1 end) = 0
             then cast(coalesce(sum(case when event_type in {{ in_list(purchase_event_types) }} then amount end), 0)
                       as decimal(18,2)) end as revenue,
        count(*) = 1 as is_bounce,
        count(case when event_type in {{ in_list(purchase_event_types) }} then 1 end) > 0 as has_purchase{{ ',' if visit_attributes }}
{% for name in visit_attributes %}
        -- the value on the visit's first event (one event starts it)
        max(case when is_session_start then {{ identifier(name) }} end) as {{ identifier(name) }}{{ ',' if not loop.last }}
{% endfor %}
    from events
    group by session_key
)

select * from final
