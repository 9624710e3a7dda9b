-- one row per bronze row of the batch: typed canonical columns, the rules it broke, and what happens to it
with typed as (
{% for source in sources %}
    select
        nullif(trim(UserID), '') as user_id,
        nullif(trim(SessionID), '') as session_id,
        nullif(trim(Timestamp), '') as timestamp_text,
        {{ to_utc(parse_timestamp("nullif(trim(Timestamp), '')", source.timestamp_formats), source.timezone) }} as event_ts,
{% if source.event_types %}
        case nullif(trim(EventType), '')
{% for raw_value, canonical in source.event_types.items() %}
            when {{ literal(raw_value) }} then {{ literal(canonical) }}
{% endfor %}
            else nullif(trim(EventType), '')
        end as event_type,
{% else %}
        nullif(trim(EventType), '') as event_type,
{% endif %}
        nullif(trim(ProductID), '') as product_id,
        nullif(trim(Amount), '') as amount_text,
        -- parsed from the text, rounded half-up to cents: exact money, identical on every engine
        try_cast(nullif(trim(Amount), '') as decimal(18,2)) as amount,
        nullif(trim(Outcome), '') as outcome,
        UserID, SessionID, Timestamp, EventType, ProductID, Amount, Outcome,
        source_name, source_file, batch_id, ingestion_timestamp, ingestion_date
    from bronze_batch
    where source_name = {{ literal(source.name) }}
{% if not loop.last %}
    union all
{% endif %}
{% endfor %}
),

checked as (
    select
        *,
        concat_ws(';',
{% for column in rules.required_columns %}
            case when {{ column }} is null then 'missing_{{ column }}' end,
{% endfor %}
            case when timestamp_text is null then 'missing_timestamp'
                 when event_ts is null then 'invalid_timestamp' end,
            case when event_type in {{ in_list(rules.product_event_types) }} and product_id is null
                 then 'missing_product_id' end,
            case when event_type in {{ in_list(rules.purchase_event_types) }} and amount_text is null
                 then 'missing_amount' end,
            case when amount_text is not null and amount is null then 'invalid_amount' end,
{% if not rules.allow_negative_amount %}
            case when amount < 0 then 'negative_amount' end,
{% endif %}
            cast(null as string)
        ) as rejection_reasons
    from typed
),

identified as (
    select
        *,
        -- an event is its canonical values: equal values, same event, same id on every engine
        case when rejection_reasons = '' then md5(concat_ws(chr(31),
            user_id,
            coalesce(session_id, ''),
            cast({{ epoch_us('event_ts') }} as string),
            event_type,
            coalesce(product_id, ''),
            coalesce(cast(amount as string), ''),
            coalesce(outcome, '')
        )) end as event_id
    from checked
),

ranked as (
    select
        identified.*,
        row_number() over (partition by identified.event_id order by identified.source_file) as copy_number,
        silver_existing.event_id is not null as is_already_in_silver
    from identified
    left join silver_existing on identified.event_id = silver_existing.event_id
),

final as (
    select
        *,
        case
            when rejection_reasons <> '' then 'quarantine'
            when copy_number > 1 or is_already_in_silver then 'duplicate'
            else 'silver'
        end as disposition
    from ranked
)

select * from final
