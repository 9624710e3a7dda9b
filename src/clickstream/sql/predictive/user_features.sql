-- one row per user and cutoff (grain: cutoff_ts, user_key) for every user seen by the cutoff: their behaviour up to it and, where the cutoff is labelled, whether they churned in the horizon after it
{#
  The cutoffs come from `feature_cutoffs` (cutoff_ts, is_labelled), registered from Python: the models' time
  (predictive.as_of: by default Monday 00:00 of the data's last week) and the cutoffs a horizon, two horizons ... before it. A feature reads the events at or before the
  cutoff only; the label the events in (cutoff, cutoff + horizon]. Counts are exact integers and every ratio one
  division, so both engines give the same bits.
#}
{% set mix = [('page_view', ['page_view']), ('product_view', product_view_event_types),
              ('cart_add', cart_add_event_types), ('purchase', purchase_event_types), ('click', ['click']),
              ('login', ['login']), ('logout', ['logout'])] %}
with cutoffs as (
    select cutoff_ts, is_labelled from feature_cutoffs
),

history as (
    -- every event at or before each cutoff
    select
        cutoffs.cutoff_ts,
        fct_events.user_key,
        fct_events.session_key,
        fct_events.date_key,
        fct_events.event_ts,
        fct_events.event_type_key,
        fct_events.is_purchase,
        fct_events.amount,
        ({{ epoch_us('cutoffs.cutoff_ts') }} - {{ epoch_us('fct_events.event_ts') }}) < {{ trend_window_days * 86400000000 }}
            as is_recent
    from fct_events
    inner join cutoffs on fct_events.event_ts <= cutoffs.cutoff_ts
),

visits as (
    -- a visit as of the cutoff: did it add to the cart, did it buy
    select
        cutoff_ts,
        user_key,
        session_key,
        count(case when event_type_key in {{ in_list(cart_add_event_types) }} then 1 end) > 0 as has_cart_add,
        count(case when is_purchase then 1 end) > 0 as has_purchase
    from history
    group by cutoff_ts, user_key, session_key
),

carts as (
    select
        cutoff_ts,
        user_key,
        count(case when has_cart_add and not has_purchase then 1 end) as abandoned_carts
    from visits
    group by cutoff_ts, user_key
),

behaviour as (
    select
        cutoff_ts,
        user_key,
        min(event_ts) as first_event_ts,
        max(event_ts) as last_event_ts,
        count(*) as events,
        count(distinct session_key) as visits,
        count(distinct date_key) as active_days,
        count(case when is_purchase then 1 end) as orders,
        -- the known amounts; NULL where the user bought and no purchase carries an amount (dim_users' rule)
        case when count(case when is_purchase then amount end) > 0 or count(case when is_purchase then 1 end) = 0
             then cast(coalesce(sum(case when is_purchase then amount end), 0) as decimal(18,2)) end as monetary,
        count(case when event_type_key in {{ in_list(cart_add_event_types) }} then 1 end) as cart_adds,
        count(case when is_recent then 1 end) as recent_events,
{% for name, types in mix %}
        count(case when event_type_key in {{ in_list(types) }} then 1 end) as {{ name }}_events{{ "," if not loop.last }}
{% endfor %}
    from history
    group by cutoff_ts, user_key
),

later as (
    -- the users active in the horizon after a labelled cutoff
    select
        cutoffs.cutoff_ts,
        fct_events.user_key
    from fct_events
    inner join cutoffs
        on fct_events.event_ts > cutoffs.cutoff_ts
        and {{ epoch_us('fct_events.event_ts') }} <= {{ epoch_us('cutoffs.cutoff_ts') }} + {{ horizon_us }}
    where cutoffs.is_labelled
    group by cutoffs.cutoff_ts, fct_events.user_key
),

measured as (
    select
        behaviour.*,
        ({{ epoch_us('cutoff_ts') }} - {{ epoch_us('last_event_ts') }}) / 8.64e10 as recency_days,
        ({{ epoch_us('cutoff_ts') }} - {{ epoch_us('first_event_ts') }}) / 8.64e10 as tenure_days,
        cast(events - recent_events as double) as earlier_events
    from behaviour
),

final as (
    select
        measured.cutoff_ts,
        measured.user_key,
        dim_users.user_id,
        measured.recency_days,
        measured.tenure_days,
        measured.events,
        measured.visits,
        measured.active_days,
        measured.orders,
        measured.monetary,
        measured.cart_adds,
        carts.abandoned_carts,
        measured.recent_events,
        -- the events a day in the trend window against those a day before it: from -1 (none lately) to 1 (none
        -- before); NULL while the user's whole tenure lies in the window
        case when measured.tenure_days > {{ trend_window_days }} then {{ safe_divide(
            'measured.recent_events * (measured.tenure_days - ' ~ trend_window_days ~ ') - measured.earlier_events * ' ~ trend_window_days,
            'measured.recent_events * (measured.tenure_days - ' ~ trend_window_days ~ ') + measured.earlier_events * ' ~ trend_window_days) }}
        end as trend,
{% for name, types in mix %}
        {{ safe_divide('measured.' ~ name ~ '_events', 'measured.events') }} as share_{{ name }},
{% endfor %}
        case when cutoffs.is_labelled then later.user_key is null end as is_churned
    from measured
    inner join cutoffs on measured.cutoff_ts = cutoffs.cutoff_ts
    inner join carts on measured.cutoff_ts = carts.cutoff_ts and measured.user_key = carts.user_key
    inner join dim_users on measured.user_key = dim_users.user_key
    left join later on measured.cutoff_ts = later.cutoff_ts and measured.user_key = later.user_key
)

select * from final
