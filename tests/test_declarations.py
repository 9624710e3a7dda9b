"""The declaration files beside the models (`sql/gold/models.yml`, `sql/analytics/queries.yml`): a wrong key is an
error naming the file and the key; the shipped files read as written."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clickstream import analytics, declarations
from clickstream.declarations import AnalyticsQueries, DeclarationError, GoldModels, validate
from clickstream.sql import load_yaml, parse_declarations


@pytest.mark.parametrize(("text", "message"), [
    ("models:\n  - {name: fct, publsh: false}\n", "unknown key 'models.0.publsh'"),
    ("models:\n  - {name: fct, tests: [{uniqe: id}]}\n", "unknown key 'models.0.tests.0.uniqe'"),
    ("models:\n  - {name: fct, tests: [{unique: id, not_null: [id]}]}\n", "a test is exactly one kind"),
    ("models:\n  - {name: fct, user_column: u, partition_by_week: ts}\n",
     "partition_by_week needs changes_from or replayed"),
    ("models:\n  - {name: fct, changes_from: ts}\n", "changes_from needs user_column"),
    # a gold build reads what it rebuilds from silver, not from visits
    ("models:\n  - {name: fct, user_column: u, changes_from: ts, per_visit: true}\n",
     "unknown key 'models.0.per_visit'"),
    ("models:\n  - {name: fct, tests: [{relationships: {column: a, to: b}}]}\n",
     "key 'models.0.tests.0.relationships.field': Field required"),
])
def test_a_gold_declaration_with_a_wrong_key_is_an_error_naming_the_file_and_key(text, message):
    with pytest.raises(DeclarationError) as error:
        validate(GoldModels, "gold/models.yml", yaml.safe_load(text))
    assert str(error.value).startswith("invalid declarations in sql/gold/models.yml: ")
    assert message in str(error.value)


QUERY = "{name: q, title: Q, group: basic, order_by: [a]"


@pytest.mark.parametrize(("text", "message"), [
    (f"queries:\n  - {QUERY}, order: [a]}}\n", "unknown key 'queries.0.order'"),
    (f"queries:\n  - {QUERY}, cvs: false}}\n", "unknown key 'queries.0.cvs'"),
    ("queries:\n  - {name: q, title: Q, order_by: [a]}\n", "key 'queries.0.group': Field required"),
    (f"queries:\n  - {QUERY}, group: daily}}\n", "key 'queries.0.group': Input should be 'basic' or 'advanced'"),
    (f"queries:\n  - {QUERY}, user_column: u, partition_by_week: ts}}\n", "partition_by_week needs changes_from ("),
    (f"queries:\n  - {QUERY}, changes_from: ts}}\n", "changes_from needs user_column"),
    (f"queries:\n  - {QUERY}, user_column: u, per_visit: true}}\n", "per_visit needs changes_from: only the rows"),
    # the visits gold sessionizes again exist only in a gold build
    (f"queries:\n  - {QUERY}, user_column: u, replayed: {{session: s, start: t}}}}\n",
     "unknown key 'queries.0.replayed'"),
    ("querys:\n  - {name: q}\n", "unknown key 'querys'"),
    # the state a query counts: above it and in its group, which is answered alone
    (f"queries:\n  - {QUERY}, counts: s}}\n  - {{name: s, title: S, group: basic, order_by: [a]}}\n",
     "query q counts s, which is not declared above it: the state a query counts must be declared above it, in "
     "its group (basic)"),
    (f"queries:\n  - {{name: s, title: S, group: advanced, order_by: [a]}}\n  - {QUERY}, counts: s}}\n",
     "query q counts s, which is in group advanced: the state a query counts must be declared above it"),
])
def test_a_query_declaration_with_a_wrong_key_is_an_error_naming_the_file_and_key(text, message):
    with pytest.raises(DeclarationError) as error:
        validate(AnalyticsQueries, "analytics/queries.yml", yaml.safe_load(text))
    assert str(error.value).startswith("invalid declarations in sql/analytics/queries.yml: ")
    assert message in str(error.value)


@pytest.fixture
def fresh_declarations():
    """The declarations read again from the file, before and after the test (they are read once per process)."""
    declarations._analytics.cache_clear()
    yield
    declarations._analytics.cache_clear()


def test_a_misspelled_key_in_the_queries_file_stops_the_first_read_naming_it(tmp_path: Path, monkeypatch,
                                                                             fresh_declarations):
    shipped = (Path(declarations.__file__).parent / "sql" / "analytics" / "queries.yml").read_text(encoding="utf-8")
    written = tmp_path / "queries.yml"
    written.write_text(shipped.replace("    csv: false\n", "    cvs: false\n", 1), encoding="utf-8")
    monkeypatch.setattr(declarations, "load_yaml", lambda relative_path: yaml.safe_load(written.read_text()))
    index = next(i for i, q in enumerate(load_yaml("analytics/queries.yml")["queries"]) if q.get("csv") is False)
    with pytest.raises(DeclarationError) as error:
        analytics.queries()
    assert str(error.value) == f"invalid declarations in sql/analytics/queries.yml: unknown key 'queries.{index}.cvs'"


def test_the_shipped_declarations_are_valid_and_read_as_declared():
    assert declarations.gold_models() == [{"publish": True, **m, "tests": m.get("tests", [])}
                                          for m in load_yaml("gold/models.yml")["models"]]
    assert declarations.analytics_queries() == [{"csv": True, **q}
                                                for q in load_yaml("analytics/queries.yml")["queries"]]
    names = {group: [q["name"] for q in analytics.queries(group)] for group in ("basic", "advanced", "all")}
    assert sorted(names["basic"] + names["advanced"]) == sorted(names["all"])  # each query in one group


@pytest.mark.parametrize(("path", "text", "message"), [
    ("gold/models.yml", "models:\n  - name: fct\n    publish: false\n    publish: true\n",
     "key 'publish' is given twice, on line 3 and line 4"),
    ("analytics/queries.yml", "queries:\n  - {name: q, title: Q, group: basic, csv: true, csv: false}\n",
     "key 'csv' is given twice, on line 2 and line 2"),
    ("gold/models.yml", "models:\n  - name: fct\nmodels:\n  - name: dim\n", "key 'models' is given twice, on line 1 "
     "and line 3"),
])
def test_a_key_given_twice_in_a_declaration_file_is_refused_naming_it(path, text, message):
    with pytest.raises(DeclarationError) as error:
        parse_declarations(text, path)
    assert str(error.value) == f"invalid declarations in sql/{path}: {message} (YAML would keep the last silently): " \
                               "keep one"


@pytest.mark.parametrize("path", ["gold/models.yml", "analytics/queries.yml"])
def test_the_shipped_declaration_files_give_no_key_twice(path):
    assert load_yaml(path) == yaml.safe_load((Path(__file__).resolve().parents[1] / "src/clickstream/sql" / path)
                                             .read_text(encoding="utf-8"))
