"""Incremental builds: what a new batch changes, and tables rewritten only where it changed them.

A model declares a `user_column` when its rows for one user depend only on that user's events (the fact,
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
from datetime import date
from pathlib import Path
from typing import Any

from clickstream import storage
from clickstream.engines.base import Engine
from clickstream.sql import render, week_of

MANIFEST = "_build.json"
# The users whose rows a build recomputes (user_key) and the time from which each one's rows can change
# (first_new_ts); the models read it under this name.
AFFECTED_USERS = "affected_users"
# The copy a build publishes with gold, for the analytics after it. (Named `_scope_users` before: gold is
# published as one folder, so the next gold build leaves no folder of that name; analytics built before it
# have another fingerprint, so they are built from scratch once and never look for it.)
AFFECTED_USERS_DIR = "_affected_users"
PUBLISHED_AFFECTED_USERS = "gold_affected_users"  # that copy, as the analytics read it
REPLAY_TABLE = "replay_sessions"  # per supplied session of those users: where its visits are rebuilt from
PERIOD = "week"  # the folder key of a table stored by week: <table>/week=YYYY-MM-DD/ (the Monday)
# A week that would gain a file but already holds this many is written again instead, as few files: one file
# per run would otherwise pile up in the latest week until the next full build.
COMPACT_AT_FILES = 16


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
class PerUserModel:
    """A model rebuilt per user: its user column and, if it is stored by week, the timestamp giving the week.

    A table stored by week also says which of its rows a batch can change: `changes_from` names a timestamp
    up to which a row depends only on its user's events, so only rows at or after the user's first new event
    can change; `replayed` names the supplied session and the start of a visit, so only the visits that
    gold sessionizes again can change (`replay_sessions.sql`).
    """

    name: str
    user_column: str  # the column naming the user a row belongs to
    period_from: str | None
    changes_from: str | None
    replayed: dict[str, str] | None = None  # {session: column, start: column}: only the replayed visits change


def per_user_model(declared: dict) -> PerUserModel | None:
    """The declared model as one rebuilt per user, or None when its rows depend on more than one user's events."""
    if "user_column" not in declared:
        return None
    if "partition_by_week" in declared and "changes_from" not in declared and "replayed" not in declared:
        raise ValueError(f"model {declared['name']}: partition_by_week needs changes_from or replayed "
                         f"(see incremental.py)")
    return PerUserModel(declared["name"], declared["user_column"], declared.get("partition_by_week"),
                  declared.get("changes_from"), declared.get("replayed"))


def write_table(engine: Engine, view: str, path: Path, period_from: str | None) -> None:
    """Write `view` under `path`: one folder per week of `period_from` when given, else as one table."""
    if period_from is None:
        engine.write_parquet(view, path)
        return
    by_period = f"{view}__by_{PERIOD}"
    engine.create_view(by_period, f"select model.*, {week_of('model.' + period_from)} as {PERIOD} from {view} model")
    engine.write_parquet(by_period, path, partition_by=[PERIOD])
    engine.drop(by_period)
    if not storage.parquet_files(path):  # no row, no week: one empty file keeps the table and its columns
        path.rmdir()
        engine.write_parquet(view, path)


