"""Building one SQL model: write its rendered SQL to staging, and read the staged copy back under its name."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from clickstream import storage
from clickstream.context import RunContext
from clickstream.incremental import write_table

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

