-- one row per funnel step, order and time ignored: users who did it at any time, users who also did every earlier step
with user_steps as (
    select
        user_key,
{% for step in funnel %}
        max(case when event_type_key = {{ literal(step) }} then 1 else 0 end)
            as did_step_{{ loop.index }}{{ "," if not loop.last }}
{% endfor %}
    from fct_events
    where event_type_key in {{ in_list(funnel) }}
    group by user_key
),

counts as (
    select
{% for step in funnel %}
        count(case when did_step_{{ loop.index }} = 1 then 1 end) as reached_{{ loop.index }},
        count(case when
{% for earlier in range(1, loop.index + 1) %}
            did_step_{{ earlier }} = 1{{ " and" if not loop.last }}
{% endfor %}
            then 1 end) as through_{{ loop.index }}{{ "," if not loop.last }}
{% endfor %}
    from user_steps
),

steps as (
{% for step in funnel %}
    select
        {{ loop.index }} as step_number,
        {{ literal(step) }} as event_type,
        reached_{{ loop.index }} as users_reached,
        through_{{ loop.index }} as users_through_all_steps,
        {# a step's conversion is from the step before it; the first step's, from all who reached it #}
        {% set previous = 'reached_1' if loop.index == 1 else 'through_' ~ (loop.index - 1) %}
        {{ safe_divide('through_' ~ loop.index, previous) }} as step_conversion,
        {{ safe_divide('through_' ~ loop.index, 'reached_1') }} as overall_conversion
    from counts
{% if not loop.last %}
    union all
{% endif %}
{% endfor %}
),

final as (
    select cast(step_number as integer) as step_number, event_type, users_reached, users_through_all_steps,
           step_conversion, overall_conversion
    from steps
)

select * from final order by step_number
