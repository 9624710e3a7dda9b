-- one row per product (grain: product_key), plus one 'not applicable' member for events without a product
with events as (
    select * from fct_events
),

products as (
    select
        product_key,
        product_key as product_id,
        count(case when event_type_key in {{ in_list(product_view_event_types) }} then 1 end) as views,
        count(case when event_type_key in {{ in_list(cart_add_event_types) }} then 1 end) as cart_adds,
        count(case when is_purchase then 1 end) as purchases,
        -- the known amounts; NULL where it was bought and no purchase carries an amount (a feed without prices)
        case when count(case when is_purchase then amount end) > 0 or count(case when is_purchase then 1 end) = 0
             then cast(coalesce(sum(case when is_purchase then amount end), 0) as decimal(18,2)) end as revenue,
        count(distinct user_key) as unique_users,
        min(event_ts) as first_seen_ts,
        max(event_ts) as last_seen_ts,
        false as is_not_applicable
    from events
    where product_key <> {{ literal(no_product_key) }}
    group by product_key
),

not_applicable as (
    select
        {{ literal(no_product_key) }} as product_key,
        cast(null as string) as product_id,
        cast(0 as bigint) as views,
        cast(0 as bigint) as cart_adds,
        cast(0 as bigint) as purchases,
        cast(0 as decimal(18,2)) as revenue,
        cast(0 as bigint) as unique_users,
        cast(null as timestamp) as first_seen_ts,
        cast(null as timestamp) as last_seen_ts,
        true as is_not_applicable
),

final as (
    select * from products
    union all
    select * from not_applicable
)

select * from final
