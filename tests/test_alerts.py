"""Alerts: what a run has to say, sent once through Apprise to a loopback server, repeats held back, recoveries
said once, unreachable targets bounded in time, secrets written nowhere; `alert-test` and `--strict`."""
from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import apprise
import pytest
import yaml

from alert_server import alert_server, closed_port
from clickstream import bronze, storage
from clickstream.alerts import findings, plan, title
from clickstream.cli import STRICT_STATUS, main
from clickstream.config import Alerts, Config
from clickstream.context import QualityGateError
from clickstream.generate import DefectRates, generate
from clickstream.notify import send
from clickstream.pipeline import run_layers
from clickstream.watch import watch

HEADER = "UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome"
NOW = dt.datetime(2024, 3, 1, 12, 0)
SECRET_VARIABLE = "CLICKSTREAM_TEST_ALERT_TOKEN"


def gate(status: str, value: float = 0.2) -> dict:
    return {"name": "quarantine_rate", "count": int(value * 1000), "total": 1000, "value": value, "warn": 0.01,
            "fail": 0.05, "status": status}


def judged_run(*checks: dict, outcome: str = "succeeded") -> dict:
    return {"run_id": "r", "outcome": outcome, "silver": {"checks": list(checks)}}


def planned(run: dict, state: dict, now: dt.datetime = NOW, **alerts) -> tuple[list[str], list[str], dict]:
    config = Config(alerts=Alerts(urls=["json://127.0.0.1:1/x"], **alerts))
    found = plan(run, state, config, now)
    return [f.key for f in found.send], [entry["key"] for entry in found.recovered], found.state


def test_a_finding_is_sent_once_until_repeat_after_then_again_and_its_recovery_once():
    failing = judged_run(gate("fail"), outcome="failed") | {"error": "quarantine_rate above its fail level"}
    sent, recovered, state = planned(failing, {})
    assert (sent, recovered) == (["gate:quarantine_rate", "run"], [])
    assert planned(failing, state, NOW + dt.timedelta(hours=23))[:2] == ([], [])
    assert planned(failing, state, NOW + dt.timedelta(hours=24))[:2] == (["gate:quarantine_rate", "run"], [])
    passing = judged_run(gate("ok", 0.001))
    sent, recovered, after = planned(passing, state, NOW + dt.timedelta(hours=1))
    assert (sent, recovered, after) == ([], ["gate:quarantine_rate", "run"], {"open": {}})


def test_a_check_not_judged_neither_recovers_nor_is_sent_and_a_new_kind_is_sent_at_once():
    _, _, state = planned(judged_run(gate("warn", 0.02)), {})
    nothing_new = {"run_id": "r", "outcome": "no new data", "silver": {"bronze_batches": []}}
    assert planned(nothing_new, state, NOW + dt.timedelta(hours=1)) == ([], [], state)
    assert planned(judged_run(gate("fail")), state, NOW + dt.timedelta(hours=1))[0] == ["gate:quarantine_rate"]


def test_alerts_on_leaves_out_the_kinds_not_listed():
    run = judged_run(gate("warn", 0.02)) | {"anomalies": [{"check": "volume", "subject": "shop", "message": "m"}]}
    assert [f.kind for f in findings(run)] == ["warn", "anomaly"]
    assert planned(run, {}, on=["anomaly"])[0] == ["anomaly:volume:shop"]
    _, recovered, _ = planned(judged_run(gate("ok", 0.0)), planned(run, {})[2], on=["fail", "warn"])
    assert recovered == []


def test_an_unreachable_target_costs_at_most_the_timeout_and_the_others_still_get_the_message():
    settings = Alerts(urls=[], timeout_seconds=2, retries=5)
    apprise.Apprise.instantiate("json://127.0.0.1:1/warm-up")  # Apprise loads its plugins once per process
    with alert_server() as server:
        started = time.monotonic()
        deliveries = send([f"json://127.0.0.1:{closed_port()}/hook", server.url()], "t", "b", "fail", settings)
        took = time.monotonic() - started
    assert took <= 2 + 1.0, took
    assert [(d.target, d.ok) for d in deliveries] == [("target 1 (json)", False), ("target 2 (json)", True)]
    assert deliveries[0].attempts >= 2 and "Connection" in deliveries[0].error, deliveries[0]
    assert deliveries[0].seconds <= 2, deliveries[0]
    assert [post.body["title"] for post in server.posts] == ["t"]


def _csv(path: Path, rows: list[str]) -> None:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")


def _events(day: int, count: int, without_user: int = 0) -> list[str]:
    """`count` page views on 2024-01-`day`, the first `without_user` lacking their UserID (quarantined)."""
    return [f"{'' if i < without_user else i % 7 + 1},{i % 5 + 1},2024-01-{day:02d} {i // 60 % 24:02d}:"
            f"{i % 60:02d}:{day:02d},page_view,,," for i in range(count)]


