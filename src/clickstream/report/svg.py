"""Drawing the report's charts: Vega-Lite specs to static SVG by vl-convert, checked to hold no code.

vl-convert draws on one core and holds Python's lock while it draws, so the page's charts are drawn by helper
processes, one per core (at most `MAX_HELPERS`): started once per process (the pipeline starts them while the
layers run, so a run does not wait for them) and kept for the next page (`watch`, tests). Each takes the next
chart as the sections make them, while this process goes on making the page. On one core, or where a helper
cannot start or dies, this process draws the charts left itself.

This module imports neither the charts nor the pipeline: a helper process loads only what drawing needs.
"""
from __future__ import annotations

import atexit
import collections
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from clickstream.report.escape import escape_terminal

log = logging.getLogger(__name__)

_ACTIVE_TAGS = {"script", "foreignobject", "iframe", "object", "embed", "handler", "listener"}

# One call at a time: the pipeline's warm-up thread and the report may both call vl-convert in this process, whose
# renderer is not documented as safe to share between threads.
_RENDERER = threading.Lock()

# the smallest chart that loads vl-convert's engine and the report's font
_WARM_UP_SPEC = {"data": {"values": [{"x": 1}]}, "mark": "point", "config": {"font": "Liberation Sans"},
                 "encoding": {"x": {"field": "x", "type": "quantitative"}}}


def _runs_code(svg: str) -> bool:
    """Whether an SVG holds an element or attribute that could run code (text content is only text)."""
    import xml.etree.ElementTree as ElementTree

    for element in ElementTree.fromstring(svg).iter():
        if element.tag.rsplit("}", 1)[-1].lower() in _ACTIVE_TAGS:
            return True
        for name, value in element.attrib.items():
            name = name.rsplit("}", 1)[-1].lower()
            if name.startswith("on") or (name == "href" and not value.startswith("#")):
                return True
    return False


def _printable(value: Any) -> Any:
    """Every text of a spec with its control characters and lone surrogates (from undecodable file names) shown
    as escapes: as text, never as a line break, and never a string vl-convert cannot take (it aborts)."""
    if isinstance(value, str):
        return escape_terminal(value)
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable(v) for v in value]
    return value


def _draw(spec: dict) -> str:
    """vl-convert's SVG of a printable spec (in this process or a helper)."""
    import vl_convert

    with _RENDERER:
        return vl_convert.vegalite_to_svg(spec)


def _checked(svg: str) -> str:
    if _runs_code(svg):
        raise ValueError("a chart's SVG holds an element or attribute that could run code")
    return svg


def to_svg(spec: dict) -> str:
    """The chart as one static SVG element; refuses any SVG that could run code (data is escaped by Vega, and
    this makes sure)."""
    return _checked(_draw(_printable(spec)))


def warm_up() -> None:
    """Start vl-convert's engine in this process (about 0.4 s, once per process). Only the smallest chart: drawing
    one of each kind as well cost a run more CPU, beside the layers, than it saved the page (docs/REPORT.md)."""
    _draw(_WARM_UP_SPEC)


