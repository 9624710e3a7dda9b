-- one row per copy of a supplied event id that holds other content than the copy silver keeps (counted among
-- the duplicates or re-delivered rows): where it came from and the id, the first {{ examples }} in file and id order,
-- each with the number of such copies in all
with conflicting as (
    select source_file, supplied_event_id, disposition
    from silver_repeats
    where is_conflicting
),

final as (
    select
        source_file,
        supplied_event_id,
        disposition,
        count(*) over () as conflicting_rows
    from conflicting
)

select * from final order by source_file, supplied_event_id, disposition limit {{ examples }}
