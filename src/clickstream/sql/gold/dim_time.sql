-- one row per minute of the day (grain: time_key = hour * 100 + minute)
with hours as (
{% for hour in range(24) %}
    select {{ hour }} as hour_of_day{% if not loop.last %} union all{% endif %}

{% endfor %}
),

minutes as (
{% for minute in range(60) %}
    select {{ minute }} as minute_of_hour{% if not loop.last %} union all{% endif %}

{% endfor %}
),

final as (
    select
        cast(hour_of_day * 100 + minute_of_hour as integer) as time_key,
        cast(hour_of_day as integer) as hour_of_day,
        cast(minute_of_hour as integer) as minute_of_hour,
        case
            when hour_of_day < 6 then 'night'
            when hour_of_day < 12 then 'morning'
            when hour_of_day < 18 then 'afternoon'
            else 'evening'
        end as day_part
    from hours
    cross join minutes
)

select * from final
