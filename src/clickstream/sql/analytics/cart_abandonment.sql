-- one row: carts opened, converted, abandoned and still open, the abandonment rate and the value left in abandoned carts
with days as (
    select * from cart_abandonment_daily
),

totals as (
    select
        cast(sum(carts) as bigint) as carts,
        cast(sum(converted) as bigint) as converted,
        cast(sum(abandoned) as bigint) as abandoned,
        cast(sum(open) as bigint) as open,
        -- NULL when the feed carries no amounts on add_to_cart events (every day's value is NULL)
        cast(sum(abandoned_value) as decimal(18,2)) as abandoned_value
    from days
),

final as (
    select
        carts,
        converted,
        abandoned,
        open,
        {{ safe_divide('abandoned', 'converted + abandoned') }} as abandonment_rate,
        abandoned_value
    from totals
)

select * from final
