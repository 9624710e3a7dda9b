-- one row per purchasing user: recency, frequency, monetary value, their quintile scores (5 = best) and segment
with reference as (
    -- recency is measured from the last event in the data, so a rerun on the same data gives the same scores
    select max(event_ts) as reference_ts from fct_events
),

purchasers as (
    select
        dim_users.user_key,
        cast(floor(({{ epoch_us('reference.reference_ts') }} - {{ epoch_us('dim_users.last_purchase_ts') }})
                   / 8.64e10) as bigint) as recency_days,
        dim_users.total_purchases as frequency,
        -- exact decimal money: summation order cannot move a user across a quintile boundary
        dim_users.total_spent as monetary
    from dim_users
    cross join reference
    where dim_users.is_purchaser
),

scored as (
    select
        *,
        cast(ntile(5) over (order by recency_days desc, user_key) as integer) as recency_score,
        cast(ntile(5) over (order by frequency, user_key) as integer) as frequency_score,
        cast(ntile(5) over (order by monetary, user_key) as integer) as monetary_score
    from purchasers
),

final as (
    select
        *,
        case
            when recency_score >= 4 and frequency_score >= 4 and monetary_score >= 4 then 'champions'
            when recency_score >= 3 and frequency_score >= 3 then 'loyal'
            when recency_score >= 4 then 'promising'
            when recency_score = 3 then 'needs_attention'
            when frequency_score >= 3 then 'at_risk'
            else 'hibernating'
        end as segment
    from scored
)

select * from final
