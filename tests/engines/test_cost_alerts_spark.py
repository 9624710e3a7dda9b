"""On Spark: the cost record counts the Java process and reads Spark's own stage metrics; a failing gate alerts."""
from __future__ import annotations

from pathlib import Path

import pytest

from alert_server import alert_server
from clickstream import storage
from clickstream.config import Config
from clickstream.context import QualityGateError
from clickstream.cost import Outside
from clickstream.generate import DefectRates, generate
from clickstream.pipeline import run_layers
from clickstream.profile import process_cpu_seconds

from engine_support import TEST_SPARK

pytestmark = pytest.mark.spark
TOLERANCE = 0.25
HEADER = "UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome"


def _config(data_dir: Path, url: str) -> Config:
    return Config.model_validate({
        "engine": "spark", "spark": TEST_SPARK.model_dump(),
        "paths": {"data_dir": str(data_dir), "logs_dir": str(data_dir.parent / "logs")},
        "analytics": {"html_report": False}, "quality": {"min_rows": 0}, "alerts": {"urls": [url]}})


def test_the_cost_counts_the_jvm_and_spark_metrics_and_a_failing_gate_alerts_once(tmp_path, spark_session_owner):
    from clickstream.engines import spark_session

    data_dir = tmp_path / "data"
    generate(data_dir / "raw", rows=1500, seed=8, defects=DefectRates.none())
    pid = spark_session.jvm_pid()
    with alert_server() as server:
        config = _config(data_dir, server.url())
        jvm_before, own_before = Outside.read(pid), process_cpu_seconds()
        run_layers(config, ("bronze", "silver", "gold"))
        jvm_after, own_after = Outside.read(pid), process_cpu_seconds()
        assert server.posts == []
        (data_dir / "raw" / "bad.csv").write_text(HEADER + "\n" + "\n".join(
            f"{'' if i < 30 else 1},1,2024-02-01 10:{i:02d}:00,page_view,,," for i in range(60)) + "\n")
        with pytest.raises(QualityGateError):
            run_layers(config)
        assert [post.body["type"] for post in server.posts] == ["failure"]
    assert "quarantine_rate 50.00% (30 of 60 rows), above the fail level 5.00%" in server.posts[0].body["message"]
    first = storage.read_json(data_dir / "reports" / "history" / sorted(
        p.name for p in (data_dir / "reports" / "history").glob("quality_*.json"))[0], {})
    cost = first["cost"]
    jvm, own = jvm_after.cpu_seconds - jvm_before.cpu_seconds, own_after - own_before
    assert jvm > 0.5, (jvm, own)  # the run's queries ran in the Java process
    assert abs(cost["cpu_seconds"] - (jvm + own)) <= TOLERANCE * (jvm + own), (cost, jvm, own)
    assert cost["cpu_seconds"] > own + jvm / 2, (cost, jvm, own)
    assert cost["peak_rss_bytes"] > jvm_after.peak_rss_bytes, cost
    spark = cost["spark"]
    assert spark["stages"] > 0 and spark["executor_cpu_ns"] > 0 and spark["executor_run_ms"] > 0, spark
    assert spark["shuffle_write_bytes"] > 0 and spark["shuffle_read_bytes"] > 0, spark
