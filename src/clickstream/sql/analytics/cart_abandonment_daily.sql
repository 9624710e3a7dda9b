-- one row per calendar day: the carts opened that day, converted, abandoned or still open, the abandonment rate and the value left in abandoned carts
{#
  Counted from carts (one row per cart: see carts.sql for when a cart opens and which adds join it). The user's
  next purchase at most cart_window_us after the cart's last add converts it; if none comes it is abandoned
  once that time has passed, and open if the data ends first.
#}
with data_end as (
    select {{ epoch_us('max(event_ts)') }} as end_us from fct_events
),

priced as (
    -- the feed carries amounts on add_to_cart events only if at least one has one
    select count(cart_value) > 0 as has_amounts from carts
),

judged as (
    select
        cast(carts.opened_ts as date) as cart_date,
        carts.cart_value,
        case
            when {{ epoch_us('carts.next_purchase_ts') }} - {{ epoch_us('carts.last_add_ts') }} <= {{ cart_window_us }}
                then 'converted'
            when {{ epoch_us('carts.last_add_ts') }} + {{ cart_window_us }} > data_end.end_us then 'open'
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
