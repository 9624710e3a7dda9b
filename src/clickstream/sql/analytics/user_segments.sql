-- one row per activity segment (high, medium, low, one_time): users, average events, purchases and spend
with users as (
    select
        *,
        case
            when total_sessions = 1 then 'one_time'
            when total_events >= {{ segments.high_min_events }} then 'high'
            when total_events >= {{ segments.medium_min_events }} then 'medium'
            else 'low'
        end as segment
    from dim_users
),

final as (
    select
        segment,
        count(*) as users,
        {{ safe_divide('sum(total_events)', 'count(*)') }} as avg_events,
        {{ safe_divide('sum(total_sessions)', 'count(*)') }} as avg_sessions,
        {{ safe_divide('sum(total_purchases)', 'count(*)') }} as avg_purchases,
        {{ safe_divide('sum(total_spent)', 'count(*)') }} as avg_spent,
        cast(sum(total_spent) as decimal(18,2)) as total_spent,
        {{ safe_divide('count(case when is_purchaser then 1 end)', 'count(*)') }} as purchaser_rate
    from users
    group by segment
)

select * from final
order by case segment when 'high' then 1 when 'medium' then 2 when 'low' then 3 else 4 end
