-- one row per bronze row of the pending batches that silver takes in: all of them but the rows of a file version
-- those same batches replace; a batch written under an earlier `columns` mapping read as the current one would
-- have written it (remap.py)
{% import 'silver/_retracted.sql' as parts %}
{% set remaps = remaps | default([]) %}
with kept as (
    select *
    from bronze_pending rows
{% if replaced_parts %}
    where not {{ parts.retracted('rows') }}
{% endif %}
),

{% macro origin(remap, canonical) -%}
{% set kind, name = remap.columns[canonical] %}
{% if kind == 'column' %}kept.{{ identifier(name) }}{% elif kind == 'extra' %}{{ extra_value('kept.extra', name) }}{% else %}cast(null as string){% endif %}
{%- endmacro %}

{# `extra` with the file columns the old mapping took and the new one does not #}
{% macro remapped_extra(remap) -%}
{% set added = namespace(pairs=[]) %}
{% for key, canonical in remap.extra %}
{% set added.pairs = added.pairs + [(key, 'kept.' ~ identifier(canonical))] %}
{% endfor %}
{{ json_with('kept.extra', added.pairs) if added.pairs else 'kept.extra' }}
{%- endmacro %}

final as (
{% if remaps %}
    select
{% for column, _ in bronze_columns %}
{% if column in canonical_columns or column == 'extra' %}
        case
{% for remap in remaps %}
            when kept.source_name = {{ literal(remap.source_name) }} and kept.batch_id in {{ in_list(remap.batch_ids) }}
                 and kept.parse_error is null
            then {% if column == 'extra' %}{{ remapped_extra(remap) }}{% else %}{{ origin(remap, column) }}{% endif %}

{% endfor %}
            else kept.{{ identifier(column) }}
        end as {{ identifier(column) }}{{ ',' if not loop.last }}
{% else %}
        kept.{{ identifier(column) }}{{ ',' if not loop.last }}
{% endif %}
{% endfor %}
    from kept
{% else %}
    select * from kept
{% endif %}
)

select * from final
