"""Incremental builds: what a new batch changes, and tables rewritten only where it changed them.

A model declares a `scope` column when its rows for one user depend only on that user's events (the fact,
the users and sessions dimensions, the user journey). A batch then changes only a part of the rows of the
users it touches (see `merge`): that part is rebuilt with the model's own SQL, over only the input it needs,
and merged into the published table. A model that also declares `partition_by_week` is stored one folder per
week (weeks start on Monday): a week where published rows are replaced is written again, a week that only
gains rows gains a file (unless it holds `COMPACT_AT_FILES` already: then it is written again), and every
other week's files are hard-linked unchanged. (A week, not a day: one folder per day made many small files,
which cost more to write and to read than rewriting a week saves.)

Each layer keeps a manifest (`_build.json`) beside its tables, published with them: what the tables were
built from and a fingerprint of the SQL that built them. Anything that does not match (another engine,
another config, a silver batch that is gone) means a full rebuild.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter
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
# A week that would gain a file but already holds this many is written again instead, as few files: one file
# per run would otherwise pile up in the latest week until the next full build.
COMPACT_AT_FILES = 16


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

    A table stored by week also says which of its rows a batch can change: `changes_from` names a timestamp
    up to which a row depends only on its user's events, so only rows at or after the user's first new event
    can change; `replayed` names the supplied session and the start of a visit, so only the visits that
    gold sessionizes again can change (`replay_sessions.sql`).
    """

    name: str
    scope: str
    period_from: str | None
    changes_from: str | None
    replayed: dict[str, str] | None = None  # {session: column, start: column}: only the replayed visits change


def scoped(declared: dict) -> Scoped | None:
    if "scope" not in declared:
        return None
    if "partition_by_week" in declared and "changes_from" not in declared and "replayed" not in declared:
        raise ValueError(f"model {declared['name']}: partition_by_week needs changes_from or replayed "
                         f"(see incremental.py)")
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


def _replaced(model: Scoped, alias: str) -> str:
    """A row (published or rebuilt, as `alias`) of the part of the table a merge takes from the rebuilt rows."""
    if model.replayed is not None:  # the visits sessionized again (replay_sessions.sql)
        session, start = model.replayed["session"], model.replayed["start"]
        return (f"exists (select 1 from {REPLAY_TABLE} replay where replay.user_id = {alias}.{model.scope} "
                f"and replay.session_id is not distinct from {alias}.{session} "
                f"and {alias}.{start} >= replay.replay_from)")
    if model.changes_from is not None:  # each user's rows from their first new event on
        return (f"coalesce({alias}.{model.changes_from} >= (select max(scope.first_new_ts) from {SCOPE_TABLE} scope "
                f"where scope.scope_key = {alias}.{model.scope}), false)")
    return _in_scope(f"{alias}.{model.scope}")  # every row of the users in scope


