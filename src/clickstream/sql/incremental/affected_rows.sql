-- one row per row of `source` that belongs to an affected user: what a per-user model reads of a whole table
with final as (
    select source_rows.*
    from {{ source }} source_rows
    where source_rows.{{ user_column }} in (select affected.user_key from affected_users affected)
)

select * from final
