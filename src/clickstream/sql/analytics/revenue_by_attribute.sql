-- one row per value of the first of gold.product_attributes (NULL: products without one): its products, their views, purchases and revenue
{# answered only when gold.product_attributes names one (queries.yml: needs); else an empty table of its columns #}
{% set attribute = product_attributes[0] if product_attributes | default([]) else none %}
with products as (
    select * from dim_products where not is_not_applicable
),

final as (
{% if attribute %}
    select
        {{ literal(attribute) }} as attribute_name,
        {{ identifier(attribute) }} as attribute_value,
        count(*) as products,
        cast(sum(views) as bigint) as views,
        cast(sum(purchases) as bigint) as purchases,
        -- the known amounts; NULL where the value's products were bought and none carries an amount
        case when count(revenue) > 0 or sum(purchases) = 0
             then cast(coalesce(sum(revenue), 0) as decimal(18,2)) end as revenue
    from products
    group by {{ identifier(attribute) }}
{% else %}
    select
        cast(null as string) as attribute_name,
        cast(null as string) as attribute_value,
        cast(0 as bigint) as products,
        cast(0 as bigint) as views,
        cast(0 as bigint) as purchases,
        cast(null as decimal(18,2)) as revenue
    from products
    where 1 = 0
{% endif %}
)

select * from final
