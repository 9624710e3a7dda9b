-- one row per row this silver run writes to {{ table }}: the batch's own rows{% if retraction %}, the rows of the files a
-- retraction writes again{% if table == 'silver' %}, and the copies it promotes{% endif %}{% endif %}

with final as (
    select {{ columns | join(', ') }} from {{ table }}_new
{% if retraction %}
    union all
    select {{ columns | join(', ') }} from {{ table }}_rewritten_rows
{% if table == 'silver' %}
    union all
    select {{ columns | join(', ') }} from promoted_copies
{% endif %}
{% endif %}
)

select * from final
