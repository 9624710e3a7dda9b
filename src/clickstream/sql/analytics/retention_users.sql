-- one row per user and period they were active in, from their cohort's period on: the per-user state retention counts
{#
  A user's cohort is the UTC calendar period (a day, or a week from Monday) of their first start event; each
  later period with a return event of theirs is one more row, numbered from the cohort (period 0 is the
  cohort itself). Periods are numbered from the epoch: a day's number is its epoch microseconds /
  86,400,000,000, floored; 1970-01-01 was a Thursday, so the week of day d is floor((d + 3) / 7). A user's
  rows depend on their own events only, so an incremental build rebuilds them for the users gold changed;
  whether a period is complete depends on the data's last event and is decided by retention, never stored.
#}
{% set week = retention.period == 'week' %}
{% macro period_of(day_number) %}{{ 'cast(floor((' ~ day_number ~ ' + 3) / 7) as bigint)' if week else day_number }}{% endmacro %}
with events as (
    select
        user_key,
        event_type_key,
        event_ts,
        {{ period_of('cast(floor(' ~ epoch_us('event_ts') ~ ' / 8.64e10) as bigint)') }} as period_number
    from fct_events
),

firsts as (
    -- each user's cohort: the period of their first start event
    select user_key, min(event_ts) as first_ts, min(period_number) as cohort_period
    from events
{% if retention.start_event %}
    where event_type_key = {{ literal(retention.start_event) }}
{% endif %}
    group by user_key
),

returns as (
    select distinct events.user_key, events.period_number - firsts.cohort_period as period
    from events
    join firsts on events.user_key = firsts.user_key
    where events.period_number > firsts.cohort_period
{% if retention.return_event %}
        and events.event_type_key = {{ literal(retention.return_event) }}
{% endif %}
),

final as (
    select user_key, cohort_period, first_ts, cast(0 as integer) as period
    from firsts
    union all
    select returns.user_key, firsts.cohort_period, firsts.first_ts, cast(returns.period as integer)
    from returns
    join firsts on returns.user_key = firsts.user_key
)

select * from final
