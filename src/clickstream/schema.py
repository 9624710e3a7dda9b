"""Table schemas, declared once and used by every engine. Types are SQL names both engines accept."""
from __future__ import annotations

# The raw columns every source is mapped onto, in file order of the reference feed, then the optional id a feed
# gives each event (EventID: most feeds have none, so it is not mapped by default).
CANONICAL_RAW_COLUMNS = ["UserID", "SessionID", "Timestamp", "EventType", "ProductID", "Amount", "Outcome", "EventID"]
# The columns of an event a bronze file's profile counts NULLs of (the supplied id, absent from most feeds, is not
# one of them).
PROFILED_RAW_COLUMNS = [c for c in CANONICAL_RAW_COLUMNS if c != "EventID"]
# Without these a row cannot become an event at all; a source must map them.
REQUIRED_RAW_COLUMNS = ["UserID", "Timestamp", "EventType"]

# Event types every feed is mapped onto besides those the silver rules name (silver.product_event_types,
# silver.purchase_event_types); a mapping target outside these and silver.extra_event_types is a config error.
BASE_EVENT_TYPES = ["page_view", "click", "login", "logout"]

MONEY = "decimal(18,2)"

Schema = list[tuple[str, str]]

# Where a row came from, for the rows bronze could not split into fields: the line number of its first line
# (the header is line 1), its raw text, and why it is malformed (csv_lines.py). NULL for every other row.
MALFORMED_LINE: Schema = [("source_line", "bigint"), ("raw_line", "string")]

# Bronze keeps every raw value as text, so nothing is lost at the door: the mapped columns under their canonical
# names, and every other field of the record in `extra`, a JSON object of the file's key (a CSV header name, a
# headerless field's position as "5", a JSON-lines leaf's dotted path) to its text as written (NULL: none).
EXTRA = "extra"
BRONZE: Schema = [(c, "string") for c in CANONICAL_RAW_COLUMNS] + [(EXTRA, "string")] + MALFORMED_LINE + [
    ("parse_error", "string"),
    ("source_name", "string"),
    ("source_file", "string"),
    ("batch_id", "string"),
    ("ingestion_timestamp", "timestamp"),
    ("ingestion_date", "date"),
]

SILVER: Schema = [
    ("event_id", "string"),
    ("user_id", "string"),
    ("session_id", "string"),
    ("event_ts", "timestamp"),
    ("event_type", "string"),
    ("product_id", "string"),
    ("amount", MONEY),
    ("outcome", "string"),
    ("source_name", "string"),
    ("source_file", "string"),
    ("batch_id", "string"),
    ("ingestion_timestamp", "timestamp"),
    ("ingestion_date", "date"),
]

QUARANTINE: Schema = [(c, "string") for c in CANONICAL_RAW_COLUMNS] + [
    ("rejection_reasons", "string"),
    *MALFORMED_LINE,
    ("source_name", "string"),
    ("source_file", "string"),
    ("batch_id", "string"),
    ("ingestion_timestamp", "timestamp"),
    ("ingestion_date", "date"),
]

# The copies silver did not keep: an event seen twice in one run (`duplicate`), or an event silver already held,
# delivered again by another file (`redelivered`). Kept so every row stays accounted for, and so a copy can take
# the place of the one silver kept when that one's file is replaced.
DUPLICATES: Schema = SILVER + [("duplicate_kind", "string")]

PARTITION_COLUMN = "ingestion_date"


def with_attributes(schema: Schema, attribute_names: list[str]) -> Schema:
    """A silver table's schema with the attributes config keeps (`sources[].attributes`): one text column each,
    after silver's own columns (and before `duplicate_kind`)."""
    attributes = [(name, "string") for name in attribute_names]
    if schema and schema[-1][0] == "duplicate_kind":
        return schema[:-1] + attributes + schema[-1:]
    return schema + attributes


# Columns added to a table after data was first written: a Parquet file written before holds none of them, and
# reads them as NULL.
ADDED_LATER = frozenset({EXTRA, "EventID"})

