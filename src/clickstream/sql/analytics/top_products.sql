-- one row per product among the top N by revenue, views or purchases: events, units, revenue, the users who viewed, carted and bought it, and rates between them
{# a revenue not known (a feed without prices) ranks as none: units decide #}
{% set orders = {
    'revenue': 'coalesce(revenue, 0) desc, units desc, views desc',
    'views': 'views desc, units desc, coalesce(revenue, 0) desc',
    'purchases': 'units desc, coalesce(revenue, 0) desc, views desc',
} %}
with product_users as (
    -- what each user did with each product, at any time
    select
        product_key,
        user_key,
        max(case when event_type_key in {{ in_list(product_view_event_types) }} then 1 else 0 end) as viewed,
        max(case when event_type_key in {{ in_list(cart_add_event_types) }} then 1 else 0 end) as carted,
        max(case when is_purchase then 1 else 0 end) as bought
    from fct_events
    where product_key <> {{ literal(no_product_key) }}
    group by product_key, user_key
),

user_counts as (
    select
        product_key,
        count(case when viewed = 1 then 1 end) as viewers,
        count(case when carted = 1 then 1 end) as carters,
        count(case when bought = 1 then 1 end) as buyers,
        count(case when viewed = 1 and carted = 1 then 1 end) as viewers_who_carted,
        count(case when carted = 1 and bought = 1 then 1 end) as carters_who_bought,
        count(case when viewed = 1 and bought = 1 then 1 end) as viewers_who_bought
    from product_users
    group by product_key
),

products as (
    select
        dim_products.product_key,
        dim_products.product_id,
        dim_products.views,
        dim_products.cart_adds,
        -- one unit per purchase event: the feed carries no quantity
        dim_products.purchases as units,
        dim_products.revenue,
        user_counts.viewers,
        user_counts.carters,
        user_counts.buyers,
        user_counts.viewers_who_carted,
        user_counts.carters_who_bought,
        user_counts.viewers_who_bought
    from dim_products
    join user_counts on dim_products.product_key = user_counts.product_key
    where not dim_products.is_not_applicable
),

ranked as (
    select *, row_number() over (order by {{ orders[rank_by] }}, product_key) as product_rank
    from products
),

final as (
    select
        cast(product_rank as integer) as product_rank,
        product_id,
        views,
        cart_adds,
        units,
        revenue,
        viewers,
        carters,
        buyers,
        -- users, not events: each rate is a share of the users of its denominator, within [0, 1]
        {{ safe_divide('viewers_who_carted', 'viewers') }} as view_to_cart_rate,
        {{ safe_divide('carters_who_bought', 'carters') }} as cart_to_purchase_rate,
        {{ safe_divide('viewers_who_bought', 'viewers') }} as view_to_purchase_rate
    from ranked
    where product_rank <= {{ top_n }}
)

select * from final order by product_rank
