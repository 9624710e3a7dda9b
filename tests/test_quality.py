"""The data-test runner and thresholds catch what they declare, and only that."""
from __future__ import annotations

import pytest
from helpers import inline_table

from clickstream.config import Threshold
from clickstream.quality import check_threshold, compile_tests, run_tests

FACT = [("event_id", "string"), ("user_key", "string"), ("day", "integer")]
DIM = [("user_key", "string")]
TESTS = [{"unique": "event_id"}, {"not_null": ["event_id", "user_key"]},
         {"relationships": {"column": "user_key", "to": "dim", "field": "user_key"}},
         {"accepted_values": {"column": "day", "values": [1, 2, 3, 4, 5, 6, 7]}},
         {"equal_row_count": "source"}]


def results(engine, fact_rows, dim_rows, source_rows, severity="fail"):
    inline_table(engine, "fact", FACT, fact_rows)
    inline_table(engine, "dim", DIM, dim_rows)
    inline_table(engine, "source", [("x", "integer")], source_rows)
    outcomes = run_tests(engine, compile_tests("fact", TESTS, engine), severity)
    return {r["test"]: (r["failures"], r["status"]) for r in outcomes}


def test_clean_tables_pass_every_test(duck):
    assert set(results(duck, [("e1", "u1", 1), ("e2", "u2", 7)], [("u1",), ("u2",)], [(1,), (2,)]).values()) == {
        (0, "pass")}


def test_each_violation_is_counted_by_its_test(duck):
    got = results(duck,
                  [("e1", "u1", 1), ("e1", "u9", 8), (None, None, 3), ("e3", "u1", 0)],
                  [("u1",)], [(1,)])
    assert got == {
        "fact.not_null(event_id)": (1, "fail"),
        "fact.not_null(user_key)": (1, "fail"),
        "fact.accepted_values(day)": (2, "fail"),
        "fact.equal_row_count(source)": (3, "fail"),
        "fact.unique(event_id)": (1, "fail"),
        "fact.relationships(user_key -> dim.user_key)": (1, "fail"),
    }


def test_a_parent_key_listed_twice_does_not_multiply_the_models_rows(duck):
    # relationships share the scan of the model's other checks: a repeated parent key must not add rows
    got = results(duck, [("e1", "u1", 1), ("e2", None, 2)], [("u1",), ("u1",)], [(1,), (2,)])
    assert got["fact.equal_row_count(source)"] == (0, "pass")
    assert got["fact.not_null(user_key)"] == (1, "fail")
    assert got["fact.relationships(user_key -> dim.user_key)"] == (0, "pass")


def test_unique_counts_the_copies_beyond_the_first_and_ignores_nulls(duck):
    got = results(duck, [("e1", "u1", 1)] * 3 + [(None, "u1", 1)] * 2, [("u1",)], [(1,)] * 5)
    assert got["fact.unique(event_id)"] == (2, "fail")
    assert got["fact.not_null(event_id)"] == (2, "fail")


def test_warn_severity_reports_without_failing(duck):
    got = results(duck, [("e1", "u1", 1), ("e1", "u1", 1)], [("u1",)], [(1,), (2,)], severity="warn")
    assert got["fact.unique(event_id)"] == (1, "warn")


def test_an_unknown_test_kind_is_named(duck):
    with pytest.raises(ValueError, match="model fact: unknown test kind 'uniq'"):
        compile_tests("fact", [{"uniq": "event_id"}], duck)


@pytest.mark.parametrize(
    ("count", "total", "status"),
    [(0, 0, "ok"), (1, 100, "ok"), (2, 100, "warn"), (5, 100, "warn"), (6, 100, "fail")],
)
def test_thresholds_warn_then_fail_above_their_levels(count, total, status):
    assert check_threshold("rate", count, total, Threshold(warn=0.01, fail=0.05))["status"] == status
