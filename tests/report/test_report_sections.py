"""The report's sections without a browser: a table not built yet, a table without a column a chart needs, hostile
names from the quality report, and the size of the page."""
from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from clickstream.cli import main
from clickstream.config import Config
from clickstream.context import Layout
from clickstream.generate import generate
from clickstream.report import charts, html, svg


class Page(HTMLParser):
    """The tags and the text of a page, as a browser would parse them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if data.strip():
            self.text.append(data.strip())


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sections") / "data"
    generate(root / "raw", rows=1500, seed=6)
    assert main(["run", "--quiet", "--data-dir", str(root)]) == 0
    return root


def quality(data: Path) -> dict:
    return json.loads((data / "reports" / "quality_report.json").read_text())


def test_a_table_not_built_yet_is_said_and_the_rest_is_drawn(data, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    shutil.rmtree(copy / "analytics" / "conversion_funnel")
    page = Page(html.render(Layout(copy), Config(), quality(copy)))
    assert [t for t in page.text if t.startswith("Not available")] == ["Not available: the table"]
    missing = [attrs for tag, attrs in page.tags if tag == "p" and attrs.get("class") == "missing"]
    assert len(missing) == 1  # the funnel's table
    figures = {attrs["data-figure"]: attrs["data-raw"] for tag, attrs in page.tags if "data-raw" in attrs}
    assert figures["conversion"] == ""  # shown as "not available"
    assert "funnel" not in [attrs.get("data-chart") for _, attrs in page.tags]
    assert "daily" in [attrs.get("data-chart") for _, attrs in page.tags]


@pytest.mark.parametrize("builder, rows", [
    (charts.funnel, [{"step_number": 1, "event_type": "view"}]),
    (lambda rows: charts.daily(rows, []), [{"activity_date": "2024-01-01", "active_users": 1, "sessions": 1}]),
    (lambda rows: charts.weekly_revenue(rows, []), [{"activity_date": "2024-01-01"}]),
    (lambda rows: charts.ranked_bars(rows, "product_id", "views", "views"), [{"product_id": "p"}]),
    (lambda rows: charts.segments(rows, "segment", "customers", "customers"), [{"segment": "loyal"}]),
    (charts.day_types, [{"day_type": "weekday"}]),
    (charts.ledger, [{"source_file": "a.csv", "silver_rows": 1}]),
    (charts.rates_over_runs, [{"run": "r1", "quarantine_rate": 0.1}]),
    (charts.retention, [{"cohort_start": "2024-01-01", "period": 0}]),
    (charts.cart_daily, [{"cart_date": "2024-01-01", "converted": 1, "abandoned": 0}]),
    (charts.funnel, []),
])
def test_a_chart_whose_table_lacks_a_column_it_reads_is_not_drawn(builder, rows):
    assert builder(rows) is None


def test_hostile_names_from_the_quality_report_are_text(data):
    hostile = '<img src=x onerror="alert(1)">'
    report = quality(data)
    report["bronze"]["refused"] = [{"path": f"{hostile}.csv", "reason": f"binary {hostile}"}]
    report["bronze"]["unmatched"] = [f"{hostile}.txt"]
    report["gold"]["tests"] = [{"test": f"fct_events.unique({hostile})", "failures": 3, "status": "fail"}]
    page = Page(html.render(Layout(data), Config(), report))
    assert [tag for tag, _ in page.tags if tag in ("img", "script", "iframe", "object")] == []
    assert [attrs for _, attrs in page.tags if any(k.startswith("on") for k in attrs)] == []
    assert {f"{hostile}.csv", f"binary {hostile}", f"{hostile}.txt", f"fct_events.unique({hostile})"} <= set(page.text)


def test_the_page_is_small_and_the_same_for_the_same_data(data):
    first = html.render(Layout(data), Config(), quality(data))
    assert len(first.encode()) < 1_500_000
    assert html.render(Layout(data), Config(), quality(data)) == first  # byte-stable: golden tests can compare


def test_control_characters_and_undecodable_names_are_escapes_in_charts_and_tables(data):
    name = "bad\udcff\x1b[2J\nname.csv"  # a file name that was not UTF-8, with an escape sequence and a line break
    report = quality(data)
    report["silver"]["ledger"] = [{**report["silver"]["ledger"][0], "source_file": name}]
    page = html.render(Layout(data), Config(), report)
    page.encode("utf-8")  # no lone surrogate left to write
    shown = "bad\\udcff\\x1b[2J\\nname.csv"
    assert shown in Page(page).text  # the table of figures
    assert f">{shown}</text>" in page  # the ledger chart's label
    assert "\x1b" not in page


def test_the_hostile_folder_gives_a_page_of_text(tmp_path):
    import hostile

    data = tmp_path / "data"
    hostile.write(data / "raw")
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"sources": [{"name": "clickstream"}, hostile.PARIS_SOURCE]}))
    assert main(["run", "--quiet", "--config", str(config), "--data-dir", str(data)]) == 0
    page = Page((data / "analytics" / "report.html").read_text(encoding="utf-8"))
    assert [tag for tag, _ in page.tags if tag in ("script", "img", "iframe", "object", "embed", "foreignobject")] == []
    assert [attrs for _, attrs in page.tags if any(k.startswith("on") for k in attrs)] == []
    # every chart drawn, but the rates over runs (one run) and the churn scores' (a few hours of data: no churn
    # model), each said in words
    assert len([attrs for tag, attrs in page.tags if tag == "figure"]) == 15
    assert any(text.startswith("Not enough history to judge a churn model") for text in page.text)


def test_html_report_false_writes_no_page_and_removes_the_one_a_new_run_would_leave_stale(data, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"analytics": {"html_report": False}}))
    page = copy / "analytics" / "report.html"
    assert page.exists()
    report_logs = sorted((copy / "logs").glob("report_*"))
    assert report_logs  # the first run's report job
    generate(copy / "raw", rows=300, seed=7)  # new events: the earlier page no longer shows the data
    assert main(["run", "--quiet", "--config", str(config), "--data-dir", str(copy)]) == 0
    assert "clickstream_7_001.csv" in json.dumps(quality(copy)["bronze"])  # the new file went through
    assert not page.exists()
    assert sorted((copy / "logs").glob("report_*")) == report_logs  # no report job ran
    assert (copy / "analytics" / "REPORT.md").exists()  # the Markdown tables are still written


def test_the_top_products_are_chosen_in_arrow_largest_first_ties_in_table_order(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "gold" / "dim_products"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({
        "product_id": ["n/a", "a", "b", "c", "d", "e", "f"],
        "views": [900, 5, 7, 5, None, 0, 5],
        "is_not_applicable": [True, False, False, None, False, False, False],
    }), folder / "part-00000.parquet")
    tables = html.Tables(Layout(tmp_path))
    assert tables.largest("dim_products", "views", ["product_id", "views"], 3) == [
        {"product_id": "b", "views": 7}, {"product_id": "a", "views": 5}, {"product_id": "c", "views": 5}]
    # an older table without the column: one row without it, so the chart is not drawn
    assert tables.largest("dim_products", "revenue", ["product_id", "revenue"], 3) == [{"product_id": "n/a"}]
    assert charts.ranked_bars([{"product_id": "n/a"}], "product_id", "revenue", "revenue") is None
    assert html.Tables(Layout(tmp_path / "none")).largest("dim_products", "views", ["views"], 3) is None


@pytest.mark.parametrize("first, last, days", [
    ("2024-01-01 00:01:35", "2024-03-30 10:13:04", ["2024-01-01", "2024-03-30"]),
    ("2024-01-01 00:00:00", "2024-03-30 23:59:59.999999", ["2024-03-30"]),
    ("2024-01-01 23:59:00", "2024-01-01 23:59:30", ["2024-01-01"]),
    ("2024-01-01 00:00:00", "2024-01-01 00:00:00", ["2024-01-01"]),
], ids=["both-ends", "from-midnight", "one-day", "one-instant"])
def test_partial_days_follow_the_rule_of_daily_activity(first, last, days):
    import datetime as dt

    assert html.partial_days(dt.datetime.fromisoformat(first), dt.datetime.fromisoformat(last)) == days


def test_the_headline_names_the_partial_days_daily_activity_flags(data):
    import pyarrow.parquet as pq

    daily = pq.read_table(data / "analytics" / "daily_activity").to_pylist()
    flagged = sorted(str(row["activity_date"]) for row in daily if row["is_partial_day"])
    assert len(flagged) == 2  # the generated data starts after midnight and ends before the last midnight
    assert html.headline_figures(Layout(data))["partial_days"] == flagged
    text = " ".join(Page(html.render(Layout(data), Config(), quality(data))).text)
    assert (f"Partial days: {', '.join(flagged)} (UTC days the data covers only in part: it starts after midnight or "
            f"ends before the next); marked in the charts.") in text


def test_the_lineage_sums_the_records_known_and_says_how_many_files_were_not_counted(data):
    report = quality(data)
    files = report["bronze"]["files"]
    known = sum(f["records"] for f in files)
    report["bronze"]["files"] = files + [{**files[0], "path": "uncounted.csv", "records": None}]
    text = Page(html.render(Layout(data), Config(), report)).text
    records = text[text.index("records") + 1]
    assert records == f"{known:,} (and 1 file(s) not counted)"


def facts_with(data: Path, history: list[dict]) -> html.Facts:
    return html.Facts(html.Tables(Layout(data)), Config(), quality(data), history, None, None)


def test_one_run_of_rates_is_said_in_words_and_two_are_drawn(data):
    """One run's rates are one dot on an empty chart: they are a sentence until a second run gives a line."""
    run = quality(data)
    totals = run["silver"]["totals"]
    section = html.data_quality(facts_with(data, [run]))
    assert "rates" not in [name for _, name in section.charts]
    assert [n for n in section.notes if n.startswith("One run")] == [
        f"One run has judged rows so far: quarantine rate {totals['quarantine_rows'] / totals['bronze_rows']:.2%}, "
        f"duplicate rate {totals['duplicate_rows'] / totals['bronze_rows']:.2%} of its bronze rows; the rates are "
        "drawn over runs from the second one."]
    section = html.data_quality(facts_with(data, [run, {**run, "started_at": "2099-01-01T00:00:00"}]))
    assert ("Quarantine and duplicate rates, last 2 runs that judged rows", "rates") in section.charts
    assert [n for n in section.notes if n.startswith("One run")] == []


