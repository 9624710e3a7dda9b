-- one row: the earliest time from which a gold build changed any user's rows (earliest_change_ts), NULL when it changed none; what a result that depends only on the events up to a time compares that time with
with affected as (
    select first_new_ts from gold_affected_users
),

final as (
    select min(first_new_ts) as earliest_change_ts
    from affected
)

select * from final
