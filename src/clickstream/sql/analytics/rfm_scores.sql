-- one row per purchasing user: recency, frequency, monetary value, their quintile scores (5 = best; equal values share a score) and segment
{#
  A score is the quintile of the middle of the user's tie group: with n purchasers, w of them worse on the value
  and t (the user included) equal to it, score = ceil(5 * (w + t / 2) / n), computed exactly as
  floor((5 * (2w + t) + 2n - 1) / (2n)). Distinct values give plain quintiles; equal values always share a
  score, and a large tie group takes the score of its middle, not of its first or last member. A NULL value
  (monetary where no purchase carries an amount) has no score, and n counts the users whose value is known.
#}
{% macro score(value, worse_first) %}
        case when {{ value }} is not null then
        cast(floor(cast(5 * (2 * (rank() over (partition by {{ value }} is null order by {{ value }} {{ worse_first }}) - 1)
                              + count(*) over (partition by {{ value }})) + 2 * count(*) over (partition by {{ value }} is null) - 1 as double)
                   / cast(2 * count(*) over (partition by {{ value }} is null) as double)) as integer) end
{%- endmacro %}
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
        {{ score('recency_days', 'desc') }} as recency_score,
        {{ score('frequency', 'asc') }} as frequency_score,
        {{ score('monetary', 'asc') }} as monetary_score
    from purchasers
),

final as (
    select
        *,
        case
            -- monetary unknown (a feed without prices): decided on recency and frequency
            when recency_score >= 4 and frequency_score >= 4 and coalesce(monetary_score, 5) >= 4 then 'champions'
            when recency_score >= 3 and frequency_score >= 3 then 'loyal'
            when recency_score >= 4 then 'promising'
            when recency_score = 3 then 'needs_attention'
            when frequency_score >= 3 then 'at_risk'
            else 'hibernating'
        end as segment
    from scored
)

select * from final
order by recency_score + frequency_score + coalesce(monetary_score, 0) desc, monetary desc, user_key
