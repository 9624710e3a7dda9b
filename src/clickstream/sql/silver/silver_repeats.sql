-- one row per clean bronze row of the batch whose event is not unique: it repeats within the batch or silver
-- already holds it. Usually a small share of the batch, so every other row goes straight through (silver_events).
with clean as (
    select * from silver_clean
),

repeated as (
    -- an id seen more than once in the batch, or one silver already holds
    select event_id, bool_or(is_already_in_silver) as is_already_in_silver
    from (
        select event_id, false as is_already_in_silver from clean group by event_id having count(*) > 1
        union all
        select event_id, true from silver_existing where event_id in (select event_id from clean)
    ) candidates
    group by event_id
),

ranked as (
    select
        clean.*,
        repeated.is_already_in_silver,
        -- copies of one event are equal: keep the first by file and batch so every run keeps the same
        row_number() over (partition by clean.event_id order by clean.source_file, clean.batch_id) as copy_number
    from clean
    join repeated on clean.event_id = repeated.event_id
),

final as (
    select
        *,
        -- an event silver held before is delivered again (another file, an overlapping export); else the first
        -- copy by file and batch stays and the others repeat it within the batch
        case when is_already_in_silver then 'redelivered' when copy_number > 1 then 'duplicate' else 'silver' end
            as disposition
    from ranked
)

select * from final
