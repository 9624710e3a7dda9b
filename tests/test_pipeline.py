"""run_layers' ending: the quality report, staging cleared, the engine closed and the warehouse rebuilt, each
whatever the others do, with the layer's own error the one raised."""
from __future__ import annotations

import logging

import pytest
from helpers import make_config

from clickstream import pipeline, storage
from clickstream.context import PipelineError


@pytest.fixture
def closed(monkeypatch) -> list[str]:
    """The engines run_layers closed, by name."""
    names: list[str] = []
    create = pipeline.create_engine

    def engine_that_tells(config):
        engine = create(config)
        close = engine.close

        def recorded() -> None:
            names.append(engine.name)
            close()

        engine.close = recorded
        return engine

    monkeypatch.setattr(pipeline, "create_engine", engine_that_tells)
    return names


@pytest.fixture
def warehouse_rebuilds(monkeypatch) -> list[bool]:
    """Each rebuild of the warehouse run_layers asked for: whether it was after a failure."""
    calls: list[bool] = []
    rebuild = pipeline._rebuild_warehouse

    def recorded(layout, failed):
        calls.append(failed)
        return rebuild(layout, failed)

    monkeypatch.setattr(pipeline, "_rebuild_warehouse", recorded)
    return calls


def raw_file(tmp_path) -> None:
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "a.csv").write_text("UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"
                                                     "u1,s1,2024-01-01 10:00:00,page_view,,,\n")


def failing_bronze(ctx):
    storage.staging_path(ctx.layout.data_dir, "bronze").mkdir(parents=True)  # left half-written
    raise PipelineError("bronze: the layer's own failure")


def test_a_failing_report_leaves_the_layers_error_and_every_other_cleanup(tmp_path, monkeypatch, closed,
                                                                           warehouse_rebuilds, caplog):
    config = make_config(tmp_path)
    monkeypatch.setitem(pipeline._JOBS, "bronze", failing_bronze)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "reports").write_text("a file where the reports folder goes")  # the report cannot be written
    with caplog.at_level(logging.ERROR, logger="clickstream"), pytest.raises(PipelineError) as error:
        pipeline.run_layers(config, layers=("bronze",))
    assert str(error.value) == "bronze: the layer's own failure"
    assert closed == ["duckdb"]
    assert not (tmp_path / "data" / storage.STAGING_DIR).exists()
    assert warehouse_rebuilds == [True]
    assert [r.getMessage().split(":")[0] for r in caplog.records if r.name == "clickstream.pipeline"
            and r.levelno == logging.ERROR] == ["writing the quality report failed too"]


def test_a_report_that_fails_after_the_layers_succeeded_is_the_error_and_the_engine_is_closed(tmp_path, closed,
                                                                                              warehouse_rebuilds):
    config = make_config(tmp_path)
    raw_file(tmp_path)
    (tmp_path / "data" / "reports").write_text("a file where the reports folder goes")
    with pytest.raises(FileExistsError):
        pipeline.run_layers(config, layers=("bronze",))
    assert closed == ["duckdb"]
    assert warehouse_rebuilds == [False]


def test_a_failing_engine_close_is_raised_after_the_report_is_written(tmp_path, monkeypatch, warehouse_rebuilds):
    config = make_config(tmp_path)
    raw_file(tmp_path)
    create = pipeline.create_engine

    def engine_that_fails_to_close(config):
        engine = create(config)
        close = engine.close

        def failing() -> None:
            close()
            raise RuntimeError("the engine would not stop")

        engine.close = failing
        return engine

    monkeypatch.setattr(pipeline, "create_engine", engine_that_fails_to_close)
    with pytest.raises(RuntimeError, match="the engine would not stop"):
        pipeline.run_layers(config, layers=("bronze",))
    assert (tmp_path / "data" / "reports" / "quality_report.json").is_file()
    assert warehouse_rebuilds == [False]


def _written(data) -> dict[str, tuple[int, int]]:
    """Every file of the data directory a run may publish, with its inode and modification time: a file written
    again (or replaced by a rename) changes one of them."""
    skipped = ("reports", "logs", "_state")
    return {str(path.relative_to(data)): (path.stat().st_ino, path.stat().st_mtime_ns) for path in data.rglob("*")
            if path.is_file() and path.relative_to(data).parts[0] not in skipped}


def test_a_run_with_nothing_new_answers_nothing_again_and_says_so(tmp_path):
    import json
    import subprocess
    import sys

    from clickstream.cli import main
    from clickstream.generate import generate

    data = tmp_path / "data"
    generate(data / "raw", rows=1500, seed=4)
    assert main(["run", "--quiet", "--data-dir", str(data)]) == 0
    before = _written(data)
    assert "analytics/report.html" in before and "warehouse.duckdb" in before
    assert main(["run", "--quiet", "--data-dir", str(data)]) == 0
    assert _written(data) == before  # no query, no page, no REPORT.md, no warehouse written again
    last = json.loads((data / "reports" / "quality_report.json").read_text())["last_run"]
    assert (last["outcome"], last["gold"]["mode"], last["analytics"]["mode"]) == ("no new data", "current", "current")
    # in a process of its own: the run with nothing new loads none of the page's modules
    done = subprocess.run([sys.executable, "-c", "import sys, threading; from clickstream.cli import main; "
                           f"rc = main(['run', '--quiet', '--data-dir', {str(data)!r}]); "
                           "print(rc, 'clickstream.report.charts' in sys.modules, "
                           "[t.name for t in threading.enumerate() if t.name == 'report-warm-up'])"],
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    assert done.stdout.split("\n")[-2] == "0 False []", done.stdout

    # a changed analytics setting, and --full-refresh, answer again
    config = tmp_path / "config.yaml"
    config.write_text("analytics:\n  show_rows: 3\n")
    assert main(["run", "--quiet", "--config", str(config), "--data-dir", str(data)]) == 0
    after = _written(data)
    assert after["analytics/REPORT.md"] != before["analytics/REPORT.md"]
    last = json.loads((data / "reports" / "quality_report.json").read_text())["last_run"]
    assert last["outcome"] == "succeeded" and last["analytics"].get("mode") != "current"
    assert main(["run", "--quiet", "--full-refresh", "--config", str(config), "--data-dir", str(data)]) == 0
    assert _written(data)["analytics/REPORT.md"] != after["analytics/REPORT.md"]


def test_starting_the_command_does_not_import_scikit_learn():
    # its import takes about a second; only fitting a model needs it (churn._model)
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import sys, clickstream.cli, clickstream.pipeline; "
                           "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
