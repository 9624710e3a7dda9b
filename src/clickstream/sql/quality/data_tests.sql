-- one row: for each declared test of a model, its failing rows. The tests share one scan of the model (or, with
-- a delta, of its changed rows: what links those to the kept rows is counted apart, see quality.compile_tests)
{% set rows = delta.changed if delta else model %}
select
{% for check in checks %}
{% if check.kind == 'not_null' %}
    count(*) - count(child.{{ check.column }})
{% elif check.kind == 'accepted_values' %}
    count(case when child.{{ check.column }} not in {{ in_list(check['values']) }} then 1 end)
{% elif check.kind == 'equal_row_count' %}
{% if delta %}
    abs((select count(*) from {{ model }}) - (select count(*) from {{ check.other }}))
{% else %}
    abs(count(*) - (select count(*) from {{ check.other }}))
{% endif %}
{% elif check.kind == 'unique' %}
    {#- the copies beyond the first of each value #}
    count(child.{{ check.column }}) - count(distinct child.{{ check.column }})
{% if delta %}
        + (select count(*) from {{ delta.kept }} kept where kept.{{ check.column }} in
           (select {{ check.column }} from {{ rows }}))
{% endif %}
{% elif check.kind == 'relationships' %}
    count(case when child.{{ check.column }} is not null and parent{{ check.join }}.parent_key is null then 1 end)
{% if delta %}
        + (select count(*) from {{ delta.kept }} kept where kept.{{ check.column }} in
           (select {{ check.field }} from {{ delta.published[check.to] }}
            except select {{ check.field }} from {{ delta.current.get(check.to, check.to) }}))
{% endif %}
{% endif %}
        as failures_{{ loop.index0 }}{{ "," if not loop.last }}
{% endfor %}
from {{ rows }} child
{% for check in checks if check.kind == 'relationships' %}
left join (select distinct {{ check.field }} as parent_key from {{ check.to }}) parent{{ check.join }}
    on child.{{ check.column }} = parent{{ check.join }}.parent_key
{% endfor %}