def test_runs_started_in_the_same_minute_are_each_a_point_of_the_rates(data):
    """The chart's x is the run's label: two runs of one minute (watch batches) must not share one position."""
    run = quality(data)
    history = [{**run, "started_at": f"2099-01-01T10:00:{second:02d}.5"} for second in (1, 40)]
    chart = charts.rates_over_runs(html._rates(history))
    assert sorted({point["run"] for point in chart.rows}) == ["2099-01-01 10:00:01",
                                                                                "2099-01-01 10:00:40"]


def test_the_runs_section_shows_the_runs_that_recorded_their_cost_and_their_rows_per_second(data):
    def recorded(start: str, rows: int, wall: float, cpu: float) -> dict:
        return {"started_at": start, "outcome": "succeeded", "bronze": {"rows": rows},
                "cost": {"wall_seconds": wall, "cpu_seconds": cpu, "peak_rss_bytes": 2_500_000}}

    assert html.runs(facts_with(data, [{"started_at": "2024-01-01T00:00:00"}])).notes == [
        "No run has recorded its cost yet."]
    history = [{"started_at": "2024-01-01T00:00:00"}, recorded("2024-01-02T00:00:00", 1000, 4.0, 3.0),
               recorded("2024-01-03T00:00:00", 0, 2.0, 1.5)]
    section = html.runs(facts_with(data, history))
    assert [name for _, name in section.charts] == ["runs_seconds", "runs_rows"]
    (table,) = section.tables
    assert table["rows"] == [["2024-01-03 00:00:00", "succeeded", "2.00", "1.50", "0", "0.00", "2.50"],
                             ["2024-01-02 00:00:00", "succeeded", "4.00", "3.00", "1,000", "250.00", "2.50"]]


