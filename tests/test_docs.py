"""The data dictionary's column tables are the code's: a stale doc fails here, and `make docs` rewrites it."""
from __future__ import annotations

from pathlib import Path

import pytest

from clickstream.report import dictionary

DOC = Path(__file__).resolve().parents[1] / "docs" / "DATA_DICTIONARY.md"


@pytest.fixture(scope="module")
def declared():
    return dictionary.columns()


def test_the_data_dictionary_is_what_make_docs_writes(declared):
    text = DOC.read_text(encoding="utf-8")
    assert dictionary.regenerate(text, declared) == text, "docs/DATA_DICTIONARY.md is stale: run `make docs`"
    assert f"| {dictionary.TO_DESCRIBE} |" not in text, "a column has no meaning yet: describe it in the data dictionary"


def test_every_table_the_code_declares_has_its_columns_in_the_doc(declared):
    text = DOC.read_text(encoding="utf-8")
    assert sorted(m.group(1) + "." + m.group(2) for line in text.split("\n")
                  if (m := dictionary.MARKER.match(line))) == sorted(declared)


def test_a_column_added_or_retyped_in_the_code_makes_the_doc_stale_and_is_written_in(declared):
    text = DOC.read_text(encoding="utf-8")
    changed = {**declared, "analytics.revenue_metrics": [*declared["analytics.revenue_metrics"], ("refunds", "bigint")],
               "gold.dim_time": [(c, "bigint" if c == "hour_of_day" else t) for c, t in declared["gold.dim_time"]]}
    fresh = dictionary.regenerate(text, changed)
    assert fresh != text
    assert "| `refunds` | bigint | (to describe) |" in fresh
    assert "| `hour_of_day` | bigint | 0-23 |" in fresh
    assert dictionary.regenerate(fresh, changed) == fresh  # written once, it is fresh


def test_a_marked_table_the_code_does_not_declare_is_an_error(declared):
    with pytest.raises(ValueError, match="the doc marks a table gold.dim_weather that the code does not declare"):
        dictionary.regenerate("<!-- columns: gold.dim_weather -->\n| column | type | meaning |\n", declared)


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation out, spaces to hyphens."""
    import re

    return {re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            for m in re.finditer(r"^#{1,6} (.+)$", markdown, re.M)}


def test_every_relative_link_of_the_readme_and_docs_leads_somewhere():
    import re

    root = DOC.parents[1]
    pages = [root / "README.md", root / "benchmarks" / "README.md", *sorted((root / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(root)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked.read_text(encoding="utf-8")):
                broken.append(f"{page.relative_to(root)}: {target} (no such heading)")
    assert broken == []
