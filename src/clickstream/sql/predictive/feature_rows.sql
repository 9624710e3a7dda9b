-- one row per user and cutoff: user_features as the models in Python read them (the cutoff by its number, money as double), in cutoff and user order
with features as (
    select * from user_features
),

final as (
    select
        feature_cutoffs.cutoff_number,
        features.user_key,
        features.user_id,
        features.recency_days,
        features.tenure_days,
        features.events,
        features.visits,
        features.active_days,
        features.orders,
        cast(features.monetary as double) as monetary,
        features.cart_adds,
        features.abandoned_carts,
        features.recent_events,
        features.trend,
        features.share_page_view,
        features.share_product_view,
        features.share_cart_add,
        features.share_purchase,
        features.share_click,
        features.share_login,
        features.share_logout,
        features.is_churned
    from features
    inner join feature_cutoffs on features.cutoff_ts = feature_cutoffs.cutoff_ts
)

select * from final
order by cutoff_number, user_key
