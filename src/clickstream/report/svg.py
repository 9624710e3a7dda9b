"""Drawing the report's charts as static SVG, here in Python: scales, ticks, number formats, axes, legends and
marks, every text escaped.

No renderer and no JavaScript engine: a page of about twenty charts is drawn in milliseconds, in the process that
writes it. Texts are placed by their widths in the charts' font (`measure`), with room for a wider fallback
font. Each finished SVG is parsed once more and refused if it holds anything that could run code
(`checked`): a value from the data is only ever a text node or an escaped attribute, and this makes sure.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from clickstream.report import measure
from clickstream.report.escape import escape_markup

SIZE = 11  # px: axis labels, titles, legends
TEXT = "#333333"
GRID = "#eeeeee"
DOMAIN = "#999999"
WIDER = 1.15  # room for a fallback font wider than the one measured (DejaVu Sans is about a tenth wider)
TICK = 5  # px of a tick mark
GAP = 3  # px between a tick and its label

_ACTIVE_TAGS = {"script", "foreignobject", "iframe", "object", "embed", "handler", "listener", "animate", "set"}


def _n(value: float) -> str:
    """A coordinate, to a tenth of a pixel."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


# ---- scales


def tick_step(span: float, count: int) -> float:
    """The step of about `count` ticks over `span`: 1, 2 or 5 times a power of ten (as d3's ticks)."""
    if span <= 0:
        return 1.0
    raw = span / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    error = raw / power
    factor = 10 if error >= math.sqrt(50) else 5 if error >= math.sqrt(10) else 2 if error >= math.sqrt(2) else 1
    return factor * power


def _multiples(step: float, last: int) -> list[float]:
    """0, step, 2 step ... last step (rounded off the float error of the products)."""
    return [round(i * step, 12) for i in range(last + 1)]


def ticks(top: float, count: int) -> list[float]:
    """Ticks from 0 up to `top` (included when it falls on one), about `count` of them."""
    step = tick_step(top, count)
    return _multiples(step, int(math.floor(top / step + 1e-9)))


def nice(top: float, count: int) -> tuple[float, list[float]]:
    """A domain from 0 that ends on a tick at or above `top` (1 for an empty scale), and its ticks: one step,
    chosen for `top`, for both."""
    if top <= 0:
        return 1.0, ticks(1.0, count)
    step = tick_step(top, count)
    steps = math.ceil(top / step - 1e-9)
    return steps * step, _multiples(step, steps)


@dataclass(frozen=True)
class Linear:
    """A quantity scale from [0, top] onto [start, end] pixels (end may be below start: a y axis)."""
    top: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        return self.start + (self.end - self.start) * (value / self.top if self.top else 0.0)


def bands(count: int, start: float, length: float, inner: float = 0.1, outer: float = 0.05
          ) -> tuple[list[float], float]:
    """The starts and the width of `count` bands over `length` pixels, with Vega's default padding."""
    step = length / max(1, count - inner + 2 * outer)
    return [start + step * (outer + i) for i in range(count)], step * (1 - inner)


# ---- number formats


def plain(value: float) -> str:
    """Thousands separators, no trailing zeros: "2,500", "0.5"."""
    return f"{value:,.10g}" if abs(value) < 1e15 else f"{value:,.0f}"


def si_format(top: float) -> Callable[[float], str]:
    """SI prefixes by the largest tick ("150k", "0.2M"), 0 always "0"."""
    unit, prefix = next(((10 ** p, s) for p, s in ((12, "T"), (9, "G"), (6, "M"), (3, "k")) if top >= 10 ** p),
                        (1, ""))
    return lambda v: "0" if v == 0 else f"{v / unit:.6g}{prefix}"


def quantity_format(top: float) -> Callable[[float], str]:
    """Counts and money: plain below a hundred thousand, SI prefixes from there."""
    return si_format(top) if top >= 100_000 else plain


def percent(value: float) -> str:
    """A share as a percentage: 0.025 -> "2.5%"."""
    return f"{value * 100:.6g}%"


def decimal(value: float) -> str:
    """Up to two decimals, no trailing zeros, thousands separators: "1,234.5"."""
    text = f"{value:,.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# ---- the drawing


def _tip(title: str | None) -> str:
    """A mark's hover text, as its SVG <title> (none for None)."""
    return f"<title>{escape_markup(title)}</title>" if title is not None else ""


