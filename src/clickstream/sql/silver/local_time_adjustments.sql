-- one row per source file of the batch with wall times its zone skips or repeats (sources[].timezone): how many
-- valid events had a wall time the clocks skipped (read with the offset before the change) or passed twice
-- (read as the later instant)
with final as (
    select
        source_file,
        count(case when is_nonexistent_local_time then 1 end) as nonexistent_local_times,
        count(case when is_ambiguous_local_time then 1 end) as ambiguous_local_times
    from silver_typed
    where rejection_reasons = '' and (is_nonexistent_local_time or is_ambiguous_local_time)
    group by source_file
)

select * from final order by source_file