def merge(engine: Engine, model: PerUserModel, published: Path, staged: Path, scratch: Path,
          removals: bool = False) -> dict[str, Any]:
    """Write `staged` as the published table with the part a batch can change replaced by `model.name`.

    That part is each user's rows from their first new event on (`changes_from`), the visits sessionized
    again (`replayed`), or else every row of the affected users (`sql/incremental/_replaced.sql`);
    `model.name` holds the model rebuilt for at least that part, and only its rows in that part are taken.
    A table stored whole is written again whole (`merged_whole.sql`). A table stored by week is written only
    in the weeks holding rows of that part (`touched_weeks.sql`): a week where published rows are replaced
    (`replaced_weeks.sql`) is written again; a week where none is (rows only added, as when new events come
    after the published ones) keeps its files and gains one, unless it holds `COMPACT_AT_FILES` already: then
    it is written again too (`written_rows.sql`). Every other week is hard-linked. With `removals` (events
    left silver since the last build), a replaced published row may have no rebuilt row at all, so its week
    is written again too. Returns the weeks rewritten (None: the whole table) and appended, for the log and
    the quality report.
    """
    old = f"{model.name}__published"
    engine.read_parquet(old, storage.parquet_files(published), schema=None)
    names = {"model": model, "rebuilt": model.name, "published": old, "affected_users": AFFECTED_USERS,
             "replay_table": REPLAY_TABLE}
    if model.period_from is None:
        merged = f"{model.name}__merged"
        engine.create_view(merged, render("incremental/merged_whole", engine, **names))
        engine.write_parquet(merged, staged)
        engine.drop(merged)
        engine.drop(old)
        return {"weeks_rewritten": None, "weeks_appended": None}

    touched = _weeks_of(engine, render("incremental/touched_weeks", engine, **names,
                                       with_published=model.changes_from is None or removals))
    rewritten: set[date] = set()
    old_weeks = f"{model.name}__published_{PERIOD}s"
    affected = [f for f in storage.parquet_files(published) if _week(f.parent.name) in touched]
    if affected:
        engine.read_parquet(old_weeks, affected, schema=None)
        rewritten = _weeks_of(engine, render("incremental/replaced_weeks", engine, **{**names, "published": old_weeks}))
        files_per_week = Counter(_week(f.parent.name) for f in affected)
        rewritten |= {week for week, files in files_per_week.items() if files >= COMPACT_AT_FILES}
    staged.mkdir(parents=True)
    for folder in sorted(published.iterdir()):
        if folder.is_dir() and _week(folder.name) not in rewritten:
            shutil.copytree(folder, staged / folder.name, copy_function=os.link)
    if touched:
        written = f"{model.name}__written"
        engine.create_view(written, render("incremental/written_rows", engine, **{**names, "published": old_weeks},
                                           touched_weeks=sorted(touched), rewritten_weeks=sorted(rewritten)))
        write_table(engine, written, scratch, model.period_from)
        for file in storage.parquet_files(scratch):  # named after this merge: never a published file's name
            (staged / file.parent.name).mkdir(exist_ok=True)
            os.replace(file, staged / file.parent.name / f"{scratch.name}-{file.name}")
        shutil.rmtree(scratch, ignore_errors=True)
        engine.drop(written)
    engine.drop(old_weeks)
    engine.drop(old)
    return {"weeks_rewritten": _iso(rewritten), "weeks_appended": _iso(touched - rewritten)}


def describe(summary: dict[str, Any]) -> str:
    """What `merge` wrote, for the log."""
    if summary["weeks_rewritten"] is None:
        return "written again whole"
    return (f"weeks rewritten: {', '.join(summary['weeks_rewritten']) or 'none'}; "
            f"weeks appended to: {', '.join(summary['weeks_appended']) or 'none'}")


def _week(folder: str) -> date | None:
    """The week (its Monday) of a `week=YYYY-MM-DD` folder; None for any other name."""
    key, _, value = folder.partition("=")
    return date.fromisoformat(value) if key == PERIOD else None


def _iso(weeks: set[date]) -> list[str]:
    return [week.isoformat() for week in sorted(weeks)]


def _weeks_of(engine: Engine, sql: str) -> set[date]:
    _, rows = engine.fetch(sql)
    return {row[0] for row in rows}


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
            engine.create_empty_like(view, name)
    return views[0][0], views[1][0]


AFFECTED_USERS_CHANGES = ("silver", "gold", "none")


def register_affected_users(engine: Engine, changes: str, removals: bool = False) -> None:
    """Keep the users a build recomputes as `affected_users` (user_key, first_new_ts).

    `changes` says what tells of them (`sql/incremental/affected_users.sql`): 'silver', a gold build's new events
    (and with `removals`, the events that left silver); 'gold', the affected users a gold build published, read
    as `PUBLISHED_AFFECTED_USERS`; 'none', no user.
    """
    if changes not in AFFECTED_USERS_CHANGES:
        raise ValueError(f"affected users from {changes!r}: expected one of {', '.join(AFFECTED_USERS_CHANGES)}")
    engine.materialize(AFFECTED_USERS, render("incremental/affected_users", engine, changes=changes,
                                              removals=removals))


def register_affected_rows(engine: Engine, name: str, source: str, user_column: str) -> None:
    """`name`: the rows of table `source` that belong to the affected users, by its `user_column`."""
    engine.create_view(name, render("incremental/affected_rows", engine, source=source, user_column=user_column))
