-- one row per RFM segment: customers, their share, average recency and frequency, the value they bring, and the observation window the scores rest on
with customers as (
    select * from rfm_scores
),

observed as (
    -- recency and frequency mean little on a short window (analytics.rfm.min_days flags it)
    select
        min(event_ts) as observation_start_ts,
        max(event_ts) as observation_end_ts,
        ({{ epoch_us('max(event_ts)') }} - {{ epoch_us('min(event_ts)') }}) / 8.64e10 as observation_days
    from fct_events
),

segments as (
    select
        segment,
        count(*) as customers,
        {{ safe_divide('count(*)', 'sum(count(*)) over ()') }} as share_of_customers,
        {{ safe_divide('sum(recency_days)', 'count(*)') }} as avg_recency_days,
        {{ safe_divide('sum(frequency)', 'count(*)') }} as avg_frequency,
        cast(sum(monetary) as decimal(18,2)) as total_monetary,
        {{ safe_divide('sum(monetary)', 'count(monetary)') }} as avg_monetary
    from customers
    group by segment
),

final as (
    select segments.*, observed.observation_start_ts, observed.observation_end_ts, observed.observation_days
    from segments
    cross join observed
)

select * from final
order by case segment when 'champions' then 1 when 'loyal' then 2 when 'promising' then 3
                      when 'needs_attention' then 4 when 'at_risk' then 5 else 6 end
