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

Everything incremental is here, in the order a batch goes through it (docs/INCREMENTAL.md tells it on one page):
the tables and their merge by week; gold's build of a batch of new silver runs (`build_gold`: the affected users,
the visits sessionized again, each per-user model merged, the rest rebuilt) and its tests on the rows it rewrote
(`gold_deltas`); then each per-user analytics result rebuilt for the users gold changed (`changed_users`,
`build_per_user`). gold.py and analytics.py only decide between a full and an incremental build.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from clickstream import silver, storage
from clickstream.build import build_model, write_table
from clickstream.catalog import WEEK
from clickstream.context import RunContext
from clickstream.engines.base import Engine
from clickstream.quality import Delta, compile_tests, run_tests
from clickstream.sql import render

log = logging.getLogger(__name__)

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
PERIOD = WEEK  # the folder key of a table stored by week: <table>/week=YYYY-MM-DD/ (the Monday)
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


def models_due(analytics: Path) -> str | None:
    """The models' time the predictive models published in `analytics` are due to be fitted up to (a run with
    `models_later` kept them fitted up to an earlier one), or None."""
    entries = (read_manifest(analytics) or {}).get("queries", {})
    return next((entry["due"] for entry in entries.values() if entry.get("due")), None)


def write_manifest(staged: Path, manifest: dict) -> None:
    storage.write_json(staged / MANIFEST, manifest)


@dataclass(frozen=True)
class PerUserModel:
    """A model rebuilt per user: its user column and, if it is stored by week, the timestamp giving the week.

    A table stored by week also says which of its rows a batch can change: `changes_from` names a timestamp
    up to which a row depends only on its user's events, so only rows at or after the user's first new event
    can change; `replayed` names the supplied session and the start of a visit, so only the visits that
    gold sessionizes again can change (`replay_sessions.sql`).

    A result whose rows depend only on the events of their own visit (`per_visit`, with `changes_from`) is
    rebuilt from the visits holding an event at or after their user's first new one, whole, not from the
    users' whole history: every row from that event on belongs to such a visit (`affected_visits.sql`).
    """

    name: str
    user_column: str  # the column naming the user a row belongs to
    period_from: str | None
    changes_from: str | None
    replayed: dict[str, str] | None = None  # {session: column, start: column}: only the replayed visits change
    per_visit: bool = False


def per_user_model(declared: dict) -> PerUserModel | None:
    """The declared model as one rebuilt per user, or None when its rows depend on more than one user's events."""
    if "user_column" not in declared:
        return None
    if "partition_by_week" in declared and "changes_from" not in declared and "replayed" not in declared:
        raise ValueError(f"model {declared['name']}: partition_by_week needs changes_from or replayed "
                         f"(see incremental.py)")
    return PerUserModel(declared["name"], declared["user_column"], declared.get("partition_by_week"),
                        declared.get("changes_from"), declared.get("replayed"), declared.get("per_visit", False))


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
    if not storage.parquet_files(staged):
        _write_empty(engine, old, staged)
    engine.drop(old_weeks)
    engine.drop(old)
    return {"weeks_rewritten": _iso(rewritten), "weeks_appended": _iso(touched - rewritten)}


def _write_empty(engine: Engine, like: str, staged: Path) -> None:
    """A table stored by week with no row in any week: one empty file keeps the table and its columns (as
    `build.write_table` writes it)."""
    staged.rmdir()
    empty = f"{like}__empty"
    engine.create_empty_like(empty, like)
    engine.write_parquet(empty, staged)
    engine.drop(empty)


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
    as `PUBLISHED_AFFECTED_USERS`, each from the start of their first visit it sessionized again
    (`published_affected_users.sql`); 'none', no user.
    """
    if changes not in AFFECTED_USERS_CHANGES:
        raise ValueError(f"affected users from {changes!r}: expected one of {', '.join(AFFECTED_USERS_CHANGES)}")
    engine.materialize(AFFECTED_USERS, render("incremental/affected_users", engine, changes=changes,
                                              removals=removals))


def register_affected_rows(engine: Engine, name: str, source: str, user_column: str) -> None:
    """`name`: the rows of table `source` that belong to the affected users, by its `user_column`."""
    engine.create_view(name, render("incremental/affected_rows", engine, source=source, user_column=user_column))


# ---- gold: a batch of new silver runs merged into the published star


@dataclass
class Built:
    """What building the models gave, before the star's tests."""

    results: list[dict] = field(default_factory=list)  # tests already run (an incremental build's steps)
    merged: dict[str, dict] = field(default_factory=dict)  # per merged table, the weeks it rewrote and appended
    removals: bool = False  # events left silver since the last build (a file replaced by a new version)
    untested_steps: list[dict] = field(default_factory=list)  # intermediate models still to test


