"""The HTML report in a real browser: headless Chromium (Debian's, driven by Playwright) with the network off.

One run on generated data with a hostile product id; the page must show every section, draw marks in every
chart, ask for nothing outside the file, log no error, state the gold tables' numbers, and show the hostile id
as text. A screenshot is kept as the test's artifact (its path is printed).
"""
from __future__ import annotations

import csv
import datetime as dt
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from clickstream.cli import main
from clickstream.generate import generate
from clickstream.report.html import SECTIONS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HOSTILE = "<script>alert(1)</script>"
# The flags a closed network needs: no background requests, no updates, no sync (see the machine notes).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def hostile_file(raw: Path) -> None:
    """A second feed file whose product id is markup: viewed most, and bought, so it reaches both top lists."""
    start = dt.datetime(2024, 1, 10, 12, 0, 0)
    with (raw / "hostile.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["UserID", "SessionID", "Timestamp", "EventType", "ProductID", "Amount", "Outcome"])
        for i in range(60):
            at = (start + dt.timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S")
            writer.writerow([f"hostile_user_{i % 3}", f"hs{i % 3}", at, "product_view", HOSTILE, "", ""])
        writer.writerow(["hostile_user_0", "hs0", "2024-01-10 13:30:00", "purchase", HOSTILE, "99999.00", "purchase"])


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("browser") / "data"
    generate(data / "raw", rows=3000, seed=11)
    hostile_file(data / "raw")
    assert main(["run", "--quiet", "--data-dir", str(data)]) == 0
    return data


@pytest.fixture(scope="module")
def page_facts(report, tmp_path_factory):
    """Load the page once in Chromium, offline, and collect what the browser saw."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    requests, console, errors, dialogs = [], [], [], []
    shot = tmp_path_factory.mktemp("artifacts") / "report.png"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(offline=True, viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.on("console", lambda message: console.append((message.type, message.text)))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto((report / "analytics" / "report.html").as_uri(), wait_until="load")
        # every "Figures" table laid out, as a reader opening them sees it
        page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
        facts = page.evaluate("""() => ({
            sections: [...document.querySelectorAll('main > section')].map(s => [s.id, s.querySelector('h2').textContent]),
            charts: [...document.querySelectorAll('figure.chart')].map(f => [f.dataset.chart,
                f.querySelectorAll('svg').length, f.querySelectorAll('svg .role-mark > *').length]),
            missing: [...document.querySelectorAll('.missing')].map(m => m.closest('section').id),
            figures: Object.fromEntries([...document.querySelectorAll('[data-figure]')].map(c => [c.dataset.figure, c.dataset.raw])),
            svgText: [...document.querySelectorAll('svg text')].map(t => t.textContent),
            cells: [...document.querySelectorAll('td')].map(t => t.textContent),
            scripts: document.querySelectorAll('script').length,
            overflowing: [...document.querySelectorAll('.stage dt, .stage dd, .card .value')].filter(e => {
                const box = e.closest('.stage, .card').getBoundingClientRect(), own = e.getBoundingClientRect();
                return own.right > box.right + 0.5 || own.left < box.left - 0.5;
            }).map(e => e.textContent),
            // a lineage name broken over two lines ("quaranti / ned")
            wrapped: [...document.querySelectorAll('.stage dt, .stage dd')].filter(e => {
                const range = document.createRange();
                range.selectNodeContents(e);
                return range.getClientRects().length > 1;
            }).map(e => e.textContent),
            // a chart's text the viewer's font pushes past its SVG's edge is cut off there
            clipped: [...document.querySelectorAll('figure.chart svg')].flatMap(svg => {
                const box = svg.getBoundingClientRect();
                return [...svg.querySelectorAll('text')].filter(t => {
                    const own = t.getBoundingClientRect();
                    return own.width > 0 && (own.right > box.right + 0.5 || own.left < box.left - 0.5
                                             || own.bottom > box.bottom + 0.5 || own.top < box.top - 0.5);
                }).map(t => [svg.closest('figure').dataset.chart, t.textContent]);
            }),
            // an axis title running into its axis's labels
            axisOverlaps: [...document.querySelectorAll('figure.chart svg .role-axis')].flatMap(axis => {
                const labels = [...axis.querySelectorAll('.role-axis-label text')];
                return [...axis.querySelectorAll('.role-axis-title text')].flatMap(title => {
                    const a = title.getBoundingClientRect();
                    return labels.filter(label => {
                        const b = label.getBoundingClientRect();
                        return b.width > 0 && a.left < b.right - 1 && b.left < a.right - 1
                            && a.top < b.bottom - 1 && b.top < a.bottom - 1;
                    }).map(label => [axis.closest('figure').dataset.chart, title.textContent, label.textContent]);
                });
            }),
            // a number, name or time in a table broken over lines ("28,238.", "19"); prose alone may wrap
            brokenCells: [...document.querySelectorAll('td:not(.prose), th')].filter(e => {
                const range = document.createRange();
                range.selectNodeContents(e);
                return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size > 1;
            }).map(e => e.textContent),
            // a table running past its card: what is seen of it is its box, or its scrolling box's
            tablesOut: [...document.querySelectorAll('main table')].filter(t => {
                const card = t.closest('section').getBoundingClientRect();
                const scroller = t.parentElement, scrolls = ['auto', 'scroll'].includes(getComputedStyle(scroller).overflowX);
                const seen = (scrolls ? scroller : t).getBoundingClientRect();
                return seen.right > card.right - 1 || seen.left < card.left + 1;
            }).map(t => t.closest('details, section').querySelector('summary, h2').textContent),
            tablesScrolling: [...document.querySelectorAll('main table')].filter(t =>
                t.parentElement.scrollWidth > t.parentElement.clientWidth + 1).length,
            // the share of its card's width each chart takes
            chartFill: [...document.querySelectorAll('figure.chart')].map(f => [f.dataset.chart,
                f.querySelector('svg').getBoundingClientRect().width / f.getBoundingClientRect().width]),
            axisLabels: [...document.querySelectorAll('figure.chart svg .role-axis-label text')].map(t => t.textContent),
            fonts: [...new Set([...document.querySelectorAll('figure.chart svg text')].map(
                t => getComputedStyle(t).fontFamily))],
        })""")
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    return facts, requests, console, errors, dialogs, shot


def test_every_section_is_on_the_page_in_order(page_facts):
    facts = page_facts[0]
    assert [section_id for section_id, _ in facts["sections"]] == [
        "headline", "funnel", "cart", "daily", "retention", "products", "revenue", "segments", "predictions", "paths",
        "daytype", "quality", "runs", "lineage"]
    assert len(SECTIONS) == len(facts["sections"])
    assert facts["missing"] == []  # every table a section needs is built


def test_every_chart_is_one_svg_with_marks(page_facts):
    charts = page_facts[0]["charts"]
    assert [name for name, _, _ in charts] == [
        "funnel", "cart", "daily", "retention", "products_views", "products_revenue", "revenue", "rfm", "activity",
        "clusters", "paths", "visit_paths", "daytype", "ledger", "reasons"]  # rates over one run: a sentence
    assert [(name, svgs) for name, svgs, _ in charts] == [(name, 1) for name, _, _ in charts]
    assert [name for name, _, marks in charts if marks == 0] == []


def test_no_label_or_figure_runs_out_of_its_box_or_is_broken_over_lines(page_facts):
    assert page_facts[0]["overflowing"] == []
    assert page_facts[0]["wrapped"] == []


def test_no_table_breaks_a_value_over_lines_or_runs_past_its_card(page_facts):
    facts = page_facts[0]
    assert facts["brokenCells"] == []
    assert facts["tablesOut"] == []
    assert facts["tablesScrolling"] > 0  # the wide tables scroll inside their card


def test_charts_take_their_cards_width_and_no_tick_reads_0k(page_facts):
    """Each chart but the weekday/weekend small multiples is as wide as its card (within a tenth)."""
    fill = dict(page_facts[0]["chartFill"])
    assert {name: round(share, 2) for name, share in fill.items() if name != "daytype" and share < 0.9} == {}
    assert [label for label in page_facts[0]["axisLabels"] if re.fullmatch(r"-?0(\.0*)?[kMGT]", label)] == []


def test_no_chart_text_is_cut_off_in_a_wider_font_than_it_was_measured_in(page_facts):
    """The charts are measured in Liberation Sans; this browser has only DejaVu Sans (CI installs no other
    font), about a tenth wider, which the charts' padding must leave room for."""
    facts = page_facts[0]
    assert facts["fonts"] == ['"Liberation Sans", Arimo, Arial, Helvetica, sans-serif']
    assert facts["clipped"] == [], facts["clipped"]
    assert facts["axisOverlaps"] == [], facts["axisOverlaps"]


def test_nothing_leaves_the_file_and_nothing_fails(page_facts):
    _, requests, console, errors, dialogs, _ = page_facts
    assert [url for url in requests if not url.startswith("file://")] == []
    assert [text for kind, text in console if kind == "error"] == []
    assert (errors, dialogs) == ([], [])


def test_the_headline_numbers_are_the_gold_tables(page_facts, report):
    figures = page_facts[0]["figures"]
    gold = report / "gold"

    def one(sql: str):
        return duckdb.sql(sql.replace("GOLD", str(gold))).fetchall()[0][0]

    expected = {
        "events": one("select count(*) from read_parquet('GOLD/fct_events/**/*.parquet')"),
        "users": one("select count(*) from read_parquet('GOLD/dim_users/*.parquet')"),
        "visits": one("select count(*) from read_parquet('GOLD/dim_sessions/**/*.parquet')"),
        "revenue": one("select sum(amount) from read_parquet('GOLD/fct_events/**/*.parquet') where is_purchase"),
        # the ordered funnel's last step over the users it decided (conversion_funnel's own definition)
        "conversion": one("""select conversion_from_first from read_parquet('ANALYTICS/conversion_funnel/*.parquet')
                             order by step_number desc limit 1""".replace("ANALYTICS", str(report / "analytics"))),
    }
    shown = {key: float(figures[key]) for key in expected}
    assert shown == {key: pytest.approx(float(value), rel=1e-12) for key, value in expected.items()}


def test_a_hostile_product_id_is_shown_as_text(page_facts):
    facts, *_ = page_facts
    assert facts["scripts"] == 0
    assert HOSTILE in facts["svgText"]  # the chart's label
    assert HOSTILE in facts["cells"]  # the table of figures
    assert page_facts[4] == []  # no alert ran


def test_the_screenshot_is_kept(page_facts, capsys):
    shot = page_facts[5]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with capsys.disabled():  # shown whether or not the test passes
        print(f"\nscreenshot of the report: {shot}")