def _config(tmp_path: Path, urls: list[str], **alerts) -> Config:
    config = {"paths": {"data_dir": str(tmp_path / "data"), "logs_dir": str(tmp_path / "logs")},
              "analytics": {"html_report": False, "rfm": {"min_days": 0}}, "quality": {"min_rows": 0},
              "alerts": {"urls": urls, "timeout_seconds": 2, "retries": 1, **alerts}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return Config.model_validate(config)


def _files_holding(text: str, *folders: Path) -> list[Path]:
    found = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and text.encode() in path.read_bytes():
                found.append(path)
    return found


def test_a_failing_gate_alerts_once_the_repeat_stays_quiet_the_recovery_is_said_once(tmp_path, monkeypatch):
    secret = "s3cr3t-" + "9f2c41"
    monkeypatch.setenv(SECRET_VARIABLE, secret)
    raw = tmp_path / "data" / "raw"
    generate(raw, rows=600, seed=3, defects=DefectRates.none())
    with alert_server() as server:
        urls = [server.url(query=f"+X-Token=${{{SECRET_VARIABLE}}}"), f"json://127.0.0.1:{closed_port()}/down"]
        config = _config(tmp_path, urls)
        run_layers(config)
        assert server.posts == []  # a clean run has nothing to say
        _csv(raw / "bad.csv", _events(20, 100, without_user=40))
        for _ in range(2):  # the failing gate, then the same failure again
            with pytest.raises(QualityGateError):
                run_layers(config)
        assert len(server.posts) == 1
        failed = server.posts[0]
        relaxed = config.model_copy(update={"quality": config.quality.model_copy(update={
            "quarantine_rate": config.quality.quarantine_rate.model_copy(update={"warn": 1.0, "fail": 1.0})})})
        run_layers(relaxed)
        assert len(server.posts) == 2
    assert (failed.body["type"], failed.headers.get("X-Token")) == ("failure", secret)
    assert failed.body["title"] == "clickstream FAILED (data): quarantine_rate +1"
    message = failed.body["message"]
    assert "quarantine_rate 40.00% (40 of 100 rows), above the fail level 5.00%" in message, message
    assert str((tmp_path / "data" / "reports" / "quality_report.json").absolute()) in message
    recovery = server.posts[1].body
    assert (recovery["type"], recovery["title"]) == ("success", "clickstream recovered (data): quarantine_rate +1")
    assert "Recovered:" in recovery["message"] and "quarantine_rate 40.00%" in recovery["message"]
    report = storage.read_json(tmp_path / "data" / "reports" / "quality_report.json", {})
    targets = report["last_run"]["alerts"]["targets"]
    assert [(t["target"], t["ok"]) for t in targets] == [("target 1 (json)", True), ("target 2 (json)", False)]
    assert _files_holding(secret, tmp_path / "data", tmp_path / "logs") == []


def test_a_thin_day_is_one_volume_anomaly_and_strict_exits_3(tmp_path):
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    with alert_server() as server:
        config = _config(tmp_path, [server.url()], volume={"low": 0.2, "high": 5.0, "runs": 7, "min_runs": 2})
        for day in (1, 2):
            _csv(raw / f"day{day}.csv", _events(day, 200))
            run_layers(config)
        assert server.posts == []
        _csv(raw / "day3.csv", _events(3, 20))
        status = main(["run", "--strict", "--quiet", "--config", str(tmp_path / "config.yaml")])
        assert status == STRICT_STATUS
        assert [post.body["type"] for post in server.posts] == ["warning"]
        status = main(["run", "--strict", "--quiet", "--config", str(tmp_path / "config.yaml")])
        assert (status, len(server.posts)) == (0, 1)  # nothing new: not judged on volume, nothing said
    message = server.posts[0].body["message"]
    assert "source clickstream: 20 rows ingested, 10% of the median 200 of its last 2 runs" in message, message
    record = storage.read_json(tmp_path / "data" / "reports" / "quality_report.json", {})["last_run"]
    assert record["anomaly_checks"] == []


def test_alert_test_says_which_target_took_the_message(tmp_path, capsys):
    with alert_server() as server:
        _config(tmp_path, [server.url(), f"json://127.0.0.1:{closed_port()}/down"])
        status = main(["alert-test", "--config", str(tmp_path / "config.yaml")])
        assert [post.body["title"] for post in server.posts] == ["clickstream: test message"]
    out, err = capsys.readouterr()
    assert status == 1
    assert out.splitlines()[0] == "target 1 (json): sent (1 attempt(s))"
    assert out.splitlines()[1].startswith("target 2 (json): FAILED: "), out
    assert "1 of 2 alert target(s) did not take the test message" in err


def test_history_lists_the_cost_of_each_run(tmp_path, capsys):
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    _csv(raw / "day1.csv", _events(1, 50))
    _config(tmp_path, [])
    assert main(["run", "--quiet", "--config", str(tmp_path / "config.yaml")]) == 0
    capsys.readouterr()
    assert main(["history", "--format", "json", "--config", str(tmp_path / "config.yaml")]) == 0
    (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    cost = storage.read_json(tmp_path / "data" / "reports" / "quality_report.json", {})["last_run"]["cost"]
    assert {k: listed[k] for k in ("cpu_seconds", "peak_rss_bytes", "bytes_read", "bytes_written")} == {
        k: cost[k] for k in ("cpu_seconds", "peak_rss_bytes", "bytes_read", "bytes_written")}
    assert cost["cpu_seconds"] > 0 and cost["peak_rss_bytes"] > 10_000_000 and cost["bytes_written"] > 0, cost
    assert set(cost["layer_seconds"]) == {"bronze", "silver", "gold", "analytics"}


def test_watch_alerts_per_batch_with_the_same_rules(tmp_path, monkeypatch):
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    _csv(raw / "a.csv", _events(1, 30))
    _csv(raw / "gone.csv", _events(2, 30))
    match_sources = bronze.match_sources

    def listed_then_removed(*args):  # in batch 1: gone.csv is removed after the listing (refused), later.csv comes
        found = match_sources(*args)
        if (raw / "gone.csv").exists():
            (raw / "gone.csv").unlink()
            _csv(raw / "later.csv.tmp", _events(3, 30))
            (raw / "later.csv.tmp").rename(raw / "later.csv")
        return found

    monkeypatch.setattr(bronze, "match_sources", listed_then_removed)
    with alert_server() as server:
        config = _config(tmp_path, [server.url()])
        assert watch(config, interval=0.2, max_batches=2) is None
    assert [(post.body["type"], post.body["title"]) for post in server.posts] == [
        ("warning", "clickstream warning (data): gone.csv"), ("success", "clickstream recovered (data): gone.csv")]
    assert "raw file gone.csv refused: removed from raw/ while the run read it" in server.posts[0].body["message"]


@pytest.mark.parametrize("text, message", [
    ('alerts:\n  urls: ["hooks.example.com/T0k3nValue"]\n',
     "key 'alerts.urls': an entry (28 characters) is not an Apprise URL"),
    ("alerts:\n  on: [fail, recover]\n", "key 'alerts.on.1': Input should be 'fail', 'warn', 'anomaly' or 'recovered'"),
    ("alerts:\n  repeat_after: 1 day\n", "key 'alerts.repeat_after': '1 day' is not a duration"),
    ("alerts:\n  volume: {low: 2, high: 1}\n", "key 'alerts.volume': low must be below high"),
])
def test_a_bad_alerts_key_is_one_line_naming_it_and_never_the_url(tmp_path, capsys, text, message):
    (tmp_path / "config.yaml").write_text(text)
    assert main(["alert-test", "--config", str(tmp_path / "config.yaml")]) == 2
    err = capsys.readouterr().err
    assert message in err and "T0k3nValue" not in err and len(err.strip().splitlines()) == 1, err


def test_yaml_reads_a_bare_on_key_as_alerts_on(tmp_path):
    (tmp_path / "config.yaml").write_text("alerts:\n  on: [fail]\n")
    from clickstream.config import load_config

    assert load_config(tmp_path / "config.yaml").alerts.on == ["fail"]


def test_a_title_fits_a_phone_notification(tmp_path):
    run = judged_run(gate("warn", 0.02)) | {"anomalies": [
        {"check": "volume", "subject": "a-source-with-a-very-long-name-indeed", "message": "m"}]}
    found = plan(run, {}, Config(alerts=Alerts(urls=["json://127.0.0.1:1/x"])), NOW)
    assert title(found, tmp_path / "data") == "clickstream warning (data): quarantine_rate +1"
    found.send.reverse()
    long = title(found, tmp_path / "a-data-directory")
    assert len(long) == 60 and long.endswith("\u2026"), long


def test_the_terminal_summary_names_the_anomalies_and_who_took_the_alert():
    from clickstream.report.terminal import _attention_lines

    run = {"anomalies": [{"message": f"source s{i}: few rows"} for i in range(6)],
           "alerts": {"title": "clickstream anomaly (data): volume +5", "targets": [
               {"target": "target 1 (json)", "ok": True, "error": None},
               {"target": "target 2 (slack)", "ok": False, "error": "no answer within 10 s"}]}}
    assert _attention_lines(run) == [
        "Anomalies (6):", *(f"  source s{i}: few rows" for i in range(5)),
        "  and 1 more (reports/quality_report.json, anomalies)",
        "Alert: clickstream anomaly (data): volume +5: sent to 1 of 2 target(s); not sent to target 2 (slack): no "
        "answer within 10 s"]
    assert _attention_lines({}) == []
