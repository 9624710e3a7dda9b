"""The data-test runner and thresholds catch what they declare, and only that."""
from __future__ import annotations

import pytest
from helpers import inline_table

from clickstream.config import Threshold
from clickstream.quality import Delta, check_threshold, compile_tests, run_tests

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


def delta_and_whole(engine, kept, changed, old_dim, new_dim, source_rows):
    """The failure counts of the tests on changed rows (with their links to the kept ones) and on the whole."""
    inline_table(engine, "fact__kept", FACT, kept)
    inline_table(engine, "fact__changed", FACT, changed)
    engine.create_view("fact", "select * from fact__kept union all select * from fact__changed")
    inline_table(engine, "dim__published", DIM, old_dim)
    inline_table(engine, "dim", DIM, new_dim)
    inline_table(engine, "source", [("x", "integer")], source_rows)
    delta = Delta("fact__changed", "fact__kept", {"dim": "dim__published"})
    return [{r["test"]: r["failures"] for r in run_tests(engine, compile_tests("fact", TESTS, engine, d), "warn")}
            for d in (delta, None)]


# Kept rows always pass against the published parent: they are what a build whose tests passed published.
KEPT = [("e1", "u1", 1), ("e2", "u2", 2), ("e3", "u3", 3)]
OLD_DIM = [("u1",), ("u2",), ("u3",)]


@pytest.mark.parametrize(("changed", "new_dim", "failing"), [
    pytest.param([("e4", "u1", 4)], OLD_DIM, {}, id="clean"),
    pytest.param([("e2", "u1", 4), ("e5", "u1", 5), ("e5", "u2", 5)], OLD_DIM, {"fact.unique(event_id)": 2},
                 id="repeats-of-kept-and-changed-rows"),
    pytest.param([("e4", "u1", 4)], [("u1",), ("u3",)], {"fact.relationships(user_key -> dim.user_key)": 1},
                 id="kept-row-whose-parent-is-gone"),
    pytest.param([(None, None, 9), ("e4", "u9", 0)], OLD_DIM + [("u4",)],
                 {"fact.not_null(event_id)": 1, "fact.not_null(user_key)": 1, "fact.accepted_values(day)": 2,
                  "fact.relationships(user_key -> dim.user_key)": 1}, id="bad-changed-rows"),
    pytest.param([], [("u2",)], {"fact.relationships(user_key -> dim.user_key)": 2}, id="nothing-changed"),
])
def test_tests_on_changed_rows_count_what_the_whole_table_would(duck, changed, new_dim, failing):
    source = [(i,) for i in range(len(KEPT) + len(changed))]
    on_changed, on_whole = delta_and_whole(duck, KEPT, changed, OLD_DIM, new_dim, source)
    assert on_changed == on_whole
    assert {test: count for test, count in on_whole.items() if count} == failing


def test_tests_on_changed_rows_count_the_whole_table_for_an_equal_row_count(duck):
    on_changed, on_whole = delta_and_whole(duck, KEPT, [("e4", "u1", 4)], OLD_DIM, OLD_DIM, [(1,)])
    assert on_changed["fact.equal_row_count(source)"] == on_whole["fact.equal_row_count(source)"] == 3


@pytest.mark.parametrize(
    ("count", "total", "status"),
    [(0, 0, "ok"), (1, 100, "ok"), (2, 100, "warn"), (5, 100, "warn"), (6, 100, "fail")],
)
def test_thresholds_warn_then_fail_above_their_levels(count, total, status):
    assert check_threshold("rate", count, total, Threshold(warn=0.01, fail=0.05))["status"] == status


@pytest.mark.parametrize(("rewritten_before", "rewritten_now", "lost"), [
    pytest.param([("u2",)], [("u2",)], 0, id="the-key-stays"),
    pytest.param([("u2",)], [("u4",)], 1, id="the-key-goes"),
])
def test_a_parent_rewritten_by_week_is_compared_on_its_rewritten_weeks(duck, rewritten_before, rewritten_now, lost):
    # dim is rewritten by week too: ("u1", "u3") in the weeks kept, `rewritten_*` in the week written again
    inline_table(duck, "dim__kept", DIM, [("u1",), ("u3",)])
    inline_table(duck, "dim__changed", DIM, rewritten_now)
    inline_table(duck, "dim__rewritten_before", DIM, rewritten_before)
    duck.create_view("dim", "select * from dim__kept union all select * from dim__changed")
    inline_table(duck, "fact__kept", FACT, KEPT)
    inline_table(duck, "fact__changed", FACT, [("e4", "u1", 4)])
    duck.create_view("fact", "select * from fact__kept union all select * from fact__changed")
    inline_table(duck, "source", [("x", "integer")], [(i,) for i in range(4)])
    delta = Delta("fact__changed", "fact__kept", {"dim": "dim__rewritten_before"}, {"dim": "dim__changed"})
    got = [{r["test"]: r["failures"] for r in run_tests(duck, compile_tests("fact", TESTS, duck, d), "warn")}
           for d in (delta, None)]
    assert got[0] == got[1]
    assert got[0]["fact.relationships(user_key -> dim.user_key)"] == lost
