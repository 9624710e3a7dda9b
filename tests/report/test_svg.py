"""The charts' SVG writer: ticks at 1, 2 or 5 times a power of ten, the number formats of the axes, every text
escaped, and an SVG that could run code refused."""
from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clickstream.report import charts, measure, svg
from clickstream.report.escape import escape_terminal


@pytest.mark.parametrize("top, count, expected", [
    (6_480, 4, [0, 2_000, 4_000, 6_000]),
    (1.3, 4, [0, 0.5, 1.0]),
    (150_000, 3, [0, 50_000, 100_000, 150_000]),
    (0.008, 4, [0, 0.002, 0.004, 0.006, 0.008]),
    (0, 4, [0]),
])
def test_ticks_are_one_two_or_five_times_a_power_of_ten(top, count, expected):
    assert svg.ticks(top, count) == pytest.approx(expected)


@given(st.floats(min_value=1e-6, max_value=1e12), st.integers(min_value=2, max_value=12))
def test_a_nice_domain_ends_on_its_last_tick_at_or_above_the_largest_value(top, count):
    domain, marks = svg.nice(top, count)
    assert domain >= top * (1 - 1e-9)
    assert marks[-1] == pytest.approx(domain) and marks[0] == 0
    assert len(marks) <= 2 * count + 2
    step = marks[1] - marks[0]
    assert round(step / 10 ** int(f"{step:e}".split("e")[1]), 6) in (1, 2, 5)
    assert [b - a for a, b in zip(marks, marks[1:])] == pytest.approx([step] * (len(marks) - 1))


@pytest.mark.parametrize("value, top, expected", [
    (0, 200_000, "0"), (50_000, 200_000, "50k"), (200_000, 200_000, "200k"), (200_000, 1_000_000, "0.2M"),
    (2_500, 6_000, "2,500"), (0.5, 3, "0.5"), (0, 3, "0"),
])
def test_counts_read_plain_below_a_hundred_thousand_and_with_a_prefix_above_and_0_is_0(value, top, expected):
    assert svg.quantity_format(top)(value) == expected


def test_shares_and_decimals():
    assert [svg.percent(v) for v in (0, 0.002, 0.025, 1)] == ["0%", "0.2%", "2.5%", "100%"]
    assert [svg.decimal(v) for v in (0, 1234.5, 0.125, 10)] == ["0", "1,234.5", "0.12", "10"]


HOSTILE = ["<script>alert(1)</script>", '"><g onload="alert(1)">', "a & b", "bad\udcff\x1b[2J\nname",
           "]]><!--", "\u2028line"]


def test_every_text_from_the_data_is_a_text_node_of_the_svg():
    chart = charts.ranked_bars([{"product_id": text, "views": i + 1} for i, text in enumerate(HOSTILE)],
                               "product_id", "views", "views")
    root = ElementTree.fromstring(chart.svg)
    texts = [element.text for element in root.iter() if element.tag.endswith("}text")]
    shown = [label for label in texts if label and not label.replace(",", "").isdigit()]
    assert {"<script>alert(1)</script>", '"><g onload="alert(1)">', "a & b", "bad\\udcff\\x1b[2J\\nname",
            "]]><!--"} <= set(shown)
    assert not svg.runs_code(chart.svg)
    assert [element.tag for element in root.iter() if "script" in element.tag.lower()] == []


@pytest.mark.parametrize("markup", [
    '<svg xmlns="http://www.w3.org/2000/svg"><g onload="alert(1)"/></svg>',
    '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    '<svg xmlns="http://www.w3.org/2000/svg"><a href="javascript:alert(1)"><text>x</text></a></svg>',
    '<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><div/></foreignObject></svg>',
    '<svg xmlns="http://www.w3.org/2000/svg"><set attributeName="x" to="1"/></svg>',
])
def test_an_svg_that_could_run_code_is_refused(markup):
    with pytest.raises(ValueError, match="a chart's SVG holds an element or attribute that could run code"):
        svg.checked(markup)


def test_a_plain_svg_passes_the_check():
    canvas = svg.Canvas()
    canvas.rect(0, 0, 10, 10, "#000000", title="<b>")
    canvas.text(1, 1, "x")
    drawn = canvas.svg(20, 20, "a & b")
    assert svg.checked(drawn) == drawn
    assert 'aria-label="a &amp; b"' in drawn


def test_bands_fill_their_length_with_vegas_padding():
    starts, width = svg.bands(4, 10, 100)
    step = 100 / (4 - 0.1 + 0.1)
    assert starts == pytest.approx([10 + step * (0.05 + i) for i in range(4)])
    assert width == pytest.approx(step * 0.9)
    assert starts[-1] + width + step * 0.05 == pytest.approx(110)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=6, unique=True))
def test_any_text_from_the_data_leaves_every_chart_well_formed_and_shown_as_text(names):
    """Product ids, segment names, file names and run labels of any characters (control characters, lone
    surrogates, markup) give SVG that parses, runs nothing, and shows each (cut to fit) as a text node."""
    drawn = [
        charts.ranked_bars([{"product_id": n, "views": i + 1} for i, n in enumerate(names)], "product_id", "views",
                           "views"),
        charts.segments([{"segment": n, "users": i} for i, n in enumerate(names)], "segment", "users", "users"),
        charts.ledger([{"source_file": n, "bronze_rows": 3, "silver_rows": 1, "quarantine_rows": 1,
                        "duplicate_rows": 1} for n in names]),
        charts.runs_over_time([{"run": n, "seconds": float(i)} for i, n in enumerate(names)], {"seconds": "s"}, "s"),
    ]
    # the labels in the order each chart cuts them: the largest value first, the files by name
    labels = {0: measure.fit_distinct(names[::-1], charts.RANKED_LABEL),
              2: measure.fit_distinct(sorted(names), charts.FILE_LABEL), 3: names}
    for i, chart in enumerate(drawn):
        root = ElementTree.fromstring(chart.svg)  # well-formed, whatever the names held
        assert not svg.runs_code(chart.svg)
        texts = {element.text for element in root.iter() if element.tag.endswith("}text")}
        assert {escape_terminal(label) for label in labels.get(i, [])} <= texts