def test_the_last_runs_anomalies_are_notes_of_the_data_quality_section(data):
    run = quality(data)
    run["last_run"]["anomalies"] = [{"check": "volume", "subject": "shop", "message": "source shop: 9 rows <b>"}]
    section = html.data_quality(html.Facts(html.Tables(Layout(data)), Config(), run, [], None, None))
    assert "Anomaly in the last run: source shop: 9 rows <b>." in section.notes


def test_every_conversion_says_which_it_is_and_is_a_percentage(data):
    """The headline's, the ordered funnel's table, the any-order funnel's and visit conversion differ by design:
    each place names its conversion, every one as a percentage."""
    import pyarrow.parquet as pq

    def rows(name):
        return pq.read_table(data / "analytics" / name).to_pylist()

    ordered = sorted(rows("conversion_funnel"), key=lambda r: r["step_number"])
    any_order = max(rows("funnel_any_order"), key=lambda r: r["step_number"])
    days = rows("day_type_behavior")
    window = Config().analytics.funnel.window
    page_text = html.render(Layout(data), Config(), quality(data))
    page = Page(page_text)
    assert "ordered funnel conversion" in page.text  # the headline card's label
    visits = ", ".join(f"{float(r['session_conversion_rate']):.2%} on {r['day_type']}s" for r in days)
    assert (f"Conversion, each its own question: {float(ordered[-1]['conversion_from_first']):.2%} is the ordered "
            f"funnel's conversion (the headline's): of the users reaching {ordered[0]['event_type']}, the share "
            f"reaching {ordered[-1]['event_type']} in order within {window}, users still in progress left out; "
            f"{float(any_order['overall_conversion']):.2%} is the any-order funnel's (funnel_any_order): the share who "
            "did every step at any time, order and window ignored; visit conversion, the share of visits with a "
            f"purchase, is another measure ({visits}; Weekday vs weekend).") in page.text
    funnel = html.funnel(facts_with(data, []))
    table = funnel.tables[0]
    assert table["caption"].startswith(f"conversion_funnel (in order within {window}")
    shown = [[row[table["columns"].index(c)] for c in ("conversion_from_previous", "conversion_from_first")]
             for row in table["rows"]]
    assert shown == [[f"{float(r['conversion_from_previous']):.2%}", f"{float(r['conversion_from_first']):.2%}"]
                     for r in ordered]


