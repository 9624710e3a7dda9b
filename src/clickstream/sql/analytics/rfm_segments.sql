-- one row per RFM segment: customers, their share, average recency and frequency, and the value they bring
with customers as (
    select * from rfm_scores
),

final as (
    select
        segment,
        count(*) as customers,
        {{ safe_divide('count(*)', 'sum(count(*)) over ()') }} as share_of_customers,
        {{ safe_divide('sum(recency_days)', 'count(*)') }} as avg_recency_days,
        {{ safe_divide('sum(frequency)', 'count(*)') }} as avg_frequency,
        cast(sum(monetary) as decimal(18,2)) as total_monetary,
        {{ safe_divide('sum(monetary)', 'count(*)') }} as avg_monetary
    from customers
    group by segment
)

select * from final
order by case segment when 'champions' then 1 when 'loyal' then 2 when 'promising' then 3
                      when 'needs_attention' then 4 when 'at_risk' then 5 else 6 end
