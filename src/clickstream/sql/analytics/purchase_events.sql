-- one row per purchase event, with the path of event types leading to it within its visit
{#
  The per-purchase state `purchase_paths` counts. A path never crosses a visit and a visit belongs to one user,
  so an incremental build rebuilds the rows of the users gold changed, and takes only their purchases from the
  start of the first visit gold sessionized again on (every earlier visit stands, with its events).
#}
with purchase_visits as (
    -- a path never crosses a visit, so only the visits with a purchase are ordered
    select user_key, session_key, event_id, event_ts, event_type_key, is_purchase
    from fct_events
    where session_key in (select session_key from fct_events where is_purchase)
),

steps as (
    select
        user_key,
        session_key,
        event_id,
        event_ts,
        event_type_key,
        is_purchase,
{% for back in range(path_length - 1, 0, -1) %}
        lag(event_type_key, {{ back }}) over by_session as previous_{{ back }}{{ "," if not loop.last }}
{% endfor %}
    from purchase_visits
    window by_session as (partition by session_key order by event_ts, event_id)
),

final as (
    select
        user_key,
        session_key,
        event_id,
        event_ts,
        concat_ws(' > ', {% for back in range(path_length - 1, 0, -1) %}previous_{{ back }}, {% endfor %}event_type_key)
            as path
    from steps
    where is_purchase
)

select * from final
