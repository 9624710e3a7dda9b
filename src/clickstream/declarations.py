"""The declaration files beside the SQL models, validated like the config: a misspelled key is an error naming it.

`sql/gold/models.yml` declares the gold models (build order, how an incremental build rebuilds them, their data
tests); `sql/analytics/queries.yml` the analytics queries (order, group, natural order, how an incremental build
rebuilds them). The files ship with the package, so an error here is a bug in the project, found when the file is
first read (and by the test suite), never a `None` three calls later.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from clickstream.sql import DeclarationError, load_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Relationship(_Strict):
    column: str
    to: str
    field: str


class AcceptedValues(_Strict):
    column: str
    values: list[Any]


class DataTest(_Strict):
    """One test: exactly one of the kinds, with its argument."""

    unique: str | None = None
    not_null: list[str] | None = None
    relationships: Relationship | None = None
    accepted_values: AcceptedValues | None = None
    equal_row_count: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "DataTest":
        kinds = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a test is exactly one kind of unique, not_null, relationships, accepted_values, "
                             f"equal_row_count; got {kinds or 'none'}")
        return self


class Replayed(_Strict):
    session: str
    start: str


class _PerUser(_Strict):
    """The keys of a model or query that an incremental build rebuilds per user (see incremental.py)."""

    # the keys saying which of a user's rows a batch can change; a table stored by week needs one of them
    _change_keys: ClassVar[tuple[str, ...]] = ("changes_from",)

    name: str
    user_column: str | None = None  # the column naming the user a row belongs to: the model is rebuilt per user
    partition_by_week: str | None = None
    changes_from: str | None = None

    @model_validator(mode="after")
    def _stored_by_week(self) -> "_PerUser":
        given = [key for key in self._change_keys if getattr(self, key) is not None]
        if self.partition_by_week and not given:
            raise ValueError(f"partition_by_week needs {' or '.join(self._change_keys)} (see incremental.py)")
        if given and not self.user_column:
            raise ValueError(f"{' and '.join(given)} {'needs' if len(given) == 1 else 'need'} user_column")
        return self


class GoldModel(_PerUser):
    _change_keys: ClassVar[tuple[str, ...]] = ("changes_from", "replayed")

    publish: bool = True
    replayed: Replayed | None = None
    tests: list[DataTest] = []


class GoldModels(_Strict):
    models: list[GoldModel]


class AnalyticsQuery(_PerUser):
    title: str
    csv: bool = True  # also a CSV beside the Parquet
    group: Literal["basic", "advanced"]
    order_by: list[str]  # the table's natural order: columns or expressions
    # answered only when this key of config's gold section names something (product attributes)
    needs: Literal["product_attributes"] | None = None
    # the per-user state query this one counts: declared above it, in its group (a group is answered alone)
    counts: str | None = None
    # its rows depend only on the events of their own visit: an incremental build reads only the visits it changes
    per_visit: bool | None = None

    @model_validator(mode="after")
    def _per_visit_from_a_time(self) -> "AnalyticsQuery":
        if self.per_visit and self.changes_from is None:
            raise ValueError("per_visit needs changes_from: only the rows from each user's first new event on are "
                             "rebuilt from the visits read (see incremental.py)")
        return self


class AnalyticsQueries(_Strict):
    queries: list[AnalyticsQuery]

    @model_validator(mode="after")
    def _state_above_in_group(self) -> "AnalyticsQueries":
        groups: dict[str, str] = {}  # the queries declared so far, and their groups
        for query in self.queries:
            if query.counts is not None and groups.get(query.counts) != query.group:
                where = (f"in group {groups[query.counts]}" if query.counts in groups else "not declared above it")
                raise ValueError(f"query {query.name} counts {query.counts}, which is {where}: the state a query "
                                 f"counts must be declared above it, in its group ({query.group})")
            groups[query.name] = query.group
        return self


def _describe(error: ValidationError, path: str) -> str:
    parts = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        parts.append(f"unknown key '{key}'" if item["type"] == "extra_forbidden" else f"key '{key}': {item['msg']}")
    return f"invalid declarations in {path}: " + "; ".join(parts)


def validate(kind: type[_Strict], relative_path: str, raw: Any) -> _Strict:
    try:
        return kind.model_validate(raw)
    except ValidationError as exc:
        raise DeclarationError(_describe(exc, f"sql/{relative_path}")) from exc


@lru_cache(maxsize=None)
def _gold() -> GoldModels:
    return validate(GoldModels, "gold/models.yml", load_yaml("gold/models.yml"))  # type: ignore[return-value]


def gold_models() -> list[dict]:
    """The declared gold models in build order, validated, as plain dicts (no key left unset but `tests`)."""
    return [model.model_dump(exclude_none=True, exclude_defaults=False) | {
        "tests": [test.model_dump(exclude_none=True) for test in model.tests]} for model in _gold().models]


@lru_cache(maxsize=None)
def _analytics() -> AnalyticsQueries:
    return validate(AnalyticsQueries, "analytics/queries.yml",  # type: ignore[return-value]
                    load_yaml("analytics/queries.yml"))


def analytics_queries() -> list[dict]:
    """The declared analytics queries in their order, validated, as plain dicts (no key left unset but `csv`)."""
    return [query.model_dump(exclude_none=True) for query in _analytics().queries]
