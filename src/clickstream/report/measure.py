"""Text widths in the charts' font: where the charts place their texts, and where a long label is cut.

The widths are the font's own (Liberation Sans, metric-compatible with Arial), so a chart is laid out the same on
every machine whatever fonts it has, and shown in that font or one of its metrics (`charts.DISPLAY_FONT`).
"""
from __future__ import annotations

from typing import Iterable

FONT = "Liberation Sans"
# Advance widths of Liberation Sans Regular (the charts' font) for the characters 32 to 126,
# in its units of 1/2048 em; metric-compatible with Arial, so any version of the font gives the same.
_ASCII = (
    569, 569, 727, 1139, 1139, 1821, 1366, 391, 682, 682, 797, 1196, 569, 682, 569, 569,
    1139, 1139, 1139, 1139, 1139, 1139, 1139, 1139, 1139, 1139, 569, 569, 1196, 1196, 1196, 1139,
    2079, 1366, 1366, 1479, 1479, 1366, 1251, 1593, 1479, 569, 1024, 1366, 1139, 1706, 1479, 1593,
    1366, 1593, 1479, 1366, 1251, 1479, 1366, 1933, 1366, 1366, 1251, 569, 569, 569, 961, 1139,
    682, 1139, 1139, 1024, 1139, 1139, 569, 1139, 1139, 455, 455, 1024, 455, 1706, 1139, 1139,
    1139, 1139, 682, 1024, 569, 1139, 1024, 1479, 1024, 1024, 1024, 684, 532, 684, 1196,
)
_EM = 2048
# any other character counts as a whole em, wider than almost every glyph: a label is cut early, never too late
_OTHER = _EM
ELLIPSIS = "\u2026"  # one em wide in the font


def width(text: str, size: float = 11) -> float:
    """The text's width in pixels at `size` px."""
    units = sum(_ASCII[code - 32] if 32 <= code < 127 else _OTHER for code in map(ord, text))
    return units * size / _EM


def fit(text: str, pixels: float, size: float = 11) -> str:
    """The text, or its longest start that fits in `pixels` with an ellipsis after it."""
    if width(text, size) <= pixels:
        return text
    room = pixels - width(ELLIPSIS, size)
    kept = 0.0
    for end, character in enumerate(text):
        kept += width(character, size)
        if kept > room:
            return text[:end] + ELLIPSIS
    return text


def fit_distinct(texts: Iterable[str], pixels: float, size: float = 11) -> list[str]:
    """Each text fitted to `pixels`, two different texts never cut to the same label (a chart's bands are its
    labels: a later one that would repeat an earlier label is told apart by its position, "… #3")."""
    shown: list[str] = []
    taken: set[str] = set()
    for position, text in enumerate(texts, start=1):
        label = fit(text, pixels, size)
        if label in taken:
            mark = f" #{position}"
            label = fit(text, pixels - width(mark, size), size) + mark
        taken.add(label)
        shown.append(label)
    return shown
