"""Drawing the page's charts in helper processes: the same SVG as this process draws, a helper's SVG checked as
this process's is, a helper that dies or refuses a chart costs no chart, and starting a helper never runs the
caller's script again."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clickstream.report import svg

two_cores = pytest.mark.skipif(svg._cores() < 2, reason="helper processes start only where two cores are")


def _spec(n: int) -> dict:
    return {"data": {"values": [{"x": i, "label": f"<b>{n}</b>\u2028\x1b[31m{i}"} for i in range(n + 2)]},
            "mark": "text", "config": {"font": "Liberation Sans"},
            "encoding": {"x": {"field": "x", "type": "quantitative", "title": f"chart {n}"},
                         "text": {"field": "label"}}}


def _draw_with_helpers(specs: dict[str, dict]) -> tuple[dict[str, str], svg.Drawing]:
    for helper in svg.start_helpers():
        with helper.lock:
            helper.draw(svg._printable(_spec(0)))  # started and warm
    drawing = svg.Drawing()
    for name, spec in specs.items():
        drawing.add(name, spec)
    return drawing.svgs(), drawing


@two_cores
def test_the_helpers_draw_each_chart_as_this_process_does_in_the_order_added():
    specs = {f"chart {n}": _spec(n) for n in range(8, 0, -1)}
    drawn, drawing = _draw_with_helpers(specs)
    assert drawn == {name: svg.to_svg(spec) for name, spec in specs.items()}
    assert list(drawn) == list(specs)
    assert set(drawing._drawn) == set(specs)  # the helpers drew them all


@two_cores
def test_an_svg_from_the_helper_that_could_run_code_is_refused(monkeypatch):
    monkeypatch.setattr(svg._Helper, "draw", lambda self, spec: '<svg><g onload="alert(1)"/></svg>')
    with pytest.raises(ValueError, match="a chart's SVG holds an element or attribute that could run code"):
        _draw_with_helpers({"one": _spec(1), "two": _spec(2)})


@two_cores
def test_helpers_that_die_cost_no_chart_and_new_ones_start_for_the_next_page():
    specs = {f"chart {n}": _spec(n) for n in range(4)}
    expected = {name: svg.to_svg(spec) for name, spec in specs.items()}
    helpers = svg.start_helpers()
    for helper in helpers:
        helper.process.kill()
        helper.process.wait()
    drawing = svg.Drawing()
    for name, spec in specs.items():
        drawing.add(name, spec)
    assert drawing.svgs() == expected
    replacements = svg.start_helpers()
    assert len(replacements) == len(helpers) and not set(replacements) & set(helpers)
    assert all(helper.process.poll() is None for helper in replacements)
    drawn, _ = _draw_with_helpers(specs)
    assert drawn == expected


def test_a_helper_that_cannot_draw_a_chart_gives_it_back(monkeypatch):
    def refuse(self, spec):
        raise RuntimeError("vl-convert refused it")

    monkeypatch.setattr(svg._Helper, "draw", refuse)
    specs = {f"chart {n}": _spec(n) for n in range(3)}
    drawing = svg.Drawing()
    for name, spec in specs.items():
        drawing.add(name, spec)
    assert drawing.svgs() == {name: svg.to_svg(spec) for name, spec in specs.items()}


@two_cores
def test_starting_the_helper_never_runs_the_callers_script_again(tmp_path):
    """A script without `if __name__ == "__main__"` (multiprocessing's spawn would import it again in the new
    process, running its pipeline twice)."""
    runs = tmp_path / "runs.txt"
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        from clickstream.report import svg
        with open({str(runs)!r}, "a") as f:
            f.write("ran\\n")
        drawing = svg.Drawing()
        drawing.add("one", {{"data": {{"values": [{{"x": 1}}]}}, "mark": "point",
                             "encoding": {{"x": {{"field": "x", "type": "quantitative"}}}}}})
        assert drawing.svgs()["one"].startswith("<svg")
        assert svg._HELPERS and all(helper.process.poll() is None for helper in svg._HELPERS)
    """))
    src = str(Path(svg.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, str(script)], check=True, env=env, timeout=60)
    assert runs.read_text() == "ran\n"


@two_cores
def test_a_page_given_up_on_keeps_no_helper_from_the_next():
    """A section that fails leaves its drawing unfinished: the next page's charts are drawn all the same."""
    abandoned = svg.Drawing()
    abandoned.add("one", _spec(1))
    specs = {f"chart {n}": _spec(n) for n in range(3)}
    drawing = svg.Drawing()
    for name, spec in specs.items():
        drawing.add(name, spec)
    assert drawing.svgs() == {name: svg.to_svg(spec) for name, spec in specs.items()}
    assert set(drawing._drawn) == set(specs)