def build_gold(ctx: RunContext, declared: list[dict], sql: dict[str, str], root: Path,
                       new_runs: list[str], silver_state: dict) -> Built:
    """Rebuild the per-user models for the users of `new_runs`, merge them, then rebuild the other models.

    The per-user models run in their declared order, each over its inputs cut down to what can change: the
    silver events of the replayed visits (`replay_sessions.sql`, `replayed_events.sql`), or a merged table's
    rows of the affected users. Each published one is merged as soon as it is built. The intermediate ones
    are tested then, against their cut-down input.
    """
    removals = any("superseded" in silver_state["runs"][run] for run in new_runs)
    batch_files = _register_new_events(ctx, new_runs, silver_state, removals)
    reads_published = _replay(ctx, declared, sql, new_runs)
    if reads_published:
        _register_published_events(ctx, batch_files, removals)
    ctx.engine.create_view("silver_events", render("gold/replayed_events", ctx.engine,
                                                   reads_published=reads_published))
    built = Built(removals=removals)
    _merge_per_user_models(ctx, declared, sql, root, built)
    ctx.engine.read_parquet("silver_events", silver.current_files(ctx), silver.silver_schema(ctx), partitioned=True)
    for name in built.merged:  # the whole tables again, for the other models and the tests
        ctx.engine.drop(name)
        ctx.engine.read_parquet(name, storage.parquet_files(root / name), schema=None)
        ctx.engine.drop(f"{name}__merged")
    for model in declared:
        if per_user_model(model) is None:
            build_model(ctx, "gold", model["name"], sql[model["name"]], root)
    published = f"{AFFECTED_USERS}__published"
    ctx.engine.create_view(published, render("incremental/published_affected_users", ctx.engine,
                                             affected_users=AFFECTED_USERS, replay_table=REPLAY_TABLE))
    ctx.engine.write_parquet(published, root / AFFECTED_USERS_DIR)
    ctx.engine.drop(published)
    return built


def _register_new_events(ctx: RunContext, new_runs: list[str], silver_state: dict, removals: bool) -> list[Path]:
    """`silver_batch`: the events new to gold; and the affected users, each with the time from which their rows
    can change (their first new event, or an event that left silver). Returns the new runs' files."""
    engine = ctx.engine
    batch_files = storage.batch_files(ctx.layout.silver, set(new_runs))
    if not removals:
        engine.read_parquet("silver_batch", batch_files, silver.silver_schema(ctx), partitioned=True)
        register_affected_users(engine, "silver")
        return batch_files
    new_batches = sorted({b for run in new_runs for b in silver_state["runs"][run]["bronze_batches"]})
    engine.read_parquet("silver_new_runs", batch_files, silver.silver_schema(ctx), partitioned=True)
    engine.read_parquet("silver_run_changes", storage.batch_files(silver.changes_dir(ctx), set(new_runs)),
                        silver.CHANGES_SCHEMA)
    engine.create_view("silver_batch", render("gold/new_silver_events", engine, new=True, new_batches=new_batches))
    engine.create_view("silver_rewritten", render("gold/new_silver_events", engine, new=False,
                                                  new_batches=new_batches))
    register_affected_users(engine, "silver", removals=True)
    return batch_files


