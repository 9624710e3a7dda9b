"""Building one SQL model: write its rendered SQL to staging, and read the staged copy back under its name."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from clickstream import storage
from clickstream.context import RunContext
from clickstream.catalog import WEEK
from clickstream.engines.base import Engine
from clickstream.sql import week_of

log = logging.getLogger(__name__)


def build_model(ctx: RunContext, layer: str, name: str, sql: str, root: Path,
                partition_by_week: str | None = None) -> Path:
    """Run the rendered `sql/<layer>/<name>.sql` once into `root/<name>`; later models and tests read the
    written Parquet.

    With `partition_by_week`, the table is written one folder per week of that timestamp column.
    """
    started = time.perf_counter()
    engine = ctx.engine
    pending = f"{name}__pending"
    staged = root / name
    with ctx.profile.step(name, layer):
        engine.create_view(pending, sql)
        write_table(engine, pending, staged, partition_by_week)
        engine.drop(pending)
        engine.read_parquet(name, storage.parquet_files(staged), schema=None)
    log.debug("%s: built %s in %.2f s", layer, name, time.perf_counter() - started)
    return staged


def write_table(engine: Engine, view: str, path: Path, period_from: str | None) -> None:
    """Write `view` under `path`: one folder per week of `period_from` when given, else as one table."""
    if period_from is None:
        engine.write_parquet(view, path)
        return
    by_period = f"{view}__by_{WEEK}"
    engine.create_view(by_period, f"select model.*, {week_of('model.' + period_from)} as {WEEK} from {view} model")
    engine.write_parquet(by_period, path, partition_by=[WEEK])
    engine.drop(by_period)
    if not storage.parquet_files(path):  # no row, no week: one empty file keeps the table and its columns
        path.rmdir()
        engine.write_parquet(view, path)
