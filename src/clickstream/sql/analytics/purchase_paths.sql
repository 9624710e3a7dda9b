-- one row per path of event types leading to a purchase within a visit, most common first
with steps as (
    select
        event_type_key,
        is_purchase,
{% for back in range(path_length - 1, 0, -1) %}
        lag(event_type_key, {{ back }}) over by_session as previous_{{ back }},
{% endfor %}
        event_id
    from fct_events
    window by_session as (partition by session_key order by event_ts, event_id)
),

paths as (
    select
        concat_ws(' > ', {% for back in range(path_length - 1, 0, -1) %}previous_{{ back }}, {% endfor %}event_type_key) as path
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
