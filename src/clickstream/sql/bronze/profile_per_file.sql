-- per raw file of the batch written to {{ view }}: its rows, its malformed lines, and per canonical column the
-- rows of well-formed lines where it is NULL (the file's profile in the manifest and the quality report)
with final as (
    select
        source_file,
        count(*) as n_rows,
        count(parse_error) as n_malformed,
{% for column in columns %}
        count(case when parse_error is null then 1 end) - count({{ column }}) as {{ column }}{{ ',' if not loop.last }}
{% endfor %}
    from {{ view }}
    group by source_file
)

select * from final
