-- one row per activity segment (high, medium, low, one_time): users, their share, the range of their events, average events, sessions, purchases and spend
{#
  one_time: a single visit. The others by events per user: with thresholds: quantiles, a user is high when fewer
  than high_percent % of the users with more than one visit have more events than they do, medium when fewer
  than (high_percent + medium_percent) % do, else low; equal counts always share a segment. With
  thresholds: fixed, by high_min_events and medium_min_events.
#}
with ranked as (
    select
        *,
        rank() over (partition by case when total_sessions = 1 then 1 else 0 end order by total_events desc) - 1
            as users_above,
        count(*) over (partition by case when total_sessions = 1 then 1 else 0 end) as ranked_users
    from dim_users
),

users as (
    select
        *,
        case
            when total_sessions = 1 then 'one_time'
{% if segments.thresholds == 'quantiles' %}
            when users_above * 100 < {{ segments.high_percent }} * ranked_users then 'high'
            when users_above * 100 < {{ segments.high_percent + segments.medium_percent }} * ranked_users
                then 'medium'
{% else %}
            when total_events >= {{ segments.high_min_events }} then 'high'
            when total_events >= {{ segments.medium_min_events }} then 'medium'
{% endif %}
            else 'low'
        end as segment
    from ranked
),

final as (
    select
        segment,
        count(*) as users,
        {{ safe_divide('count(*)', 'sum(count(*)) over ()') }} as share_of_users,
        min(total_events) as min_events,
        max(total_events) as max_events,
        {{ safe_divide('sum(total_events)', 'count(*)') }} as avg_events,
        {{ safe_divide('sum(total_sessions)', 'count(*)') }} as avg_sessions,
        {{ safe_divide('sum(total_purchases)', 'count(*)') }} as avg_purchases,
        -- over the users whose spend is known (NULL where no purchase carries an amount)
        {{ safe_divide('sum(total_spent)', 'count(total_spent)') }} as avg_spent,
        cast(sum(total_spent) as decimal(18,2)) as total_spent,
        {{ safe_divide('count(case when is_purchaser then 1 end)', 'count(*)') }} as purchaser_rate
    from users
    group by segment
)

select * from final
order by case segment when 'high' then 1 when 'medium' then 2 when 'low' then 3 else 4 end
