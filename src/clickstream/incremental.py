"""Incremental builds: what a new batch changes, and tables rewritten only where it changed them.

A model declares a `scope` column when its rows for one user depend only on that user's events (the fact,
the users and sessions dimensions, the user journey). A batch then changes only the rows of the users it
touches: those rows are rebuilt with the model's own SQL, over only those users' input, and merged into
the published table. A model that also declares `partition_by_week` is stored one folder per week (weeks
start on Monday), and only the weeks whose rows changed are written again; every other week's files are
hard-linked unchanged. (A week, not a day: one folder per day made many small files, which cost more to
write and to read than rewriting a week saves.)

Each layer keeps a manifest (`_build.json`) beside its tables, published with them: what the tables were
built from and a fingerprint of the SQL that built them. Anything that does not match (another engine,
another config, a silver batch that is gone) means a full rebuild.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clickstream import storage
from clickstream.engines.base import Engine

MANIFEST = "_build.json"
SCOPE_TABLE = "scope_users"  # the users whose rows a build recomputes (scope_key) and their first new event
SCOPE_DIR = "_scope_users"  # the published copy of the last build's scope, for the layer after it
REPLAY_TABLE = "replay_sessions"  # per supplied session of those users: where its visits are rebuilt from
PERIOD = "week"  # the folder key of a table stored by week: <table>/week=YYYY-MM-DD/ (the Monday)


def period_of(timestamp: str) -> str:
    """The SQL (same on both engines) of the week a timestamp falls in, as the date of its Monday."""
    return f"cast(date_trunc('week', {timestamp}) as date)"


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
    """A model rebuilt per user: its scope column and, if it is stored by week, the timestamp giving the week.

    A table stored by week also names, in `changes_from`, a timestamp up to which a row depends only on its
    user's events: only rows at or after the user's first new event can change, so the weeks to rewrite
    are known without reading the published rows. (A model whose rows can change earlier, such as a visit
    that a late event extends, is stored as one table and rewritten whole.)
    """

    name: str
    scope: str
    period_from: str | None
    changes_from: str | None
    replayed: dict[str, str] | None = None  # {session: column, start: column}: only the replayed visits change


def scoped(declared: dict) -> Scoped | None:
    if "scope" not in declared:
        return None
    if "partition_by_week" in declared and "changes_from" not in declared:
        raise ValueError(f"model {declared['name']}: partition_by_week needs changes_from (see incremental.py)")
    return Scoped(declared["name"], declared["scope"], declared.get("partition_by_week"),
                  declared.get("changes_from"), declared.get("replayed"))


def write_table(engine: Engine, view: str, path: Path, period_from: str | None) -> None:
    """Write `view` under `path`: one folder per week of `period_from` when given, else as one table."""
    if period_from is None:
        engine.write_parquet(view, path)
        return
    by_period = f"{view}__by_{PERIOD}"
    engine.create_view(by_period, f"select model.*, {period_of('model.' + period_from)} as {PERIOD} "
                                  f"from {view} model")
    engine.write_parquet(by_period, path, partition_by=[PERIOD])
    engine.drop(by_period)


def _in_scope(column: str) -> str:
    return f"exists (select 1 from {SCOPE_TABLE} scope where scope.scope_key = {column})"


def _replaced_whole(model: Scoped) -> str:
    """A published row (alias `published`) of a table stored whole that the rebuilt rows replace."""
    if model.replayed is None:  # every row of the users in scope
        return _in_scope(f"published.{model.scope}")
    session, start = model.replayed["session"], model.replayed["start"]
    return (f"exists (select 1 from {REPLAY_TABLE} replay where replay.user_id = published.{model.scope} "
            f"and replay.session_id is not distinct from published.{session} "
            f"and (replay.replay_from is null or published.{start} >= replay.replay_from))")


def _from_first_new(model: Scoped, alias: str) -> str:
    """A row of a user in scope at or after that user's first new event: the rows a batch can change."""
    return (f"exists (select 1 from {SCOPE_TABLE} scope where scope.scope_key = {alias}.{model.scope} "
            f"and {alias}.{model.changes_from} >= scope.first_new_ts)")


