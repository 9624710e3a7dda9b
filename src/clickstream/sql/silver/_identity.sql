{# The pieces of an event's identity, shared by the silver models (imported with context). #}

{# an unmapped column's text from bronze's `extra`, trimmed, NULL when empty #}
{% macro extra_text(key) -%}
nullif({{ trim_whitespace(extra_value('extra', key)) }}, '')
{%- endmacro %}

{# a source's identity_columns as one text (each key beside its value, in key order), NULL when it has none #}
{% macro identity_columns(source) -%}
{% if source.identity_columns %}
{% set found = namespace(parts=[]) %}
{% for key in source.identity_columns | sort %}
{% set found.parts = found.parts + [literal(key), extra_text(key)] %}
{% endfor %}
{{ key_of(found.parts) }}
{%- else %}
cast(null as string)
{%- endif %}
{%- endmacro %}

{% set canonical = ['user_id', 'session_id', 'cast(' ~ epoch_us('event_ts') ~ ' as string)', 'event_type', 'product_id',
                    'cast(amount as string)', 'outcome'] %}

{# the identity of an event without a supplied id: its canonical values, then its identity_columns' text if any #}
{% macro content_identity(with_identity_columns, free) -%}
{% if with_identity_columns %}
case when identity_values is null then md5({{ key_of(canonical, free_text=free) }})
     else md5({{ key_of(canonical + ['identity_values'], free_text=free + ['identity_values']) }}) end
{%- else %}
md5({{ key_of(canonical, free_text=free) }})
{%- endif %}
{%- endmacro %}

{# what a copy of an event holds, as silver stores it: its canonical values and its attributes #}
{% macro content_id(attribute_names, free) -%}
{% set quoted = namespace(names=[]) %}
{% for name in attribute_names %}
{% set quoted.names = quoted.names + [identifier(name)] %}
{% endfor %}
md5({{ key_of(canonical + quoted.names, free_text=free + quoted.names) }})
{%- endmacro %}
