-- one row per event: each user's events in order, with the previous event and the seconds since it
with events as (
    select user_key, session_key, event_id, event_ts, event_type_key, product_key from fct_events
),

{% if incremental %}
-- An incremental build: fct_events holds the users of affected_users, whose rows before their first new event
-- (first_new_ts) stand as published. Only the rows from it on are numbered again, after the earlier ones, in
-- a window that starts at the last earlier timestamp, so that the first of them has its previous event.
earlier as (
    select events.user_key, count(*) as earlier_events, max(events.event_ts) as last_earlier_ts
    from events
    join affected_users affected on events.user_key = affected.user_key
    where events.event_ts < affected.first_new_ts
    group by events.user_key
),

window_rows as (
    select events.*, affected.first_new_ts, coalesce(earlier.earlier_events, 0) as earlier_events
    from events
    join affected_users affected on events.user_key = affected.user_key
    left join earlier on events.user_key = earlier.user_key
    where events.event_ts >= coalesce(earlier.last_earlier_ts, affected.first_new_ts)
),

replayed as (
    select
        *,
        earlier_events - count(case when event_ts < first_new_ts then 1 end) over (partition by user_key)
            as numbered_before
    from window_rows
),

{% endif %}
final as (
    select
        user_key,
        cast(row_number() over by_user{% if incremental %} + numbered_before{% endif %} as bigint) as event_number,
        event_ts,
        event_type_key as event_type,
        case when product_key = {{ literal(no_product_key) }} then null else product_key end as product_id,
        session_key,
        lag(event_type_key) over by_user as previous_event_type,
        ({{ epoch_us('event_ts') }} - {{ epoch_us('lag(event_ts) over by_user') }}) / 1e6 as seconds_since_previous
    from {{ 'replayed' if incremental else 'events' }}
    window by_user as (partition by user_key order by event_ts, event_id)
)

{% if incremental %}
select final.*
from final
join affected_users affected on final.user_key = affected.user_key
where final.event_ts >= affected.first_new_ts
{% else %}
select * from final
{% endif %}