def merge(engine: Engine, model: Scoped, published: Path, staged: Path, scratch: Path) -> dict[str, Any]:
    """Write `staged` as the published table with the rows of the users in scope replaced by `model.name`.

    A table stored whole: `model.name` holds the model rebuilt for exactly the users in scope (or, when it
    declares `replayed`, for exactly their replayed visits: see `replay_sessions.sql`), and the table is
    written again whole. A table stored by week: only the rows at or after each user's first new event
    can change (`changes_from`), so only those are taken from `model.name` (which may hold no others), and
    only the weeks holding them are written again; the other weeks are hard-linked. Returns the weeks
    rewritten (None: the whole table), for the log and the quality report.
    """
    name, old = model.name, f"{model.name}__published"
    engine.read_parquet(old, storage.parquet_files(published), schema=None)
    outside = f"select * from {old} published where not {_replaced_whole(model)}"
    if model.period_from is None:
        merged = f"{name}__merged"
        engine.create_view(merged, f"{outside} union all select * from {name}")
        engine.write_parquet(merged, staged)
        engine.drop(merged)
        engine.drop(old)
        return {"weeks_rewritten": None}

    # A row before its user's first new event is as published (changes_from): only later rows can differ.
    column = model.period_from
    changed = (f"select {column} from {name} rebuilt join {SCOPE_TABLE} scope on scope.scope_key = "
               f"rebuilt.{model.scope} where rebuilt.{model.changes_from} >= scope.first_new_ts")
    _, rows = engine.fetch(f"select distinct {period_of(column)} as period from ({changed}) changed")
    folders = {f"{PERIOD}={row[0].isoformat()}" for row in rows}
    staged.mkdir(parents=True)
    for folder in sorted(published.iterdir()):
        if folder.is_dir() and folder.name not in folders:
            shutil.copytree(folder, staged / folder.name, copy_function=os.link)
    if folders:
        affected = [f for f in storage.parquet_files(published) if f.parent.name in folders]
        old_periods = f"{name}__published_{PERIOD}s"
        kept = ""
        if affected:
            engine.read_parquet(old_periods, affected, schema=None)
            kept = f"select * from {old_periods} published where not {_from_first_new(model, 'published')} union all "
        listed = ", ".join(f"date '{folder.split('=', 1)[1]}'" for folder in sorted(folders))
        rewritten = f"{name}__rewritten"
        engine.create_view(rewritten, f"{kept}select * from {name} rebuilt where {_from_first_new(model, 'rebuilt')} "
                                      f"and {period_of('rebuilt.' + column)} in ({listed})")
        write_table(engine, rewritten, scratch, column)
        for folder in sorted(scratch.iterdir()):
            if folder.is_dir():
                os.replace(folder, staged / folder.name)
        shutil.rmtree(scratch, ignore_errors=True)
        engine.drop(rewritten)
        engine.drop(old_periods)
    engine.drop(old)
    return {"weeks_rewritten": sorted(folder.split("=", 1)[1] for folder in folders)}


def register_delta(engine: Engine, name: str, staged: Path, weeks: list[str]) -> tuple[str, str]:
    """Views of a table stored by week as staged: the rows of `weeks` (rewritten), and the rows of the others."""
    rewritten = {f"{PERIOD}={week}" for week in weeks}
    files = storage.parquet_files(staged)
    views = (f"{name}__changed", [f for f in files if f.parent.name in rewritten]), (
        f"{name}__kept", [f for f in files if f.parent.name not in rewritten])
    for view, parts in views:
        if parts:
            engine.read_parquet(view, parts, schema=None)
        else:
            engine.create_view(view, f"select * from {name} where 1 = 0")
    return views[0][0], views[1][0]


def register_scope(engine: Engine, sql: str) -> int:
    """Keep the users a build recomputes as `scope_users` (scope_key, first_new_ts); returns how many.

    `sql` returns the new events' users and times (scope_key, event_ts), or an already grouped scope.
    """
    engine.materialize(SCOPE_TABLE, f"select scope_key, min(first_new_ts) as first_new_ts from ({sql}) touched "
                                    f"where scope_key is not null group by scope_key")
    return engine.row_counts([SCOPE_TABLE])[SCOPE_TABLE]
