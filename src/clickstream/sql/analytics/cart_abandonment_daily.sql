-- one row per calendar day: the carts opened that day, converted, abandoned or still open, the abandonment rate and the value left in abandoned carts
{#
  A cart opens at an add to cart (an event of cart_add_event_types) when the user has no open cart; later adds
  join it while each comes at most cart_window_us after the one before and no purchase came between. The user's next purchase at most
  cart_window_us after the cart's last add converts it; if none comes it is abandoned once that time has passed,
  and open if the data ends first. At one time an add comes before a purchase.
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
        min(case when kind = 1 then ts_us end) over (
            partition by user_key order by ts_us desc, kind desc, event_id desc
            rows between unbounded preceding and current row) as next_purchase_us
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

carts as (
    select
        user_key,
        cart_number,
        cast(min(event_ts) as date) as cart_date,
        max(ts_us) as last_add_us,
        -- no purchase between a cart's adds: the next purchase is the same from each of them
        min(next_purchase_us) as next_purchase_us,
        sum(amount) as cart_value
    from adds
    group by user_key, cart_number
),

data_end as (
    select {{ epoch_us('max(event_ts)') }} as end_us from fct_events
),

priced as (
    -- the feed carries amounts on add_to_cart events only if at least one has one
    select count(amount) > 0 as has_amounts from cart_events where kind = 0
),

judged as (
    select
        carts.cart_date,
        carts.cart_value,
        case
            when carts.next_purchase_us - carts.last_add_us <= {{ cart_window_us }} then 'converted'
            when carts.last_add_us + {{ cart_window_us }} > data_end.end_us then 'open'
            else 'abandoned'
        end as status
    from carts
    cross join data_end
),

daily as (
    select
        cart_date,
        count(*) as carts,
        count(case when status = 'converted' then 1 end) as converted,
        count(case when status = 'abandoned' then 1 end) as abandoned,
        count(case when status = 'open' then 1 end) as open,
        sum(case when status = 'abandoned' then cart_value end) as abandoned_value
    from judged
    group by cart_date
),

final as (
    select
        dim_date.date_day as cart_date,
        coalesce(daily.carts, 0) as carts,
        coalesce(daily.converted, 0) as converted,
        coalesce(daily.abandoned, 0) as abandoned,
        coalesce(daily.open, 0) as open,
        -- open carts are left out: their outcome is not known yet
        {{ safe_divide('daily.abandoned', 'daily.converted + daily.abandoned') }} as abandonment_rate,
        case when priced.has_amounts then cast(coalesce(daily.abandoned_value, 0) as decimal(18,2)) end
            as abandoned_value
    from dim_date
    cross join priced
    left join daily on dim_date.date_day = daily.cart_date
)

select * from final order by cart_date
