-- one row per silver event of the new silver runs' files that is {{ 'new to gold' if new else 'published before' }}:
-- new are the rows of the runs' own bronze batches and the copies they promoted; the other rows of their files
-- are rows of earlier batches that a replaced file version made them write again
with final as (
    select *
    from silver_new_runs
    where {{ '' if new else 'not ' }}(batch_id in {{ in_list(new_batches) }}
        or event_id in (select event_id from silver_run_changes where change = 'promoted'))
)

select * from final
