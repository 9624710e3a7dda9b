"""Test helpers: small inline tables in any engine, and running one SQL model on them."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pathlib import Path

from clickstream.config import Config
from clickstream.engines.base import Engine
from clickstream.schema import Schema
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


def run_model(engine: Engine, model: str, columns: list[str] | None = None, **context: Any) -> list[tuple]:
    """Run one model and return its rows (only `columns`, if given), sorted so whole tables compare."""
    engine.create_view("model_under_test", render(model, engine, **context))
    selected = ", ".join(columns) if columns else "*"
    _, rows = engine.fetch(f"select {selected} from model_under_test")
    return sorted(rows, key=lambda row: tuple((v is None, str(v)) for v in row))


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def make_config(tmp_path: Path, **overrides) -> Config:
    """Defaults, with data and logs under tmp_path."""
    data = Config().model_dump()
    data["paths"] = {"data_dir": str(tmp_path / "data"), "logs_dir": str(tmp_path / "logs")}
    for key, value in overrides.items():
        data[key] = value
    return Config.model_validate(data)


SHARED_DATASET = (Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ecommerce_clickstream_transactions"
                  / "ecommerce_clickstream_transactions.csv")
