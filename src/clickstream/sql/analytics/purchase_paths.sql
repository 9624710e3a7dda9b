-- one row per path of event types leading to a purchase within a visit, most common first
{# Counted from purchase_events (one row per purchase with its path: see purchase_events.sql). #}
with counted as (
    select path, count(*) as purchases from purchase_events group by path
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
