-- one row per product (grain: product_key), plus one 'not applicable' member for events without a product
{% set product_attributes = product_attributes | default([]) %}
with events as (
    select * from fct_events
),
{% for name in product_attributes %}

latest_{{ loop.index }} as (
    -- each product's latest non-empty value of the attribute (at one time, the greatest value)
    select product_id, value
    from (
        select
            product_id,
            {{ identifier(name) }} as value,
            row_number() over (partition by product_id order by event_ts desc, {{ identifier(name) }} desc)
                as recency
        from silver_events
        where product_id is not null and {{ identifier(name) }} is not null
    ) valued
    where recency = 1
),
{% endfor %}

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
{% if product_attributes %}

with_attributes as (
    select
        products.*{% for name in product_attributes %},
        latest_{{ loop.index }}.value as {{ identifier(name) }}{% endfor %}

    from products
{% for name in product_attributes %}
    left join latest_{{ loop.index }} on products.product_id = latest_{{ loop.index }}.product_id
{% endfor %}
),
{% endif %}

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
        true as is_not_applicable{% for name in product_attributes %},
        cast(null as string) as {{ identifier(name) }}{% endfor %}

),

final as (
    select * from {{ 'with_attributes' if product_attributes else 'products' }}
    union all
    select * from not_applicable
)

select * from final
