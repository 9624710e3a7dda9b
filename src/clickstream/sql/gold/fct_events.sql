-- one row per event (grain: event_id), keyed to every dimension of the star
with events as (
    select * from int_events_sessionized
),

final as (
    select
        event_id,
        user_id as user_key,
        session_key,
        coalesce(product_id, {{ literal(no_product_key) }}) as product_key,
        event_type as event_type_key,
        {{ date_key('event_ts') }} as date_key,
        cast(hour(event_ts) * 100 + minute(event_ts) as integer) as time_key,
        event_ts,
        amount,
        outcome,
        event_type in {{ in_list(purchase_event_types) }} as is_purchase
    from events
)

select * from final