class Canvas:
    """An SVG's parts in drawing order; groups carry Vega's role classes (role-axis, role-mark...), which the
    report's browser test reads."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def open(self, role: str) -> None:
        self.parts.append(f'<g class="role-{role}">')

    def close(self) -> None:
        self.parts.append("</g>")

    def rect(self, x: float, y: float, width: float, height: float, fill: str, title: str | None = None) -> None:
        self.parts.append(f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(max(0.0, width))}" '
                          f'height="{_n(max(0.0, height))}" fill="{fill}">{_tip(title)}</rect>')

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str = DOMAIN) -> None:
        self.parts.append(f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{stroke}"/>')

    def polyline(self, points: Sequence[tuple[float, float]], stroke: str, width: float = 1.5) -> None:
        joined = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
        self.parts.append(f'<polyline points="{joined}" fill="none" stroke="{stroke}" stroke-width="{width}"/>')

    def diamond(self, x: float, y: float, size: float, fill: str, title: str | None = None) -> None:
        self.parts.append(f'<path d="M{_n(x)},{_n(y - size)}L{_n(x + size)},{_n(y)}L{_n(x)},{_n(y + size)}'
                          f'L{_n(x - size)},{_n(y)}Z" fill="{fill}">{_tip(title)}</path>')

    def circle(self, x: float, y: float, radius: float, fill: str, title: str | None = None) -> None:
        self.parts.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{_n(radius)}" fill="{fill}">{_tip(title)}</circle>')

    def text(self, x: float, y: float, value: object, anchor: str = "start", size: float = SIZE,
             colour: str = TEXT, bold: bool = False, angle: float = 0) -> None:
        """A text whose middle is at height y (its baseline a third of its size below)."""
        turn = f' transform="rotate({_n(angle)} {_n(x)} {_n(y)})"' if angle else ""
        weight = ' font-weight="bold"' if bold else ""
        self.parts.append(f'<text x="{_n(x)}" y="{_n(y + size * 0.35)}" text-anchor="{anchor}" '
                          f'font-size="{_n(size)}" fill="{colour}"{weight}{turn}>{escape_markup(str(value))}</text>')

    def svg(self, width: float, height: float, label: str) -> str:
        """The finished SVG, `width` by `height` pixels, named `label` for screen readers; checked."""
        return checked(
            f'<svg xmlns="http://www.w3.org/2000/svg" class="marks" width="{math.ceil(width)}" '
            f'height="{math.ceil(height)}" viewBox="0 0 {math.ceil(width)} {math.ceil(height)}" role="img" '
            f'aria-label="{escape_markup(label)}" font-family="{measure.FONT}">'
            f'<rect width="100%" height="100%" fill="white"/>{"".join(self.parts)}</svg>')


def runs_code(svg: str) -> bool:
    """Whether an SVG holds an element or attribute that could run code (text content is only text)."""
    for element in ElementTree.fromstring(svg).iter():
        if element.tag.rsplit("}", 1)[-1].lower() in _ACTIVE_TAGS:
            return True
        for name, value in element.attrib.items():
            name = name.rsplit("}", 1)[-1].lower()
            if name.startswith("on") or (name == "href" and not value.startswith("#")):
                return True
    return False


def checked(svg: str) -> str:
    if runs_code(svg):
        raise ValueError("a chart's SVG holds an element or attribute that could run code")
    return svg


# ---- axes and legends


def widest(labels: Iterable[str], size: float = SIZE) -> float:
    """The widest label's pixels, with room for a wider fallback font."""
    return max((measure.width(label, size) for label in labels), default=0.0) * WIDER


def _segments(canvas: Canvas, role: str, segments: Iterable[tuple[float, float, float, float]],
              stroke: str = DOMAIN) -> None:
    """A group of straight lines, each (x1, y1, x2, y2)."""
    canvas.open(role)
    for x1, y1, x2, y2 in segments:
        canvas.line(x1, y1, x2, y2, stroke)
    canvas.close()


def left_axis(canvas: Canvas, x: float, places: Sequence[tuple[float, str]], top: float, bottom: float,
              title: str | None = None, grid_to: float | None = None) -> None:
    """A vertical axis at `x`: a tick and a label at each (y, label), from `top` to `bottom`; grid lines across
    to `grid_to`; the title turned along it, left of the widest label."""
    if grid_to is not None:
        _segments(canvas, "axis-grid", [(x, y, grid_to, y) for y, _ in places], GRID)
    canvas.open("axis")
    _segments(canvas, "axis-tick", [(x - TICK, y, x, y) for y, _ in places])
    canvas.open("axis-label")
    for y, label in places:
        canvas.text(x - TICK - GAP, y, label, anchor="end")
    canvas.close()
    _segments(canvas, "axis-domain", [(x, top, x, bottom)])
    if title:
        canvas.open("axis-title")
        canvas.text(x - TICK - GAP - widest(label for _, label in places) - 8, (top + bottom) / 2, title,
                    anchor="middle", angle=-90)
        canvas.close()
    canvas.close()


def bottom_axis(canvas: Canvas, y: float, places: Sequence[tuple[float, str]], left: float, right: float,
                title: str | None = None, grid_from: float | None = None, slanted: bool = False) -> float:
    """A horizontal axis at `y`: a tick and a label at each (x, label), upright or slanted by 45 degrees; grid
    lines up to `grid_from`; the title centred below. Returns the height it takes below `y`."""
    if grid_from is not None:
        _segments(canvas, "axis-grid", [(x, grid_from, x, y) for x, _ in places], GRID)
    canvas.open("axis")
    _segments(canvas, "axis-tick", [(x, y, x, y + TICK) for x, _ in places])
    canvas.open("axis-label")
    for x, label in places:
        if slanted:
            canvas.text(x + 3, y + TICK + GAP + 2, label, anchor="end", angle=-45)
        else:
            canvas.text(x, y + TICK + GAP + SIZE / 2, label, anchor="middle")
    canvas.close()
    _segments(canvas, "axis-domain", [(left, y, right, y)])
    below = TICK + GAP + (widest(label for _, label in places) * 0.72 + 6 if slanted else SIZE + 2)
    if title:
        canvas.open("axis-title")
        canvas.text((left + right) / 2, y + below + 6 + SIZE / 2, title, anchor="middle")
        canvas.close()
        below += 8 + SIZE
    canvas.close()
    return below


def legend(canvas: Canvas, x: float, y: float, entries: Sequence[tuple[str, str]]) -> None:
    """A row of coloured squares, each followed by its name, from (x, y) (the row's middle)."""
    canvas.open("legend")
    for name, colour in entries:
        canvas.rect(x, y - 5, 10, 10, colour)
        canvas.text(x + 14, y, name)
        x += 14 + widest([name]) + 14
    canvas.close()


LEGEND_HEIGHT = 22
