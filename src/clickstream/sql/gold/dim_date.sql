-- one row per calendar day (grain: date_key) from the first to the last event, days without events included
with bounds as (
    select cast(min(event_ts) as date) as first_day, cast(max(event_ts) as date) as last_day
    from fct_events
),

days as (
    -- the bounds as scalar subqueries: a lateral reference to `bounds` works on DuckDB only
    select series.date_day
    from {{ date_series('(select first_day from bounds)', '(select last_day from bounds)') }} as series
),

final as (
    select
        {{ date_key('date_day') }} as date_key,
        date_day,
        cast(year(date_day) as integer) as year,
        cast(quarter(date_day) as integer) as quarter,
        cast(month(date_day) as integer) as month,
        case cast(month(date_day) as integer)
            when 1 then 'January' when 2 then 'February' when 3 then 'March' when 4 then 'April'
            when 5 then 'May' when 6 then 'June' when 7 then 'July' when 8 then 'August'
            when 9 then 'September' when 10 then 'October' when 11 then 'November' else 'December'
        end as month_name,
        cast(day(date_day) as integer) as day_of_month,
        cast({{ iso_day_of_week('date_day') }} as integer) as day_of_week,
        case cast({{ iso_day_of_week('date_day') }} as integer)
            when 1 then 'Monday' when 2 then 'Tuesday' when 3 then 'Wednesday' when 4 then 'Thursday'
            when 5 then 'Friday' when 6 then 'Saturday' else 'Sunday'
        end as day_name,
        cast(weekofyear(date_day) as integer) as iso_week,
        {{ iso_day_of_week('date_day') }} in (6, 7) as is_weekend
    from days
)

select * from final
