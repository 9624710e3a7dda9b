{#- What a merge takes from the rebuilt rows (incremental.py): a row, published or rebuilt, read as `alias`. -#}
{% macro replaced(model, alias) -%}
{% if model.replayed is not none -%}
{#- the visits sessionized again (gold/replay_sessions.sql) -#}
exists (select 1 from {{ replay_table }} replay where replay.user_id = {{ alias }}.{{ model.user_column }}
        and replay.session_id is not distinct from {{ alias }}.{{ model.replayed.session }}
        and {{ alias }}.{{ model.replayed.start }} >= replay.replay_from)
{%- elif model.changes_from is not none -%}
{#- each user's rows from their first new event on -#}
coalesce({{ alias }}.{{ model.changes_from }} >= (select max(affected.first_new_ts) from {{ affected_users }} affected
                                                where affected.user_key = {{ alias }}.{{ model.user_column }}),
         false)
{%- else -%}
{#- every row of the affected users -#}
exists (select 1 from {{ affected_users }} affected where affected.user_key = {{ alias }}.{{ model.user_column }})
{%- endif %}
{%- endmacro %}