def _replay(ctx: RunContext, declared: list[dict], sql: dict[str, str], new_runs: list[str]) -> bool:
    """Decide which supplied sessions to sessionize again, and from when (replay_sessions.sql); returns whether
    any of them holds published events from then on."""
    engine = ctx.engine
    visits = next(m["name"] for m in declared if "replayed" in m)  # the model built from the replayed visits
    engine.read_parquet("published_sessions", storage.parquet_files(ctx.layout.gold / visits), schema=None)
    engine.materialize(REPLAY_TABLE, sql[REPLAY_TABLE])
    engine.drop("published_sessions")
    _, rows = engine.fetch(render("incremental/replay_counts", engine, replay_table=REPLAY_TABLE))
    replayed, reading_published = rows[0]
    users = engine.row_counts([AFFECTED_USERS])[AFFECTED_USERS]
    log.info("gold: %d user(s) in %d new silver batch(es) to rebuild; %d supplied session(s) to sessionize again, "
             "%d of them with published events", users, len(new_runs), replayed, reading_published)
    return reading_published > 0


def _register_published_events(ctx: RunContext, batch_files: list[Path], removals: bool) -> None:
    """`silver_earlier`: the events published before, for the replayed sessions that hold some."""
    earlier = sorted(set(silver.current_files(ctx)) - set(batch_files))
    if not removals:
        ctx.engine.read_parquet("silver_earlier", earlier, silver.silver_schema(ctx), partitioned=True)
        return
    ctx.engine.read_parquet("silver_earlier_files", earlier, silver.silver_schema(ctx), partitioned=True)
    ctx.engine.create_union_view("silver_earlier", ["silver_earlier_files", "silver_rewritten"])


def _merge_per_user_models(ctx: RunContext, declared: list[dict], sql: dict[str, str], root: Path,
                           built: Built) -> None:
    engine, layout = ctx.engine, ctx.layout
    scratch = storage.staging_path(layout.data_dir, "gold-weeks")
    for model in declared:
        spec = per_user_model(model)
        if spec is None:
            continue
        with ctx.profile.step(spec.name, "gold"):
            engine.materialize(spec.name, sql[spec.name])
            if not model.get("publish", True):  # checked now, while its input is still the cut-down one
                built.results += run_tests(engine, compile_tests(spec.name, model.get("tests", []), engine),
                                           ctx.config.quality.gold_tests)
                continue
            built.merged[spec.name] = merge(engine, spec, layout.gold / spec.name, root / spec.name,
                                                        scratch, built.removals)
        engine.drop(spec.name)
        engine.read_parquet(f"{spec.name}__merged", storage.parquet_files(root / spec.name), schema=None)
        register_affected_rows(engine, spec.name, f"{spec.name}__merged", spec.user_column)
        log.info("gold: %s merged (%s)", spec.name, describe(built.merged[spec.name]))


def gold_deltas(ctx: RunContext, checked: list[dict], merged: dict[str, dict], root: Path) -> dict[str, Delta]:
    """The tables of this build rewritten by week, as changed and kept rows, with their parents as published.

    A parent rewritten by week and unique on the key held every key once, so it can have lost one only from
    the weeks it rewrote: the test compares those weeks as published with the rows it wrote, not the whole
    parent.
    """
    engine, layout = ctx.engine, ctx.layout
    weekly = {m["name"]: merged[m["name"]]["weeks_rewritten"] for m in checked
              if merged.get(m["name"], {}).get("weeks_rewritten") is not None}
    views = {name: register_delta(engine, name, root / name, layout.gold / name) for name in weekly}
    unique = {m["name"]: {t["unique"] for t in m.get("tests", []) if "unique" in t} for m in checked}
    deltas = {}
    for model in checked:
        if model["name"] not in weekly:  # built or merged whole: tested whole
            continue
        published, current = {}, {}
        for test in model.get("tests", []):
            if "relationships" not in test:
                continue
            parent, key = test["relationships"]["to"], test["relationships"]["field"]
            view, files = f"{parent}__published", storage.parquet_files(layout.gold / parent)
            if parent in weekly and key in unique.get(parent, set()):
                folders = {f"{PERIOD}={week}" for week in weekly[parent]}
                files = [f for f in files if f.parent.name in folders]
                current[parent] = views[parent][0]
            if files:
                engine.read_parquet(view, files, schema=None)
            else:
                engine.create_empty_like(view, parent)
            published[parent] = view
        deltas[model["name"]] = Delta(*views[model["name"]], published, current)
    if deltas:
        log.info("gold: tested on the rows this build rewrote and their links to the rest: %s", ", ".join(deltas))
    return deltas


