"""Hostile data values (ANSI escapes, newlines, bidi overrides, HTML, Markdown) shown as text, never interpreted."""
from __future__ import annotations

import html
import logging
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from clickstream.analytics import QueryResult
from clickstream.generate import DefectRates, generate
from clickstream.logs import job_log
from clickstream.report.escape import escape_markdown, escape_markup, escape_terminal, escape_terminal_lines, shorten
from clickstream.report.tables import markdown_report, render_results, text_table

# (value, as the terminal shows it, as a Markdown table cell holds it)
HOSTILE = [
    ("a|b", "a|b", r"a\|b"),
    ("x\ny", r"x\ny", r"x\\ny"),
    ("x\r\nforged", r"x\r\nforged", r"x\\r\\nforged"),
    ("tab\there", r"tab\there", r"tab\\there"),
    ("\x1b[31mred\x1b[0m", r"\x1b[31mred\x1b[0m", r"\\x1b\[31mred\\x1b\[0m"),
    ("\x1b]0;title\x07", r"\x1b]0;title\x07", r"\\x1b\]0;title\\x07"),
    ("nul\x00del\x7f", r"nul\x00del\x7f", r"nul\\x00del\\x7f"),
    ("csi\x9b2J", r"csi\x9b2J", r"csi\\x9b2J"),
    ("\u202egnp.exe", r"\u202egnp.exe", r"\\u202egnp.exe"),
    ("line\u2028sep", r"line\u2028sep", r"line\\u2028sep"),
    ("<script>alert(1)</script>", "<script>alert(1)</script>", r"\<script\>alert(1)\</script\>"),
    ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>", r"\<img src=x onerror=alert(1)\>"),
    ("`rm -rf`", "`rm -rf`", r"\`rm -rf\`"),
    ("*bold* _it_ ~~gone~~", "*bold* _it_ ~~gone~~", r"\*bold\* \_it\_ \~\~gone\~\~"),
    ("[x](http://e.io)", "[x](http://e.io)", r"\[x\](http\://e.io)"),
    ("# not a heading #", "# not a heading #", r"\# not a heading \#"),
    ("&amp; $x$", "&amp; $x$", r"\&amp; \$x\$"),
    ("C:\\data\\", "C:\\data\\", r"C:\\data\\"),
    ("product_id", "product_id", "product_id"),
]


@pytest.mark.parametrize("value, terminal, _", HOSTILE, ids=[repr(v) for v, _, _ in HOSTILE])
def test_escape_terminal_shows_control_characters_as_escapes(value, terminal, _):
    assert escape_terminal(value) == terminal


@pytest.mark.parametrize("value, _, cell", HOSTILE, ids=[repr(v) for v, _, _ in HOSTILE])
def test_escape_markdown_makes_the_value_literal(value, _, cell):
    assert escape_markdown(value) == cell


@pytest.mark.parametrize("value, terminal, _", HOSTILE, ids=[repr(v) for v, _, _ in HOSTILE])
def test_escape_markup_leaves_no_markup_and_reads_as_the_terminal_shows_it(value, terminal, _):
    shown = escape_markup(value)
    assert not set("<>\"'") & set(shown)
    assert html.unescape(shown) == terminal


def test_escape_terminal_lines_keeps_the_line_breaks_and_escapes_each_line():
    assert escape_terminal_lines("Traceback\n  File \x1b[2J\nError: a\rb") == "Traceback\n  File \\x1b[2J\nError: a\\rb"


@pytest.mark.parametrize("text, expected", [
    ("", ""),
    ("x" * 200, "x" * 200),
    ("x" * 201, "x" * 200 + "... (1 more characters)"),
    ("y" * 5000, "y" * 200 + "... (4,800 more characters)"),
])
def test_shorten_cuts_to_200_characters_and_says_how_many_were_cut(text, expected):
    assert shorten(text) == expected


def test_shorten_takes_another_limit():
    assert shorten("abcdef", limit=4) == "abcd... (2 more characters)"


def result(value: str, title: str = "Top products", column: str = "product_id") -> QueryResult:
    return QueryResult("top_products", title, "one row per product", [column, "views"], [(value, 3)], 1)


@pytest.mark.parametrize("value, terminal, _", HOSTILE, ids=[repr(v) for v, _, _ in HOSTILE])
def test_text_table_shows_hostile_values_as_escapes(value, terminal, _):
    width = max(len("product_id"), len(terminal))
    assert text_table(["product_id", "views"], [(value, 3)]) == (
        f"{'product_id':<{width}}  views\n"
        f"{'-' * width}  -----\n"
        f"{terminal:<{width}}      3"
    )


def test_render_results_escapes_the_title_and_the_column_names():
    assert render_results([result("p1", title="Top\x1b[2J\nproducts", column="id\rx")]) == (
        "Top\\x1b[2J\\nproducts\n"
        "id\\rx  views\n"
        "-----  -----\n"
        "p1         3"
    )


