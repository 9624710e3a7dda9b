-- one row per event: each user's events in order, with the previous event and the seconds since it
with events as (
    select user_key, session_key, event_id, event_ts, event_type_key, product_key from fct_events
),

final as (
    select
        user_key,
        cast(row_number() over by_user as bigint) as event_number,
        event_ts,
        event_type_key as event_type,
        case when product_key = {{ literal(no_product_key) }} then null else product_key end as product_id,
        session_key,
        lag(event_type_key) over by_user as previous_event_type,
        ({{ epoch_us('event_ts') }} - {{ epoch_us('lag(event_ts) over by_user') }}) / 1e6 as seconds_since_previous
    from events
    window by_user as (partition by user_key order by event_ts, event_id)
)

select * from final
