-- one row: the first and last event of the fact, the span the cutoffs of the predictive models are placed in
with events as (
    select event_ts from fct_events
),

final as (
    select
        min(event_ts) as first_event_ts,
        max(event_ts) as last_event_ts
    from events
)

select * from final
