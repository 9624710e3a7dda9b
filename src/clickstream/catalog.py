"""Every table of the data directory, declared once: its name, layer, folder and partitioning, and its schema where
the code declares it (bronze's and silver's; a gold model's or an analytics query's is what its SQL selects).

    bronze/                      bronze        partitioned by ingestion_date
    silver/ quarantine/ duplicates/   silver   partitioned by ingestion_date, files named by the silver run
    gold/<model>/                gold          a fact or dimension (sql/gold/models.yml); some by week
    analytics/<query>/           analytics     a result (sql/analytics/queries.yml, the predictive outputs)

Modules find a table's folder here (or through `Layout`, which reads it from here), never by a path of their own.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clickstream import declarations
from clickstream.schema import BRONZE, DUPLICATES, PARTITION_COLUMN, QUARANTINE, SILVER, Schema, with_attributes

WEEK = "week"  # a table written one folder per week of a timestamp (partition_by_week in its declaration)


@dataclass(frozen=True)
class Table:
    name: str
    layer: str  # bronze, silver, gold or analytics
    folder: str  # under the data directory
    schema: Schema | None = None  # declared in code (bronze, silver); None: what its model selects
    partition_by: tuple[str, ...] = ()

    def path(self, data_dir: Path) -> Path:
        return data_dir / self.folder


BRONZE_TABLE = Table("bronze", "bronze", "bronze", BRONZE, (PARTITION_COLUMN,))
SILVER_TABLES = (Table("silver", "silver", "silver", SILVER, (PARTITION_COLUMN,)),
                 Table("quarantine", "silver", "quarantine", QUARANTINE, (PARTITION_COLUMN,)),
                 Table("duplicates", "silver", "duplicates", DUPLICATES, (PARTITION_COLUMN,)))
LAYER_FOLDERS = {"bronze": "bronze", "silver": "silver", "gold": "gold", "analytics": "analytics"}
STATE_FOLDER = "_state"  # the pipeline's own records: manifests, silver's state, the writer lock
SILVER_STATE = "silver_state.json"  # under STATE_FOLDER: the silver runs whose files are committed


def silver_tables(attribute_names: list[str]) -> tuple[Table, ...]:
    """Silver's three tables, their schemas with one text column per attribute the sources keep (quarantine keeps
    bronze's text, not the attributes)."""
    return tuple(Table(t.name, t.layer, t.folder, t.schema if t.name == "quarantine"
                       else with_attributes(t.schema or [], attribute_names), t.partition_by) for t in SILVER_TABLES)


def gold_tables() -> list[Table]:
    """The published gold models, in their declared order."""
    return [Table(m["name"], "gold", f"{LAYER_FOLDERS['gold']}/{m['name']}", None,
                  (WEEK,) if m.get("partition_by_week") else ()) for m in declarations.gold_models()
            if m.get("publish", True)]


def analytics_tables() -> list[Table]:
    """The declared analytics results, in their declared order (the predictive outputs are analytics tables too)."""
    return [Table(q["name"], "analytics", f"{LAYER_FOLDERS['analytics']}/{q['name']}", None,
                  (WEEK,) if q.get("partition_by_week") else ()) for q in declarations.analytics_queries()]


def _tables() -> Iterator[Table]:
    """Bronze's and silver's tables, then gold's (their declarations read only when the search gets there)."""
    yield BRONZE_TABLE
    yield from SILVER_TABLES
    yield from gold_tables()


def table(name: str) -> Table:
    """A bronze, silver or gold table by name (`Layout` asks for silver's often: gold's are not built for it)."""
    for found in _tables():
        if found.name == name:
            return found
    raise KeyError(f"no table {name!r} in the catalog")
