-- one row per path of event types leading to a purchase within a visit, most common first
with purchase_visits as (
    -- a path never crosses a visit, so only the visits with a purchase are ordered
    select session_key, event_id, event_ts, event_type_key, is_purchase
    from fct_events
    where session_key in (select session_key from fct_events where is_purchase)
),

steps as (
    select
        event_type_key,
        is_purchase,
{% for back in range(path_length - 1, 0, -1) %}
        lag(event_type_key, {{ back }}) over by_session as previous_{{ back }},
{% endfor %}
        event_id
    from purchase_visits
    window by_session as (partition by session_key order by event_ts, event_id)
),

paths as (
    select
        concat_ws(' > ', {% for back in range(path_length - 1, 0, -1) %}previous_{{ back }}, {% endfor %}event_type_key)
            as path
    from steps
    where is_purchase
),

counted as (
    select path, count(*) as purchases from paths group by path
),

final as (
    select
        cast(row_number() over (order by purchases desc, path) as integer) as path_rank,
        path,
        purchases,
        {{ safe_divide('purchases', 'sum(purchases) over ()') }} as share_of_purchases
    from counted
)

select * from final where path_rank <= {{ top_n }} order by path_rank
