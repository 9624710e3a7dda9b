-- one row per bronze row of the batch: typed canonical columns, its event_id, and the rules it broke (if any);
-- the raw text only where it broke one. A line bronze could not split into fields breaks only that rule.
-- Every value is trimmed of Unicode whitespace at both ends (tab, CR, LF, no-break spaces too: trim_whitespace).
{% set range = rules.timestamp_range %}
{% set latest = timestamp_literal(range.max) if range.max else 'ingestion_timestamp + interval 1 day' %}
{# wall times a zone skips or repeats are flagged only where some source is not in UTC #}
{# no file of the batch holds the unit separator: no value can, and key_of needs no check for it #}
{% set may_hold_unit_separator = may_hold_unit_separator | default(true) %}
{% set local_times = sources | rejectattr('timezone', 'in', ['UTC', 'utc']) | list | length > 0 %}
{% import 'silver/_identity.sql' as identity with context %}
{# some source maps EventID: its events are identified by it; some source lists identity_columns #}
{% set identified = sources | selectattr('columns.EventID') | list | length > 0 %}
{% set with_identity_columns = sources | selectattr('identity_columns') | list | length > 0 %}
{% set attribute_names = attribute_names | default([]) %}
{% set free = ['user_id', 'session_id', 'event_type', 'product_id', 'outcome'] if may_hold_unit_separator else [] %}
with trimmed as (
    -- each canonical value trimmed once (NULL when nothing is left), for the expressions below that read it
    select
        *,
{% for column in ['UserID', 'SessionID', 'Timestamp', 'EventType', 'ProductID', 'Amount', 'Outcome', 'EventID'] %}
        nullif({{ trim_whitespace(column) }}, '') as {{ column }}__text{{ ',' if not loop.last }}
{% endfor %}
    from bronze_batch
),

typed as (
{% for source in sources %}
{% set is_utc = source.timezone | upper == 'UTC' %}
{# an epoch or a time with an offset is an instant: the source's timezone does not apply to it #}
{% set timestamp_text = "Timestamp__text" %}
{% set instant = parse_instant(timestamp_text, source.timestamp_formats) %}
    select
        UserID__text as user_id,
        SessionID__text as session_id,
        Timestamp__text as timestamp_text,
{% if is_utc %}
        {{ 'coalesce(' ~ instant ~ ', ' if instant }}{{ parse_timestamp(timestamp_text, source.timestamp_formats) }}{{ ')' if instant }} as event_ts,
{% else %}
        {{ 'coalesce(instant_ts, ' if instant }}{{ to_utc('local_ts', source.timezone) }}{{ ')' if instant }} as event_ts,
{% endif %}
{% if source.event_types %}
        case EventType__text
{% for raw_value, canonical in source.event_types.items() %}
            when {{ literal(raw_value) }} then {{ literal(canonical) }}
{% endfor %}
            else EventType__text
        end as event_type,
{% else %}
        EventType__text as event_type,
{% endif %}
        ProductID__text as product_id,
        Amount__text as amount_text,
        -- parsed from the text, rounded half-up to cents: exact money, identical on every engine. Only
        -- plain decimal text is parsed: casts differ beyond it (DuckDB reads '1_000', Spark Arabic digits).
        case when regexp_extract(Amount__text, '^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?', 0)
                  = Amount__text
             then try_cast(Amount__text as decimal(18,2)) end as amount,
        Outcome__text as outcome,
{% if identified %}
        {{ "EventID__text" if source.columns.EventID is not none else 'cast(null as string)' }} as supplied_event_id,
{% endif %}
{% if with_identity_columns %}
        {{ identity.identity_columns(source) }} as identity_values,
{% endif %}
{% for name in attribute_names %}
        {{ identity.extra_text(source.attributes[name]) if name in source.attributes else 'cast(null as string)' }} as {{ identifier(name) }},
{% endfor %}
{% if not is_utc %}
        -- a wall time the clocks skip (set forward) reads as one with the offset before the change; one they
        -- pass twice (set back) as the later instant (engines/*.to_utc): both counted in the quality report
        {{ from_utc(to_utc('local_ts', source.timezone), source.timezone) }} <> local_ts as is_nonexistent_local_time,
        (
{% for shift in ['30 minutes', '1 hour', '2 hours'] %}
            {{ from_utc(to_utc('local_ts', source.timezone) ~ ' - interval ' ~ shift, source.timezone) }} = local_ts{{ ' or' if not loop.last }}
{% endfor %}
        ) as is_ambiguous_local_time,
{% elif local_times %}
        false as is_nonexistent_local_time,
        false as is_ambiguous_local_time,
{% endif %}
        -- the raw text, for quarantine; renamed, as SQL names ignore case and `amount` is taken
        UserID as raw_user_id, SessionID as raw_session_id, Timestamp as raw_timestamp,
        EventType as raw_event_type, ProductID as raw_product_id, Amount as raw_amount, Outcome as raw_outcome,
        EventID as raw_event_id,
        source_line, raw_line, parse_error,
        source_name, source_file, batch_id, ingestion_timestamp, ingestion_date
{% if is_utc %}
    from trimmed
    where source_name = {{ literal(source.name) }}
{% else %}
    from (
        select *, {{ parse_timestamp(timestamp_text, source.timestamp_formats) }} as local_ts{{ ', ' ~ instant ~ ' as instant_ts' if instant }}
        from trimmed
        where source_name = {{ literal(source.name) }}
    ) as source_rows
{% endif %}
{% if not loop.last %}
    union all
{% endif %}
{% endfor %}
),

checked as (
    select
        *,
        case when parse_error is not null then parse_error else concat_ws(';',
{% for column in rules.required_columns %}
            case when {{ column }} is null then 'missing_{{ column }}' end,
{% endfor %}
            case when timestamp_text is null then 'missing_timestamp'
                 when event_ts is null then 'invalid_timestamp'
                 when event_ts < {{ timestamp_literal(range.min) }} or event_ts > {{ latest }} then 'timestamp_out_of_range'
            end,
            case when event_type in {{ in_list(rules.product_event_types) }} and product_id is null
                 then 'missing_product_id' end,
{% set unpriced = sources | rejectattr('columns.Amount') | map(attribute='name') | list %}
            case when event_type in {{ in_list(rules.amount_required_types) }} and amount_text is null
{% if unpriced %}
                 and source_name not in {{ in_list(unpriced) }} -- feeds without a price column
{% endif %}
                 then 'missing_amount' end,
            case when amount_text is not null and amount is null then 'invalid_amount' end,
{% if not rules.allow_negative_amount %}
            case when amount < 0 then 'negative_amount' end,
{% endif %}
            cast(null as string)
        ) end as rejection_reasons
    from typed
),

final as (
    select
        user_id, session_id, event_ts, event_type, product_id, amount, outcome,
        -- the raw text travels on only with rejected rows: quarantine keeps them as they arrived
{% for raw in ['raw_user_id', 'raw_session_id', 'raw_timestamp', 'raw_event_type', 'raw_product_id', 'raw_amount',
               'raw_outcome', 'raw_event_id'] %}
        case when rejection_reasons <> '' then {{ raw }} end as {{ raw }},
{% endfor %}
        source_line, raw_line,
        source_name, source_file, batch_id, ingestion_timestamp, ingestion_date,
        rejection_reasons,
{% if local_times %}
        is_nonexistent_local_time, is_ambiguous_local_time,
{% endif %}
{% if identified %}
        supplied_event_id,
{% endif %}
{% for name in attribute_names %}
        {{ identifier(name) }},
{% endfor %}
        -- an event is its canonical values (and its source's identity_columns), or where the source supplies an id,
        -- the source and that id: equal values, same event, same id on every engine; distinct values, distinct
        -- ids (key_of escapes each value, so no two tuples join into the same text; the three forms join
        -- different numbers of values, so they never meet)
        case when rejection_reasons = '' then
{% if identified %}
            case when supplied_event_id is not null
                 then md5({{ key_of(['source_name', 'supplied_event_id'],
                                    free_text=['source_name', 'supplied_event_id'] if may_hold_unit_separator else []) }})
                 else {{ identity.content_identity(with_identity_columns, free) }} end
{% else %}
            {{ identity.content_identity(with_identity_columns, free) }}
{% endif %}
        end as event_id{{ ',' if identified or attribute_names }}
{% if identified or attribute_names %}
        -- what a copy holds: two copies of one event that differ here conflict (and the kept one is the first by it)
        case when rejection_reasons = '' then {{ identity.content_id(attribute_names, free) }} end as content_id
{% endif %}
    from checked
)

select * from final
