{# The rows of the replaced file versions (retracted_parts: source_file, batch_id), shared by the silver models. #}

{# whether a row of `alias` belongs to a replaced file version #}
{% macro retracted(alias) -%}
exists (select 1 from retracted_parts parts
        where parts.source_file = {{ alias }}.source_file and parts.batch_id = {{ alias }}.batch_id)
{%- endmacro %}
