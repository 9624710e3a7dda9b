"""Incremental builds: what a new batch changes, and tables rewritten only where it changed them.

A model declares a `scope` column when its rows for one user depend only on that user's events (the fact,
the users and sessions dimensions, the user journey). A batch then changes only the rows of the users it
touches: those rows are rebuilt with the model's own SQL, over only those users' input, and merged into
the published table. A model that also declares `partition_by_day` is stored one folder per day, and only
the days whose rows changed are written again; every other day's files are hard-linked unchanged.

Each layer keeps a manifest (`_build.json`) beside its tables, published with them: what the tables were
built from and a fingerprint of the SQL that built them. Anything that does not match (another engine,
another config, a silver batch that is gone) means a full rebuild.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clickstream import storage
from clickstream.engines.base import Engine

log = logging.getLogger(__name__)

MANIFEST = "_build.json"
SCOPE_TABLE = "scope_users"  # one column, scope_key: the users whose rows a build recomputes
SCOPE_DIR = "_scope_users"  # the published copy of the last build's scope, for the layer after it
DAY = "day"  # the folder key of a table stored by day: <table>/day=YYYY-MM-DD/


def fingerprint(engine: Engine, rendered: dict[str, str], declared: Any) -> str:
    """What decides a layer's output apart from its input: the engine, the rendered SQL, the declarations."""
    digest = hashlib.sha256(engine.name.encode())
    digest.update(repr(declared).encode())
    for name in sorted(rendered):
        digest.update(f"\0{name}\0{rendered[name]}".encode())
    return digest.hexdigest()


def read_manifest(tables: Path) -> dict | None:
    manifest = storage.read_json(tables / MANIFEST, None)
    return manifest if isinstance(manifest, dict) else None


def write_manifest(staged: Path, manifest: dict) -> None:
    storage.write_json(staged / MANIFEST, manifest)


@dataclass(frozen=True)
class Scoped:
    """A model rebuilt per user: its scope column and, if it is stored by day, the timestamp giving the day.

    `changes_from` names a timestamp column when a row depends only on its user's events up to that time:
    then only rows at or after the user's first new event can change, and no published row need be read
    to find the days to rewrite. Without it, the rebuilt rows are compared with the published ones.
    """

    name: str
    scope: str
    day_from: str | None
    changes_from: str | None


def scoped(declared: dict) -> Scoped | None:
    if "scope" not in declared:
        return None
    return Scoped(declared["name"], declared["scope"], declared.get("partition_by_day"),
                  declared.get("changes_from"))


def day_view(engine: Engine, name: str, sql: str, day_from: str) -> str:
    """Register `name` as `sql` plus the folder key computed from `day_from`; returns the key's column."""
    engine.create_view(name, f"select model.*, cast(model.{day_from} as date) as {DAY} from ({sql}) model")
    return DAY


def write_table(engine: Engine, view: str, path: Path, day_from: str | None) -> None:
    """Write `view` under `path`: one folder per day of `day_from` when given, else as one table."""
    if day_from is None:
        engine.write_parquet(view, path)
        return
    by_day = f"{view}__by_day"
    day_view(engine, by_day, f"select * from {view}", day_from)
    engine.write_parquet(by_day, path, partition_by=[DAY])
    engine.drop(by_day)


def _in_scope(column: str) -> str:
    return f"exists (select 1 from {SCOPE_TABLE} scope where scope.scope_key = {column})"


def merge(engine: Engine, model: Scoped, published: Path, staged: Path, scratch: Path) -> dict[str, Any]:
    """Write `staged` as the published table with the rows of the users in scope replaced by `model.name`.

    `model.name` holds the model rebuilt for exactly the users in scope. A table stored by day is written
    again only for the days where the rebuilt rows differ from the published ones (in either direction);
    the other days are hard-linked. Returns what was rewritten, for the log and the quality report.
    """
    name, old = model.name, f"{model.name}__published"
    engine.read_parquet(old, storage.parquet_files(published), schema=None)
    outside = f"select * from {old} where not {_in_scope(model.scope)}"
    if model.day_from is None:
        merged = f"{name}__merged"
        engine.create_view(merged, f"{outside} union all select * from {name}")
        engine.write_parquet(merged, staged)
        engine.drop(merged)
        engine.drop(old)
        return {"days_rewritten": None}

    if model.changes_from:
        changed = (f"select {model.day_from} from {name} rebuilt join {SCOPE_TABLE} scope "
                   f"on scope.scope_key = rebuilt.{model.scope} where rebuilt.{model.changes_from} >= scope.first_new_ts")
    else:
        inside = f"select * from {old} where {_in_scope(model.scope)}"
        changed = (f"select {model.day_from} from (select * from {name} except {inside}) added "
                   f"union all select {model.day_from} from ({inside} except select * from {name}) removed")
    _, rows = engine.fetch(f"select distinct cast({model.day_from} as date) as day from ({changed}) changed")
    days = {f"{DAY}={row[0].isoformat()}" for row in rows}
    staged.mkdir(parents=True)
    for folder in sorted(published.iterdir()):
        if folder.is_dir() and folder.name not in days:
            shutil.copytree(folder, staged / folder.name, copy_function=os.link)
    if days:
        affected = [f for f in storage.parquet_files(published) if f.parent.name in days]
        old_days = f"{name}__published_days"
        if affected:
            engine.read_parquet(old_days, affected, schema=None)
            kept = f"select * from {old_days} where not {_in_scope(model.scope)} union all "
        else:
            kept = ""
        listed = ", ".join(f"date '{day.split('=', 1)[1]}'" for day in sorted(days))
        rewritten = f"{name}__rewritten"
        engine.create_view(rewritten, f"{kept}select * from {name} where cast({model.day_from} as date) in ({listed})")
        write_table(engine, rewritten, scratch, model.day_from)
        for folder in sorted(scratch.iterdir()):
            if folder.is_dir():
                os.replace(folder, staged / folder.name)
        shutil.rmtree(scratch, ignore_errors=True)
        engine.drop(rewritten)
        engine.drop(old_days)
    engine.drop(old)
    return {"days_rewritten": sorted(day.split("=", 1)[1] for day in days)}


def register_scope(engine: Engine, sql: str) -> int:
    """Keep the users a build recomputes as `scope_users` (scope_key, first_new_ts); returns how many.

    `sql` returns the new events' users and times (scope_key, event_ts), or an already grouped scope.
    """
    engine.materialize(SCOPE_TABLE, f"select scope_key, min(first_new_ts) as first_new_ts from ({sql}) touched "
                                    f"where scope_key is not null group by scope_key")
    return engine.row_counts([SCOPE_TABLE])[SCOPE_TABLE]
