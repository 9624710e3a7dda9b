"""The column tables of docs/DATA_DICTIONARY.md, generated from the code so they cannot drift.

Each table follows a marker line `<!-- columns: LAYER.TABLE -->`. Its `column` and `type` cells come from the
code: bronze, silver, quarantine and duplicates from the schemas declared in `schema.py`; every gold model and
analytics query from running it on empty inputs (DuckDB, the declared silver schema as its input, the default
config) and reading back its result's columns and types. The `meaning` cells are the doc's own, kept by column
name; a column new in the code gets an empty meaning marked `(to describe)`, which the docs test refuses.

`python -m clickstream.report.dictionary docs/DATA_DICTIONARY.md` (`make docs`) rewrites the tables in place;
`--check` exits 1 when the file is not what it would write.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from clickstream.config import Config
from clickstream.schema import (BRONZE, CHURN_MODEL, CHURN_SCORES, CLUSTER_PROFILES, DUPLICATES, QUARANTINE, SILVER,
                                USER_CLUSTERS, Schema)
from clickstream.sql import load_yaml, render

MARKER = re.compile(r"^<!-- columns: (\w+)\.(\w+) -->$")
TO_DESCRIBE = "(to describe)"
_DECLARED: dict[str, Schema] = {"bronze.bronze": BRONZE, "silver.silver": SILVER, "silver.quarantine": QUARANTINE,
                                 # the duplicates table is silver's columns plus these
                                 "silver.duplicates": [c for c in DUPLICATES if c not in SILVER],
                                 # fitted in Python (churn.py, clusters.py), not a SQL model
                                 "analytics.churn_scores": CHURN_SCORES, "analytics.churn_model": CHURN_MODEL,
                                 "analytics.user_clusters": USER_CLUSTERS,
                                 "analytics.cluster_profiles": CLUSTER_PROFILES}
# DuckDB's type names as the doc writes them (the names both engines read back from Parquet)
_TYPES = {"VARCHAR": "string", "INTEGER": "integer", "BIGINT": "bigint", "DOUBLE": "double", "BOOLEAN": "boolean",
          "DATE": "date", "TIMESTAMP": "timestamp", "DECIMAL(18,2)": "decimal(18,2)"}


def _type_name(duckdb_type: str) -> str:
    if duckdb_type not in _TYPES:
        raise ValueError(f"no doc name for the type {duckdb_type}: add it to dictionary._TYPES")
    return _TYPES[duckdb_type]


def model_columns() -> dict[str, Schema]:
    """Every gold model and analytics query's columns and types, from running it on empty inputs."""
    from clickstream import predictive
    from clickstream.analytics import model_context, queries
    from clickstream.engines import create_engine

    with tempfile.TemporaryDirectory() as scratch:
        config = Config().with_overrides(data_dir=Path(scratch))
        engine = create_engine(config)
        try:
            context = model_context(config)
            engine.create_view("silver_events", engine.empty_select(SILVER))
            engine.create_view("feature_cutoffs", engine.empty_select(predictive.CUTOFFS))
            context = predictive.feature_context(context, 1)
            found: dict[str, Schema] = {}
            steps = [("gold", m["name"]) for m in load_yaml("gold/models.yml")["models"]]
            steps += [("analytics", q["name"]) for q in queries("all")] + [("predictive", "user_features")]
            for layer, name in steps:
                engine.create_view(name, render(f"{layer}/{name}", engine, **context))
                found[f"{layer}.{name}"] = [(column, _type_name(kind)) for column, kind in engine.describe(name)]
            return found
        finally:
            engine.close()


def columns() -> dict[str, Schema]:
    return {**_DECLARED, **model_columns()}


def _meanings(lines: list[str]) -> dict[str, str]:
    meanings = {}
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            meanings[cells[0].strip("`")] = "|".join(cells[2:]).strip()  # a meaning may hold an escaped |
    return meanings


def regenerate(text: str, declared: dict[str, Schema] | None = None) -> str:
    """The doc with every marked table written from the code, meanings kept."""
    declared = columns() if declared is None else declared
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    seen = set()
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        match = MARKER.match(line)
        if not match:
            continue
        key = f"{match.group(1)}.{match.group(2)}"
        if key not in declared:
            raise ValueError(f"the doc marks a table {key} that the code does not declare")
        seen.add(key)
        table = []
        while i < len(lines) and lines[i].startswith("|"):
            table.append(lines[i])
            i += 1
        meanings = _meanings(table)
        out += ["| column | type | meaning |", "| --- | --- | --- |"]
        out += [f"| `{name}` | {kind} | {meanings.get(name) or TO_DESCRIBE} |" for name, kind in declared[key]]
    missing = sorted(set(declared) - seen)
    if missing:
        raise ValueError(f"the doc has no column table for {', '.join(missing)}: add a `<!-- columns: ... -->` "
                         "marker and a table")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="regenerate the column tables of the data dictionary")
    parser.add_argument("path", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale, writing nothing")
    args = parser.parse_args(argv)
    text = args.path.read_text(encoding="utf-8")
    fresh = regenerate(text)
    if args.check:
        if fresh != text:
            print(f"{args.path} is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    if fresh != text:
        args.path.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