# ---- analytics: a per-user result rebuilt for the users gold changed


def changed_users(ctx: RunContext, name: str, previous: dict | None, gold_build: dict,
                   fingerprint: str) -> str | None:
    """How to rebuild a per-user query: None for from scratch, else what tells of the users to rebuild (the
    `changes` of `register_affected_users`).

    Incremental only when the published result was built by the same SQL from the gold build this one
    follows (or from this very build: then no user changed), and that build recorded whom it changed.
    """
    if ctx.full_refresh or not previous or previous.get("fingerprint") != fingerprint:
        return None
    if not storage.parquet_files(ctx.layout.analytics / name):
        return None
    if previous.get("gold_build_id") == gold_build.get("build_id"):
        return "none"
    affected = storage.parquet_files(ctx.layout.gold / AFFECTED_USERS_DIR)
    if gold_build.get("mode") == "incremental" and previous.get("gold_build_id") == gold_build.get(
            "previous_build_id") and affected:
        ctx.engine.read_parquet(PUBLISHED_AFFECTED_USERS, affected, schema=None)
        if "visits_from" in ctx.engine.columns_of(PUBLISHED_AFFECTED_USERS):
            return "gold"
        ctx.engine.drop(PUBLISHED_AFFECTED_USERS)  # published by a version that did not say it: built again
    return None


class AffectedFact:
    """The users gold changed and their rows of the published fact, registered once for every per-user result of
    an analytics run (`build_per_user`), not scanned out of the whole fact again for each.

    `changes` (see `register_affected_users`) may differ between results: one answered from an earlier gold
    build than another. The rows are registered again when it does.
    """

    ROWS = "fct_events__affected"

    def __init__(self) -> None:
        self.changes: str | None = None

    def register(self, engine: Engine, changes: str) -> None:
        """`affected_users` (from `changes`) and `ROWS`, out of the published fact (`fct_events`, as the analytics
        run registered it), unless they are registered for it already."""
        if changes == self.changes:
            return
        self.close(engine)
        register_affected_users(engine, changes)
        engine.materialize(self.ROWS, render("incremental/affected_rows", engine, source="fct_events",
                                             user_column="user_key"))
        self.changes = changes

    def close(self, engine: Engine) -> None:
        if self.changes is not None:
            engine.drop(self.ROWS)
            engine.drop(AFFECTED_USERS)
        self.changes = None


def build_per_user(ctx: RunContext, spec: PerUserModel, sql: str, changes: str, root: Path,
                   affected: AffectedFact) -> None:
    """Rebuild a per-user query for the users gold changed and merge it into the published result.

    `sql` is the query rendered for an incremental build: it reads `affected_users` and gives each user's rows
    from their first new event on (the ones `merge` replaces). It reads the fact under its usual name: for the
    moment, only the rows of the affected users (`affected`), or of the visits they hold from their first new
    event on for a per-visit result.
    """
    engine, layout = ctx.engine, ctx.layout
    affected.register(engine, changes)
    name = spec.name
    engine.drop(PUBLISHED_AFFECTED_USERS)
    engine.drop("fct_events")
    if spec.per_visit:
        engine.create_view("fct_events", render("incremental/affected_visits", engine, source=AffectedFact.ROWS))
    else:
        engine.create_union_view("fct_events", [AffectedFact.ROWS])
    engine.materialize(name, sql)
    engine.drop("fct_events")
    engine.read_parquet("fct_events", storage.parquet_files(layout.gold / "fct_events"), schema=None)
    scratch = storage.staging_path(layout.data_dir, f"{name}-weeks")
    removals = bool((read_manifest(layout.gold) or {}).get("removals"))
    summary = merge(engine, spec, layout.analytics / name, root / name, scratch, removals)
    engine.drop(name)
    engine.read_parquet(name, storage.parquet_files(root / name), schema=None)
    log.info("analytics: %s merged for the users gold changed (%s)", name, describe(summary))