# the helper processes (`start_helpers`); the lock guards the list
_HELPERS: list[_Helper] = []
_HELPERS_LOCK = threading.Lock()
MAX_HELPERS = 4  # each holds about 150 MB; more than four gain little on a page of about twenty charts


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Helper:
    """A Python process drawing charts: a spec's JSON in, its SVG out, each as a length line and bytes
    over its standard input and output. Started as `python -c` (not by multiprocessing, which would import the
    caller's main script again in the new process)."""

    def __init__(self) -> None:
        import clickstream

        package_root = str(Path(clickstream.__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root,
                                                                          os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen([sys.executable, "-c", "from clickstream.report.svg import serve; serve()"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        env=env)
        self.lock = threading.Lock()

    def draw(self, spec: dict) -> str:
        """The helper's SVG of a printable spec; OSError when the helper is gone."""
        _send(self.process.stdin, json.dumps(spec).encode())
        reply = _receive(self.process.stdout)
        if reply is None:
            raise OSError("the chart helper process ended")
        if reply.startswith(b"!"):
            raise RuntimeError(reply[1:].decode(errors="replace"))
        return reply.decode()

    def stop(self) -> None:
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _send(stream: Any, data: bytes) -> None:
    stream.write(b"%d\n" % len(data) + data)
    stream.flush()


def _receive(stream: Any) -> bytes | None:
    line = stream.readline()
    if not line:
        return None
    return stream.read(int(line))


def serve() -> None:
    """The helper process's loop: warm up, then draw each spec sent until standard input closes."""
    warm_up()
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    while (request := _receive(requests)) is not None:
        try:
            reply = _draw(json.loads(request)).encode()
        except Exception as exc:  # noqa: BLE001 - the caller draws this chart itself and says why
            reply = b"!" + str(exc).encode(errors="replace")
        _send(replies, reply)


def start_helpers() -> list[_Helper]:
    """The helper processes, started on the first call (one per core, at most MAX_HELPERS); none on one core or
    where they cannot start."""
    with _HELPERS_LOCK:
        wanted = min(_cores(), MAX_HELPERS) if _cores() > 1 else 0
        while len(_HELPERS) < wanted:
            try:
                helper = _Helper()
            except OSError as exc:
                log.debug("report: a chart helper process did not start (%s); this process draws", exc)
                break
            atexit.register(helper.stop)
            _HELPERS.append(helper)
        return list(_HELPERS)


def helper_pids() -> list[int]:
    """The helper processes running now (the run's cost counts their CPU, I/O and memory)."""
    with _HELPERS_LOCK:
        return [helper.process.pid for helper in _HELPERS]


def _drop_helper(helper: _Helper) -> None:
    with _HELPERS_LOCK:
        if helper in _HELPERS:
            _HELPERS.remove(helper)
    helper.stop()


class Drawing:
    """The page's charts by name: `add` as each section makes its chart (the helpers take them from then on),
    `svgs` at the end."""

    def __init__(self) -> None:
        self.specs: dict[str, dict] = {}
        self._queue: collections.deque[str] = collections.deque()
        self._drawn: dict[str, str] = {}
        self._more = threading.Condition()
        self._closed = False
        self._feeders: list[threading.Thread] | None = None

    def add(self, name: str, spec: dict) -> None:
        self.specs[name] = spec
        with self._more:
            self._queue.append(name)
            self._more.notify()
        if self._feeders is None:
            self._feeders = [threading.Thread(target=self._feed, args=(helper,), name="chart-helper", daemon=True)
                             for helper in start_helpers()]
            for feeder in self._feeders:
                feeder.start()

    def _next(self, wait: bool) -> str | None:
        """The next chart to draw, waiting (for a helper) while the sections may add more; None when none is
        left."""
        with self._more:
            while wait and not self._queue and not self._closed:
                self._more.wait()
            return self._queue.popleft() if self._queue else None

    def _feed(self, helper: _Helper) -> None:
        while (name := self._next(wait=True)) is not None:
            try:
                with helper.lock:  # held per chart: a page given up on (close) never keeps a helper
                    self._drawn[name] = helper.draw(_printable(self.specs[name]))
            except (OSError, ValueError, RuntimeError) as exc:
                log.debug("report: a chart helper failed on %s (%s); this process draws it", name, exc)
                with self._more:
                    self._queue.append(name)
                if not isinstance(exc, RuntimeError):  # the process is gone or out of step: not reused
                    _drop_helper(helper)
                return

    def close(self) -> None:
        """No more charts: the helpers' threads end once the charts they took are drawn."""
        with self._more:
            self._closed = True
            self._more.notify_all()

    def svgs(self) -> dict[str, str]:
        """Every chart's checked SVG, by name in the order added."""
        self.close()
        for feeder in self._feeders or []:
            feeder.join()
        drawn = {name: _checked(svg) for name, svg in self._drawn.items()}
        while (name := self._next(wait=False)) is not None:  # no helper, or one gave it back
            drawn[name] = to_svg(self.specs[name])
        return {name: drawn[name] for name in self.specs}
