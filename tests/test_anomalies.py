"""Anomaly checks over run records: volume per source, rates against their trailing median, freshness, silence."""
from __future__ import annotations

import datetime as dt

import pytest

from clickstream.anomalies import check, rows_per_source
from clickstream.config import Alerts, Rates, Volume

NOW = dt.datetime(2024, 3, 1, 12, 0)
SETTINGS = Alerts(volume=Volume(runs=3, min_runs=2), rates=Rates(runs=3, min_runs=2))


def ingesting(batch: str, rows: dict[str, int], quarantine: float = 0.01, outcome: str = "succeeded") -> dict:
    """A run record whose bronze batch ingested `rows` per source (one file each) and whose silver judged them."""
    files = [{"path": f"{source}_{batch}.csv", "source_name": source, "rows": count,
              "parts": [{"batch_id": batch, "offset": 0, "rows": count}]} for source, count in rows.items()]
    return {"run_id": batch, "outcome": outcome, "bronze": {"batch_id": batch, "files": files},
            "silver": {"checks": [{"name": "quarantine_rate", "value": quarantine},
                                  {"name": "duplicate_rate", "value": 0.0}]}}


def nothing_new(batch: str) -> dict:
    return {"run_id": batch, "outcome": "no new data", "bronze": {"batch_id": None, "files": []}}


def messages(run: dict, history: list[dict], settings: Alerts = SETTINGS, **kwargs) -> tuple[list[str], list[str]]:
    checked = check(run, history, kwargs.get("files", []), kwargs.get("latest"), settings, NOW)
    return [a["message"] for a in checked.found], checked.judged


def test_an_appended_part_counts_only_the_rows_of_this_batch():
    run = ingesting("b2", {"shop": 0})
    run["bronze"]["files"][0].update(rows=150, parts=[{"batch_id": "b1", "rows": 100}, {"batch_id": "b2", "rows": 50}])
    assert rows_per_source(run) == {"shop": 50}
    assert rows_per_source(nothing_new("b3")) is None


@pytest.mark.parametrize("rows, found", [
    (1000, []),
    (150, ["source shop: 150 rows ingested, 15% of the median 1,000 of its last 3 runs with new files (below 20%: "
           "alerts.volume)"]),
    (5001, ["source shop: 5,001 rows ingested, 500% of the median 1,000 of its last 3 runs with new files (above "
            "500%: alerts.volume)"]),
])
def test_volume_against_the_median_of_the_last_runs_that_ingested_the_source(rows, found):
    history = [ingesting("a", {"shop": 9}), ingesting("b", {"shop": 900}), nothing_new("c"),
               ingesting("d", {"shop": 1000}), ingesting("e", {"shop": 1100}), ingesting("f", {"shop": 1, "x": 5},
                                                                                         outcome="failed")]
    assert messages(ingesting("g", {"shop": rows}), history)[0] == found


def test_no_volume_judgement_without_new_files_or_enough_earlier_runs():
    history = [ingesting("a", {"shop": 1000}), ingesting("b", {"shop": 1000})]
    assert messages(nothing_new("c"), history) == ([], [])
    found, judged = messages(ingesting("c", {"shop": 1, "new_feed": 1}), history)
    assert "volume:shop" in judged and "volume:new_feed" not in judged


def test_a_rate_three_times_its_trailing_median_is_an_anomaly_and_a_zero_median_judges_nothing():
    history = [ingesting("a", {"s": 10}, 0.01), ingesting("b", {"s": 10}, 0.02), ingesting("c", {"s": 10}, 0.01)]
    found, judged = messages(ingesting("d", {"s": 10}, 0.031), history)
    assert found == ["quarantine_rate 3.10% is 3.1 times its median 1.00% over the last 3 runs (above 3 times: "
                     "alerts.rates)"]
    assert judged == ["volume:s", "rate:quarantine_rate"]  # duplicate_rate: its median is 0
    assert messages(ingesting("d", {"s": 10}, 0.03), history)[0] == []


def test_freshness_and_silence_are_off_by_default_and_judge_the_latest_event_and_file():
    files = [{"source_name": "shop", "ingested_at": "2024-02-27 12:00:00"},
             {"source_name": "shop", "ingested_at": "2024-02-29 06:00:00"},
             {"source_name": "feed", "ingested_at": "2024-03-01 11:00:00"}]
    latest = dt.datetime(2024, 2, 26, 12, 0)
    assert messages(nothing_new("a"), [], files=files, latest=latest) == ([], [])
    settings = Alerts(freshness="3d", silence="24h")
    found, judged = messages(nothing_new("a"), [], settings, files=files, latest=latest)
    assert found == [
        "the latest event (2024-02-26 12:00 UTC) is 4.0 days old, more than alerts.freshness (3d)",
        "source shop: no new file for 30.0 hours (the last ingested at 2024-02-29 06:00 UTC), more than "
        "alerts.silence (24h)"]
    assert judged == ["freshness:data", "silence:feed", "silence:shop"]