def merge(engine: Engine, model: Scoped, published: Path, staged: Path, scratch: Path,
          removals: bool = False) -> dict[str, Any]:
    """Write `staged` as the published table with the part a batch can change replaced by `model.name`.

    That part is each user's rows from their first new event on (`changes_from`), the visits sessionized
    again (`replayed`), or else every row of the users in scope; `model.name` holds the model rebuilt for at
    least that part, and only its rows in that part are taken. A table stored whole is written again whole.
    A table stored by week is written only in the weeks holding rows of that part: a week where published rows
    are replaced is written again; a week where none is (rows only added, as when new events come after the
    published ones) keeps its files and gains one, unless it holds `COMPACT_AT_FILES` already: then it is
    written again too. Every other week is hard-linked. With `removals` (events left silver since the last
    build), a replaced published row may have no rebuilt row at all, so its week is written again too.
    Returns the weeks rewritten (None: the whole table) and appended, for the log and the quality report.
    """
    name, old = model.name, f"{model.name}__published"
    engine.read_parquet(old, storage.parquet_files(published), schema=None)
    if model.period_from is None:
        merged = f"{name}__merged"
        engine.create_view(merged, f"select * from {old} published where not {_replaced(model, 'published')} "
                                   f"union all select * from {name} rebuilt where {_replaced(model, 'rebuilt')}")
        engine.write_parquet(merged, staged)
        engine.drop(merged)
        engine.drop(old)
        return {"weeks_rewritten": None, "weeks_appended": None}

    column = model.period_from
    period = period_of(f"candidate.{column}")
    weeks = f"select distinct {period} from {name} candidate where {_replaced(model, 'candidate')}"
    if model.changes_from is None or removals:
        # A replaced row may move to another week (a visit that now starts earlier) or go: its old week too.
        # (With changes_from, a published row of that part is one event, at the time of its rebuilt row,
        # unless the event left silver.)
        weeks += f" union select distinct {period} from {old} candidate where {_replaced(model, 'candidate')}"
    touched = _folders(engine, weeks)
    # A touched week none of whose published rows is replaced keeps its files and gains one: rows appended.
    rewritten: set[str] = set()
    old_weeks = f"{name}__published_{PERIOD}s"
    affected = [f for f in storage.parquet_files(published) if f.parent.name in touched]
    if affected:
        engine.read_parquet(old_weeks, affected, schema=None)
        rewritten = _folders(engine, f"select distinct {period} from {old_weeks} candidate "
                                     f"where {_replaced(model, 'candidate')}")
        files_per_week = Counter(f.parent.name for f in affected)
        rewritten |= {week for week, files in files_per_week.items() if files >= COMPACT_AT_FILES}
    staged.mkdir(parents=True)
    for folder in sorted(published.iterdir()):
        if folder.is_dir() and folder.name not in rewritten:
            shutil.copytree(folder, staged / folder.name, copy_function=os.link)
    if touched:
        listed = ", ".join(f"date '{week}'" for week in _weeks(touched))
        kept = ""
        if rewritten:
            again = ", ".join(f"date '{week}'" for week in _weeks(rewritten))
            kept = (f"select * from {old_weeks} published where {period_of('published.' + column)} in ({again}) "
                    f"and not {_replaced(model, 'published')} union all ")
        written = f"{name}__written"
        engine.create_view(written, f"{kept}select * from {name} rebuilt where {_replaced(model, 'rebuilt')} "
                                    f"and {period_of('rebuilt.' + column)} in ({listed})")
        write_table(engine, written, scratch, column)
        for file in storage.parquet_files(scratch):  # named after this merge: never a published file's name
            (staged / file.parent.name).mkdir(exist_ok=True)
            os.replace(file, staged / file.parent.name / f"{scratch.name}-{file.name}")
        shutil.rmtree(scratch, ignore_errors=True)
        engine.drop(written)
    engine.drop(old_weeks)
    engine.drop(old)
    return {"weeks_rewritten": _weeks(rewritten), "weeks_appended": _weeks(touched - rewritten)}


def describe(summary: dict[str, Any]) -> str:
    """What `merge` wrote, for the log."""
    if summary["weeks_rewritten"] is None:
        return "written again whole"
    return (f"weeks rewritten: {', '.join(summary['weeks_rewritten']) or 'none'}; "
            f"weeks appended to: {', '.join(summary['weeks_appended']) or 'none'}")


def _weeks(folders: set[str]) -> list[str]:
    """The weeks (YYYY-MM-DD, their Monday) of week folders, in order."""
    return sorted(folder.split("=", 1)[1] for folder in folders)


def _folders(engine: Engine, sql: str) -> set[str]:
    """The week folders (`week=YYYY-MM-DD`) of the weeks `sql` returns."""
    _, rows = engine.fetch(sql)
    return {f"{PERIOD}={row[0].isoformat()}" for row in rows}


def register_delta(engine: Engine, name: str, staged: Path, published: Path) -> tuple[str, str]:
    """Views of a table stored by week as staged: the rows of the files it wrote, and of the files it linked.

    Written files have names no published file has, so a staged file is linked iff the published table has
    a file at the same place.
    """
    files = storage.parquet_files(staged)
    linked = [f for f in files if (published / f.relative_to(staged)).exists()]
    views = (f"{name}__changed", sorted(set(files) - set(linked))), (f"{name}__kept", linked)
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
