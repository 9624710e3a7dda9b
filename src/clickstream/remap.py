"""Reading bronze as the current `columns` mapping would have written it.

Bronze keeps every field of a raw file: the mapped ones under their canonical names, every other one in `extra`
(bronze.py). Each batch records the mapping it was written with (`columns`, per source) and, for CSV files, the
header it read. When a source's mapping has changed since, silver reads that batch's rows through a remap: a
canonical column is taken from the canonical column that held the same file column (by name, or by position in a
headerless file), else from `extra` by that name or dotted path; a file column the old mapping took and the new one
leaves unmapped joins `extra`, so attributes and identity columns can name it. Nothing is read from the raw files,
which may be gone.

A file column the new mapping names and a CSV file's header lacks refuses the rebuild before anything is written,
as a raw file missing a mapped column is refused at ingestion. In JSON lines a missing path is NULL, as it is at
ingestion. Batches written before mappings were recorded are read as they were written.
"""
from __future__ import annotations

from clickstream.config import Source
from clickstream.engines.base import InputError
from clickstream.schema import CANONICAL_RAW_COLUMNS


def columns_of(source: Source) -> dict[str, str]:
    """A source's mapping as recorded: canonical column -> file column (a position as its text), mapped ones only."""
    return {canonical: str(column) for canonical, column in source.columns.items() if column is not None}


def plan(manifest: dict, batches: list[str], sources: list[Source]) -> list[dict]:
    """The remaps silver reads the given bronze batches through: one per (source, recorded mapping) that differs
    from the source's current one, each with its batches, the origin of every canonical column
    (`('column', name)`, `('extra', key)` or `('null', None)`) and the old-mapped columns that join `extra`."""
    current = {source.name: columns_of(source) for source in sources}
    groups: dict[tuple[str, tuple], dict] = {}
    for batch in batches:
        record = manifest["batches"][batch]
        for source_name, recorded in (record.get("columns") or {}).items():
            mapping = current.get(source_name)
            if mapping is None or recorded == mapping:
                continue
            _check_headers(record, batch, source_name, mapping)
            key = (source_name, tuple(sorted(recorded.items())))
            group = groups.setdefault(key, {"source_name": source_name, "batch_ids": [],
                                            "columns": _origins(recorded, mapping),
                                            "extra": _joining_extra(recorded, mapping)})
            group["batch_ids"].append(batch)
    return list(groups.values())


def _origins(recorded: dict[str, str], mapping: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    """Where each canonical column's value is under the current mapping, in rows written under `recorded`."""
    holder = {}
    for canonical, column in recorded.items():
        holder.setdefault(column, canonical)
    origins = {}
    for canonical in CANONICAL_RAW_COLUMNS:
        column = mapping.get(canonical)
        if column is None:
            origins[canonical] = ("null", None)
        elif column in holder:
            origins[canonical] = ("column", holder[column])
        else:
            origins[canonical] = ("extra", column)
    return origins


def _joining_extra(recorded: dict[str, str], mapping: dict[str, str]) -> list[tuple[str, str]]:
    """(file column, canonical column holding it) for the columns the old mapping took and the new one does not."""
    now_mapped = set(mapping.values())
    joining = {}
    for canonical, column in recorded.items():
        if column not in now_mapped:
            joining.setdefault(column, canonical)
    return sorted(joining.items())


def _check_headers(record: dict, batch: str, source_name: str, mapping: dict[str, str]) -> None:
    for path, header in (record.get("headers") or {}).get(source_name, {}).items():
        missing = [f"{canonical}: {column}" for canonical, column in mapping.items() if column not in header]
        if missing:
            raise InputError(
                f"silver: source '{source_name}' now maps {', '.join(missing)}, which bronze's copy of {path} "
                f"(batch {batch}) does not have; its columns are {header}. Fix sources[].columns; nothing was "
                f"written")