def test_an_unknown_abandoned_value_says_why_in_the_page_and_in_report_md(data):
    from clickstream.analytics import QueryResult
    from clickstream.report.tables import abandoned_value_note, markdown_report

    why = ("abandoned_value is unknown (-), not 0: no add_to_cart event of this feed carries an amount, so the value "
           "left in abandoned carts cannot be known.")
    assert html.cart(facts_with(data, [])).notes == [why]  # the generated feed's carts carry no amount
    assert abandoned_value_note([{"abandoned_value": None}, {"abandoned_value": 2.5}]) is None
    result = QueryResult("cart_abandonment", "10b. Cart abandonment", "one row", ["carts", "abandoned_value"],
                         [(3, None)], 1)
    assert markdown_report([result], "r1").endswith(
        "| carts | abandoned_value |\n| --- | --- |\n| 3 | - |\n\n"
        "abandoned_value is unknown (-), not 0: no add_to_cart event of this feed carries an amount, so the "
        "value left in abandoned carts cannot be known.\n")
    priced = QueryResult("cart_abandonment", "10b. Cart abandonment", "one row", ["carts", "abandoned_value"],
                         [(3, 4.5)], 1)
    assert markdown_report([priced], "r1").endswith("| 3 | 4.50 |\n")


def test_report_md_shows_the_ordered_funnels_conversions_as_percentages_and_names_each_conversion():
    from decimal import Decimal

    from clickstream.analytics import QueryResult
    from clickstream.report.tables import CONVERSIONS, markdown_report

    result = QueryResult("conversion_funnel", "2a. Conversion funnel", "one row per step",
                         ["step_number", "conversion_from_previous", "conversion_from_first"],
                         [(1, 1.0, Decimal("1")), (2, 0.8527, Decimal("0.5864"))], 2)
    assert markdown_report([result], "r1").endswith(
        "| 1 | 100.00% | 100.00% |\n| 2 | 85.27% | 58.64% |\n\n" + CONVERSIONS + "\n")


