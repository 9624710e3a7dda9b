-- one row: total revenue, orders, purchasers, repeat purchasers, average order value, revenue per user
with per_user as (
    select user_key, count(*) as orders, count(amount) as priced_orders, sum(amount) as spent
    from fct_events
    where is_purchase
    group by user_key
),

totals as (
    select
        -- the known amounts; NULL where there are orders and none carries an amount (a feed without prices)
        case when sum(priced_orders) > 0 or count(*) = 0
             then cast(coalesce(sum(spent), 0) as decimal(18,2)) end as total_revenue,
        cast(coalesce(sum(orders), 0) as bigint) as total_orders,
        cast(coalesce(sum(orders - priced_orders), 0) as bigint) as orders_without_amount,
        count(*) as purchasers,
        count(case when orders > 1 then 1 end) as repeat_purchasers
    from per_user
),

all_users as (
    select count(*) as users from dim_users
),

final as (
    select
        totals.total_revenue,
        totals.total_orders,
        totals.orders_without_amount,
        all_users.users,
        totals.purchasers,
        totals.repeat_purchasers,
        {{ safe_divide('totals.repeat_purchasers', 'totals.purchasers') }} as repeat_purchaser_rate,
        -- over the orders whose amount is known
        {{ safe_divide('totals.total_revenue', 'totals.total_orders - totals.orders_without_amount') }}
            as average_order_value,
        {{ safe_divide('totals.total_revenue', 'all_users.users') }} as revenue_per_user,
        {{ safe_divide('totals.total_revenue', 'totals.purchasers') }} as revenue_per_purchaser
    from totals
    cross join all_users
)

select * from final