@pytest.mark.parametrize("value, _, cell", HOSTILE, ids=[repr(v) for v, _, _ in HOSTILE])
def test_markdown_report_shows_hostile_values_as_literal_text(value, _, cell):
    assert markdown_report([result(value)], "20240105T100000z1a2b3c") == (
        "# Clickstream analytics\n"
        "\n"
        "Run 20240105T100000z1a2b3c. Full results are the Parquet tables (and CSV files) beside this report.\n"
        "\n"
        "## Top products\n"
        "\n"
        "one row per product. 1 row.\n"
        "\n"
        "| product_id | views |\n"
        "| --- | --- |\n"
        f"| {cell} | 3 |\n"
    )


def test_markdown_report_escapes_data_in_headings_and_column_names():
    report = markdown_report([result("p1", title="<b>Top</b> #1 #", column="a|b\n")], "r1")
    assert report.split("\n")[4:10] == [
        r"## \<b\>Top\</b\> \#1 \#",
        "",
        "one row per product. 1 row.",
        "",
        r"| a\|b\\n | views |",
        "| --- | --- |",
    ]


class _Rendered(HTMLParser):
    """The tags of rendered HTML, and the text of each heading and table cell."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.texts: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag in ("h1", "h2", "th", "td"):
            self._open = tag
            self.texts.append("")

    def handle_endtag(self, tag):
        if tag == self._open:
            self._open = None

    def handle_data(self, data):
        if self._open:
            self.texts[-1] += data


def test_markdown_report_renders_as_the_literal_values_in_github_flavoured_markdown():
    cmarkgfm = pytest.importorskip("cmarkgfm", reason="cmarkgfm (GitHub's Markdown renderer) is in the test extra")
    from cmarkgfm.cmark import Options

    values = [v for v, _, _ in HOSTILE] + ["- item", "+ item", "1. item", "www.example.com", "ftp://e.io/x"]
    report = markdown_report([QueryResult("q", "<i>Q</i> #", "what it is", ["value"], [(v,) for v in values],
                                          len(values))], "r1")
    # Unsafe: raw HTML would pass through, so only the escaping keeps it out.
    page = _Rendered()
    page.feed(cmarkgfm.github_flavored_markdown_to_html(report, options=Options.CMARK_OPT_UNSAFE))
    assert page.tags == {"h1", "h2", "p", "table", "thead", "tbody", "tr", "th", "td"}
    assert page.texts == ["Clickstream analytics", "<i>Q</i> #", "value"] + [escape_terminal(v) for v in values]


# ---- logs


def test_a_log_record_holding_a_screen_clear_and_a_newline_is_one_terminal_line(capfd):
    # A fresh process: the real terminal handler of clickstream.logs, writing to the captured stderr.
    code = ("import logging; from clickstream.logs import setup_logging; setup_logging(); "
            "logging.getLogger('clickstream.bronze').info('read %s', 'evil\\x1b[2J\\nclickstream: error: forged')")
    subprocess.run([sys.executable, "-c", code], check=True)
    err = capfd.readouterr().err
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO    read evil\\x1b\[2J\\nclickstream: error: forged\n", err), err


def test_the_log_file_escapes_the_same_way(tmp_path):
    with job_log(tmp_path, "bronze") as path:
        logging.getLogger("clickstream.bronze").warning("skipped %s", "a\x1b]0;owned\x07\nb.csv")
    content = path.read_text(encoding="utf-8")
    records = re.findall(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\w+) +(.*)$", content, re.MULTILINE)
    assert len(records) == content.count("\n")  # every line is a whole record (INFO ones if logging is set up)
    assert [r for r in records if r[0] == "WARNING"] == [
        ("WARNING", "clickstream.bronze: skipped a\\x1b]0;owned\\x07\\nb.csv")]


# ---- the command's end summary


def test_the_end_summary_shows_a_hostile_data_dir_escaped(tmp_path):
    data = tmp_path / "x\x1b[2J\ny"
    generate(data / "raw", rows=50, seed=5, defects=DefectRates.none())
    done = subprocess.run([sys.executable, "-m", "clickstream", "bronze", "--data-dir", str(data)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shown = f"{tmp_path}/x\\x1b[2J\\ny"
    *outputs, times, end = done.stdout.split("\n")
    assert outputs == ["", "Outputs:", f"  bronze      {shown}/bronze", f"  silver      {shown}/silver",
                       f"  quarantine  {shown}/quarantine", f"  gold        {shown}/gold",
                       f"  analytics   {shown}/analytics", f"  markdown    {shown}/analytics/REPORT.md",
                       f"  quality     {shown}/reports/quality_report.json", f"  logs        {shown}/logs"]
    assert re.fullmatch(r"Layer times: bronze \d+\.\d\d s", times) and end == ""
