-- one row per product among the top N by views, with cart adds, purchases, revenue and conversion rates
with products as (
    select * from dim_products where not is_not_applicable
),

ranked as (
    select
        *,
        row_number() over (order by views desc, purchases desc, product_key) as view_rank
    from products
),

final as (
    select
        cast(view_rank as integer) as view_rank,
        product_id,
        views,
        cart_adds,
        purchases,
        revenue,
        unique_users,
        {{ safe_divide('cart_adds', 'views') }} as view_to_cart_rate,
        {{ safe_divide('purchases', 'cart_adds') }} as cart_to_purchase_rate,
        {{ safe_divide('purchases', 'views') }} as view_to_purchase_rate
    from ranked
    where view_rank <= {{ top_n }}
)

select * from final order by view_rank
