-- one row per scored user, riskiest first: churn_scores with the user's value (spend, orders) and last event from dim_users
with scores as (
    select * from churn_scores
),

final as (
    select
        scores.user_id,
        scores.churn_probability,
        scores.risk_band,
        dim_users.total_spent,
        dim_users.total_purchases,
        dim_users.last_seen_ts
    from scores
    inner join dim_users on scores.user_key = dim_users.user_key
)

select * from final