def axis_labels(chart: charts.Chart) -> list[str]:
    import xml.etree.ElementTree as ElementTree

    return [text.text for group in ElementTree.fromstring(chart.svg).iter()
            if group.get("class") == "role-axis-label" for text in group]


@pytest.mark.parametrize("top, expected", [
    (6_000, ["0", "2,000", "4,000", "6,000", "8,000"]),
    (3, ["0", "1", "2", "3", "4"]),
    (150_000, ["0", "50k", "100k", "150k", "200k"]),
])
def test_axis_ticks_never_read_0k_and_small_values_are_plain(top, expected):
    """An SI format gives every tick the largest one's prefix ("0k", "0.5k"): plain numbers below a hundred
    thousand, and 0 always "0"."""
    chart = charts.segments([{"segment": "a", "n": top}, {"segment": "b", "n": top // 2}], "segment", "n", "n")
    assert [label for label in axis_labels(chart) if label not in ("a", "b")] == expected  # the counts' axis


def test_every_chart_of_the_page_is_one_svg_of_marks_that_runs_nothing(data):
    """Each chart of the page parses as SVG, holds marks, and nothing that could run code."""
    import xml.etree.ElementTree as ElementTree

    text = html.render(Layout(data), Config(), quality(data))
    names = [attrs["data-chart"] for tag, attrs in Page(text).tags if tag == "figure"]
    assert len(names) >= 15
    drawn = re.findall(r"<svg .*?</svg>", text, re.S)
    assert len(drawn) == len(names)
    for markup in drawn:
        root = ElementTree.fromstring(markup)
        marks = [element for element in root.iter() if element.get("class") == "role-mark"]
        assert marks and all(len(mark) > 0 for mark in marks)
        assert not svg.runs_code(markup)


def test_the_retention_heatmap_shows_the_last_cohorts_over_their_first_periods():
    """Daily cohorts over months are thousands of labelled cells: the heatmap keeps the last RETENTION_SHOWN
    cohorts, each over its first RETENTION_SHOWN periods."""
    import datetime as dt

    shown = charts.RETENTION_SHOWN
    first = dt.date(2024, 1, 1)
    rows = [{"cohort_start": (first + dt.timedelta(days=c)).isoformat(), "period": p, "retention_rate": 0.5}
            for c in range(shown + 14) for p in range(shown + 14 - c)]
    data = charts.retention(rows, "day").rows
    cohorts = sorted({d["cohort"] for d in data})
    assert cohorts == sorted({r["cohort_start"] for r in rows})[-shown:]
    assert max(d["period"] for d in data) == shown - 1
    assert {(d["cohort"], d["period"]) for d in data} == {
        (r["cohort_start"], r["period"]) for r in rows if r["cohort_start"] in cohorts and r["period"] < shown}
    assert charts.retention_cells(rows)[2]  # cut: the page's caption says so
    few = [r for r in rows if r["cohort_start"] in cohorts[:3] and r["period"] < 3]
    assert charts.retention_cells(few)[2] is False and len(charts.retention_cells(few)[1]) == len(few)
