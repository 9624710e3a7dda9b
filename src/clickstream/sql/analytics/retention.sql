-- one row per cohort and period: the users whose first start event fell in the cohort's period, and how many of them returned that many periods later
{#
  First-time retention by UTC calendar period (a day, or a week from Monday), counted from retention_users (one
  row per user and period they were active in, from their cohort's on). Periods are numbered from the
  epoch: a day's number is its epoch microseconds / 86,400,000,000, floored; 1970-01-01 was a Thursday, so the
  week of day d is floor((d + 3) / 7) and week p starts on day 7p - 3. A period that has not ended by the
  data's last event has no retention yet (NULL), however many returns it holds so far.
#}
{% set week = retention.period == 'week' %}
{% macro period_of(day_number) %}{{ 'cast(floor((' ~ day_number ~ ' + 3) / 7) as bigint)' if week else day_number }}{% endmacro %}
{% macro first_day_of(period) %}{{ '(7 * ' ~ period ~ ' - 3)' if week else period }}{% endmacro %}
with data_end as (
    select {{ epoch_us('max(event_ts)') }} as end_us from fct_events
),

cohorts as (
    select
        cohort_period,
        cast({{ "date_trunc('week', min(first_ts))" if week else 'min(first_ts)' }} as date) as cohort_start,
        count(*) as cohort_users
    from retention_users
    where period = 0
    group by cohort_period
),

retained as (
    select cohort_period, period, count(*) as returned_users
    from retention_users
    where period > 0
    group by cohort_period, period
),

calendar as (
    -- every period from the first event's to the last event's: dim_date holds every day between
    select distinct
        {{ period_of('cast(' ~ epoch_us('cast(date_day as timestamp)') ~ ' / 86400000000 as bigint)') }}
            as period_number
    from dim_date
),

grid as (
    select
        cohorts.cohort_start,
        cohorts.cohort_period,
        calendar.period_number - cohorts.cohort_period as period,
        cohorts.cohort_users,
        -- complete when the period ended (its next period began) by the data's last event
        {{ first_day_of('(calendar.period_number + 1)') }} * 86400000000 <= data_end.end_us as is_complete
    from cohorts
    join calendar on calendar.period_number >= cohorts.cohort_period
    cross join data_end
),

final as (
    select
        grid.cohort_start,
        cast(grid.period as integer) as period,
        grid.cohort_users,
        case
            when grid.period = 0 then grid.cohort_users
            when grid.is_complete then coalesce(retained.returned_users, 0)
        end as retained_users,
        case
            when grid.period = 0 then cast(1 as double)
            when grid.is_complete then {{ safe_divide('coalesce(retained.returned_users, 0)', 'grid.cohort_users') }}
        end as retention_rate
    from grid
    left join retained
        on grid.cohort_period = retained.cohort_period and grid.period = retained.period
)

select * from final order by cohort_start, period
