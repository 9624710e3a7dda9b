-- one row per cart: its user, when it opened and took its last add, the user's next purchase from then, and its value
{#
  A cart opens at an add to cart (an event of cart_add_event_types) when the user has no open cart; later adds
  join it while each comes at most cart_window_us after the one before and no purchase came between. At one
  time an add comes before a purchase. A cart's row depends on its user's events only, so an incremental build
  rebuilds the carts of the users gold changed; whether it converted, was abandoned or is still open is decided
  by cart_abandonment_daily (open depends on the data's last event, which moves with every batch).
#}
with cart_events as (
    select
        user_key,
        event_id,
        event_ts,
        {{ epoch_us('event_ts') }} as ts_us,
        amount,
        case when is_purchase then 1 else 0 end as kind
    from fct_events
    where event_type_key in {{ in_list(cart_add_event_types) }} or is_purchase
),

sequenced as (
    select
        *,
        lag(kind) over (partition by user_key order by ts_us, kind, event_id) as previous_kind,
        lag(ts_us) over (partition by user_key order by ts_us, kind, event_id) as previous_us,
        -- the user's first purchase at or after this event (scanned from the latest; at one time purchases first)
        min(case when kind = 1 then event_ts end) over (
            partition by user_key order by ts_us desc, kind desc, event_id desc
            rows between unbounded preceding and current row) as next_purchase_ts
    from cart_events
),

adds as (
    select
        *,
        sum(case when previous_kind = 0 and ts_us - previous_us <= {{ cart_window_us }} then 0 else 1 end) over (
            partition by user_key order by ts_us, event_id rows between unbounded preceding and current row)
            as cart_number
    from sequenced
    where kind = 0
),

final as (
    select
        user_key,
        cast(cart_number as integer) as cart_number,
        min(event_ts) as opened_ts,
        max(event_ts) as last_add_ts,
        -- no purchase between a cart's adds: the next purchase is the same from each of them
        min(next_purchase_ts) as next_purchase_ts,
        count(*) as adds,
        cast(sum(amount) as decimal(18,2)) as cart_value
    from adds
    group by user_key, cart_number
)

select * from final
