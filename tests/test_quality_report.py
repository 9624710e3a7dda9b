"""The quality report's merge: each layer's section as the layer is now, from the run that last changed it."""
from __future__ import annotations

import pytest

from clickstream.quality import merge_current

LEDGER = [{"source_file": "a.csv", "bronze_rows": 10, "silver_rows": 8, "quarantine_rows": 1, "duplicate_rows": 1,
           "redelivered_rows": 0, "pending_rows": 0, "stale_rows": 0, "balanced": True}]
TOTALS = {"bronze_rows": 10, "silver_rows": 8, "quarantine_rows": 1, "duplicate_rows": 1, "redelivered_rows": 0,
          "pending_rows": 0, "stale_rows": 0}
CHECKS = [{"name": "quarantine_rate", "status": "ok"}]
FILE_A = {"path": "a.csv", "rows": 10, "sha256": "1"}
NOT_REGULAR = {"pipe.csv": "a named pipe (FIFO), not a regular file: never read"}


def first_run() -> dict:
    return {"run_id": "r1", "started_at": "2024-01-01T00:00:00",
            "bronze": {"batch_id": "r1", "rows": 10, "files": [FILE_A], "refused": [{"path": "x.bin", "reason":
                       "binary", "this_run": True}], "unmatched": ["notes.txt"], "not_regular": NOT_REGULAR,
                       "copies": {}, "ignored_changes": []},
            "silver": {"bronze_batches": ["r1"], "ledger": LEDGER, "totals": TOTALS, "checks": CHECKS,
                       "rejection_reasons": {"overall": {"missing_user_id": 1},
                                             "per_file": {"a.csv": {"missing_user_id": 1}}},
                       "local_time_adjustments": [], "retraction": None},
            "gold": {"mode": "full", "reason": "no gold build yet", "tests": [{"test": "t", "status": "pass"}],
                     "row_counts": {"fct_events": 8}},
            "analytics": {"row_counts": {"top_products": 3}, "modes": {"top_products": "full"}, "flags": [FLAG]}}


FLAG = {"flag": "single_segment", "tables": ["user_segments"], "status": "warn", "message": "every user (3) ..."}
FIRST = {
    "bronze": {"files": [FILE_A], "rows": 10, "batches": ["r1"], "refused": [{"path": "x.bin", "reason": "binary"}],
               "unmatched": ["notes.txt"], "not_regular": NOT_REGULAR, "copies": {}, "ignored_changes": []},
    "silver": {"runs": ["r1"], "ledger": LEDGER, "totals": TOTALS, "checks": CHECKS, "checked_by": "r1",
               "rejection_reasons": {"overall": {"missing_user_id": 1}, "per_file": {"a.csv": {"missing_user_id": 1}}},
               "local_time_adjustments": []},
    "gold": {"build_id": "r1", "built_at": "2024-01-01T00:00:00", "mode": "full", "reason": "no gold build yet",
             "tests": [{"test": "t", "status": "pass"}], "row_counts": {"fct_events": 8}},
    "analytics": {"row_counts": {"top_products": 3}, "flags": [FLAG]},
}
LAYERS = ["bronze", "silver", "gold", "analytics"]


def test_a_first_run_describes_every_layer():
    assert merge_current({}, first_run(), LAYERS, lambda: LEDGER) == FIRST


def test_a_run_with_nothing_new_changes_no_layer():
    noop = {"run_id": "r2", "started_at": "2024-01-02T00:00:00",
            "bronze": {"batch_id": None, "files": [], "refused": [{"path": "x.bin", "reason": "binary",
                                                                    "this_run": False}],
                       "unmatched": ["notes.txt"], "not_regular": NOT_REGULAR, "copies": {}, "ignored_changes": []},
            "silver": {"bronze_batches": [], "ledger": []},
            "gold": {"mode": "current", "build_id": "r1", "row_counts": {"fct_events": 8}},
            "analytics": {"row_counts": {"top_products": 3}, "modes": {"top_products": "full"}, "flags": [FLAG]}}
    assert merge_current(FIRST, noop, LAYERS, lambda: pytest.fail("the ledger is not read again")) == FIRST


def test_a_replaced_file_takes_its_earlier_reasons_with_it_and_a_new_file_adds_its_own():
    run = {"run_id": "r3", "started_at": "2024-01-03T00:00:00",
           "silver": {"bronze_batches": ["r3"], "checks": CHECKS,
                      "rejection_reasons": {"per_file": {"a.csv": {"invalid_amount": 2},
                                                         "b.csv": {"missing_user_id": 4}}},
                      "retraction": {"files": [{"source_file": "a.csv", "replaced_rows": 10}]},
                      "local_time_adjustments": []}}
    merged = merge_current(FIRST, run, ["silver"], lambda: LEDGER)
    assert merged["silver"]["rejection_reasons"] == {
        "overall": {"invalid_amount": 2, "missing_user_id": 4},
        "per_file": {"a.csv": {"invalid_amount": 2}, "b.csv": {"missing_user_id": 4}}}
    assert (merged["silver"]["runs"], merged["silver"]["checked_by"]) == (["r1", "r3"], "r3")
    assert {k: v for k, v in merged.items() if k != "silver"} == {k: v for k, v in FIRST.items() if k != "silver"}


@pytest.mark.parametrize("finished", [["bronze"], []])
def test_a_layer_that_did_not_finish_keeps_what_the_last_run_that_built_it_said(finished):
    failed = first_run()
    failed["silver"]["rejection_reasons"]["per_file"] = {"a.csv": {"missing_user_id": 99}}
    merged = merge_current(FIRST, failed, finished, lambda: pytest.fail("silver did not finish"))
    assert merged["silver"] == FIRST["silver"]
    assert merged["gold"] == FIRST["gold"]
