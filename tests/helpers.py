"""Test helpers: small inline tables in any engine, and running one SQL model on them."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pathlib import Path

from clickstream import declarations
from clickstream.config import Config
from clickstream.engines.base import Engine
from clickstream.schema import BRONZE, Schema
from clickstream.sql import render


def _sql_value(value: Any, sql_type: str) -> str:
    if value is None:
        return f"cast(null as {sql_type})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return f"cast('{value.isoformat(sep=' ')}' as timestamp)"
    if isinstance(value, dt.date):
        return f"cast('{value.isoformat()}' as date)"
    if isinstance(value, (int, float, Decimal)):
        return f"cast({value} as {sql_type})"
    return f"cast({Engine.quote_literal(str(value))} as {sql_type})"


def inline_table(engine: Engine, name: str, schema: Schema, rows: list[tuple]) -> None:
    """Register `name` holding exactly `rows` with the declared column types (engine-neutral SQL)."""
    if not rows:
        engine.create_view(name, engine.empty_select(schema))
        return
    selects = []
    for row in rows:
        assert len(row) == len(schema), f"row {row} does not match schema {schema}"
        selects.append("select " + ", ".join(f"{_sql_value(v, t)} as {c}" for v, (c, t) in zip(row, schema)))
    engine.create_view(name, " union all ".join(selects))


# Bronze with its column of unmapped values (`extra`, a flat JSON object of text), as silver reads it.
BRONZE_WITH_EXTRA: Schema = BRONZE if any(c == "extra" for c, _ in BRONZE) else BRONZE + [("extra", "string")]


def bronze_values(schema: Schema = BRONZE, **values: Any) -> tuple:
    """A bronze row in `schema`'s column order, from its values by column name (every other column NULL)."""
    names = [c for c, _ in schema]
    unknown = set(values) - set(names)
    assert not unknown, f"not bronze columns: {unknown}"
    return tuple(values.get(name) for name in names)


# the per-user state a query counts (its `counts` in queries.yml), built from the same tables first
UPSTREAM = {f"analytics/{q['name']}": (f"analytics/{q['counts']}",) for q in declarations.analytics_queries()
            if q.get("counts")}


def run_model(engine: Engine, model: str, columns: list[str] | None = None, ordered: bool = False,
              **context: Any) -> list[tuple]:
    """Run one model and return its rows (only `columns`, if given): sorted so whole tables compare, or, with
    `ordered`, in the order the model returns them (where its order is part of what it promises)."""
    for upstream in UPSTREAM.get(model, ()):
        engine.create_view(upstream.rsplit("/", 1)[1], render(upstream, engine, **context))
    engine.create_view("model_under_test", render(model, engine, **context))
    selected = ", ".join(columns) if columns else "*"
    _, rows = engine.fetch(f"select {selected} from model_under_test")
    if ordered:
        return rows
    return sorted(rows, key=lambda row: tuple((v is None, str(v)) for v in row))


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# ---- gold tables for the analytics queries, as the tests build them

FCT = [("event_id", "string"), ("user_key", "string"), ("session_key", "string"), ("product_key", "string"),
       ("event_type_key", "string"), ("date_key", "integer"), ("time_key", "integer"), ("event_ts", "timestamp"),
       ("amount", "decimal(18,2)"), ("outcome", "string"), ("is_purchase", "boolean")]
USERS = [("user_key", "string"), ("total_events", "bigint"), ("total_sessions", "bigint"),
         ("total_purchases", "bigint"), ("total_spent", "decimal(18,2)"), ("last_purchase_ts", "timestamp"),
         ("is_purchaser", "boolean")]
DATES = [("date_key", "integer"), ("date_day", "date"), ("day_name", "string"), ("is_weekend", "boolean")]


def event(event_id: str, user: str, event_type: str, when: str, session: str = "s", product: str = "",
          amount: str | None = None) -> tuple:
    """A fct_events row: the visit is `<user>-<session>`; date and time keys from `when` (UTC)."""
    day = ts(when)
    return (event_id, user, f"{user}-{session}", product, event_type, int(day.strftime("%Y%m%d")),
            day.hour * 100 + day.minute, day, None if amount is None else Decimal(amount),
            "purchase" if event_type == "purchase" else None, event_type == "purchase")


def dates(first: str, last: str) -> list[tuple]:
    """dim_date rows (the columns the analytics read) for every day from first to last."""
    day, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    rows = []
    while day <= end:
        rows.append((int(day.strftime("%Y%m%d")), day, day.strftime("%A"), day.isoweekday() >= 6))
        day += dt.timedelta(days=1)
    return rows


def analytics_context(**overrides: Any) -> dict:
    """The parameters the analytics models are rendered with (analytics.model_context), from the default config."""
    analytics, gold = Config().analytics, Config().gold
    context = dict(no_product_key="", incremental=False, funnel=analytics.funnel.steps,
                   product_view_event_types=gold.product_view_event_types,
                   cart_add_event_types=gold.cart_add_event_types,
                   funnel_window_us=analytics.funnel.window_seconds * 1_000_000, funnel_scope=analytics.funnel.scope,
                   funnel_breakdown=analytics.funnel.breakdown, retention=analytics.retention,
                   path_steps=analytics.paths.steps, cart_window_us=analytics.cart.window_seconds * 1_000_000,
                   rank_by=analytics.top_products.rank_by, top_n=analytics.top_n, segments=analytics.segments,
                   path_length=analytics.path_length, product_attributes=gold.product_attributes,
                   visit_attributes=gold.visit_attributes)
    unknown = set(overrides) - set(context)
    assert not unknown, f"not a parameter of the analytics models: {unknown}"
    return {**context, **overrides}


def make_config(tmp_path: Path, **overrides) -> Config:
    """Defaults, with data and logs under tmp_path."""
    data = Config().model_dump()
    data["paths"] = {"data_dir": str(tmp_path / "data"), "logs_dir": str(tmp_path / "logs")}
    for key, value in overrides.items():
        data[key] = value
    return Config.model_validate(data)


SHARED_DATASET = (Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ecommerce_clickstream_transactions"
                  / "ecommerce_clickstream_transactions.csv")
