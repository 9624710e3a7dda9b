"""Labels cut in Python to a width in pixels: the widths are the font's, a cut label fits, and two texts are never
cut to the same label (a chart's bands are its labels)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clickstream.report import measure


def test_widths_are_the_fonts():
    assert measure.width("i") == pytest.approx(455 * 11 / 2048)
    assert measure.width("W", size=22) == pytest.approx(1933 * 22 / 2048)
    assert measure.width("\u4e2d") == 11  # outside the table: a whole em
    assert measure.width("") == 0


def test_a_text_that_fits_is_kept_whole():
    assert measure.fit("product 12", 200) == "product 12"
    assert measure.fit("abc", measure.width("abc")) == "abc"


def test_texts_cut_to_one_label_are_told_apart():
    texts = ["view \u2192 cart \u2192 purchase \u2192 " + tail for tail in ("view", "cart", "exit")] + ["short"]
    labels = measure.fit_distinct(texts, 120)
    assert len(set(labels)) == 4
    assert labels[0].endswith(measure.ELLIPSIS) and labels[1].endswith(" #2") and labels[2].endswith(" #3")
    assert labels[3] == "short"
    assert all(measure.width(label) <= 120 for label in labels)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=60), st.integers(min_value=20, max_value=400))
def test_a_cut_label_fits_and_starts_the_text(text, pixels):
    label = measure.fit(text, pixels)
    if label == text:
        assert measure.width(text) <= pixels
    else:
        assert label.endswith(measure.ELLIPSIS)
        assert text.startswith(label[:-1])
        assert measure.width(label) <= pixels


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="ab \u2192", min_size=0, max_size=40), max_size=12),
       st.integers(min_value=40, max_value=200))
def test_distinct_texts_get_distinct_labels(texts, pixels):
    texts = list(dict.fromkeys(texts))
    labels = measure.fit_distinct(texts, pixels)
    assert len(set(labels)) == len(texts)
