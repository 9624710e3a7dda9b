"""Property: whatever mix of defects, names, copies, appends and corrections arrives, every line is accounted for.

Hypothesis builds a few deliveries into raw/ (new files with hostile names, as CSV with a header, CSV without
one and JSON lines, with malformed lines (for JSON lines: broken, cut short, an array, a string), invalid values,
repeats, late events, gzip; appended lines; files corrected in place, or emptied to their header; the same
content under a new name; lines appended to a file while bronze reads it, after it was hashed) and runs the pipeline after each. After every run
the whole ledger must balance, each file's current version must count exactly the lines written to it (as it
was hashed: lines appended during the read wait for the next run), and at the end:
- gold and analytics equal a --full-refresh build of the same silver;
- silver holds exactly the events, and quarantine exactly the rejected lines, of a build from scratch over the
  raw files as they now are.

CI runs a few examples with a fixed seed; `make test-deep` runs many more (HYPOTHESIS_PROFILE=deep).
"""
from __future__ import annotations

import gzip
import json
import shutil
from unittest import mock
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clickstream import bronze
from clickstream.config import Config
from clickstream.context import Layout, RunContext
from clickstream.engines import create_engine
from clickstream.pipeline import run_layers, verify_all

sys.path.insert(0, str(Path(__file__).parent / "engines"))
from engine_support import read_table, table_differences  # noqa: E402

HEADER = "UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome\n"
EVENTS = ["page_view", "product_view", "add_to_cart", "purchase", "click"]
DEFECTS = ["short", "long", "open_quote", "stray_quote", "bad_utf8", "missing_user", "bad_timestamp", "negative",
           "out_of_range", "late"]
NAME_CHARACTERS = list("ab[]*?'\"; é日-_") + ["\n"]
# how a file is written -> its name's suffix (each read by its own source: see config_for)
KINDS = {"csv": ".csv", "headerless": ".txt", "jsonl": ".jsonl"}


@dataclass(frozen=True)
class Line:
    user: int
    minute: int
    day: int
    event: str
    defect: str | None

    def render(self, kind: str = "csv") -> bytes:
        if kind == "jsonl":
            return self.render_json()
        fields = self.fields()
        text = ",".join(fields)
        if self.defect == "short":
            text = ",".join(fields[:3])
        elif self.defect == "long":
            text += ",extra"
        elif self.defect == "open_quote":
            text = ",".join(fields[:4]) + ',"never closed,,'
        elif self.defect == "stray_quote":
            text = ",".join(fields[:4]) + ',"x"y,,'
        return _with_bad_byte(text.encode(), self.defect) + b"\n"

    def render_json(self) -> bytes:
        """The line as a JSON object, nested as trackers write them; the CSV defects as their JSON kin: an array
        (short), a key not mapped (long), broken JSON (open quote), a string (stray quote), an invalid byte."""
        fields = self.fields()
        record = {"user": fields[0] or None, "session": fields[1], "ts": fields[2], "event": fields[3],
                  "item": {"id": fields[4] or None, "price": float(fields[5]) if fields[5] else None}}
        if self.defect == "long":
            record["ref"] = {"campaign": "extra"}
        text = json.dumps(record)
        if self.defect == "short":
            text = json.dumps(fields[:3])
        elif self.defect == "open_quote":
            text = text[:-9]
        elif self.defect == "stray_quote":
            text = json.dumps(text)
        return _with_bad_byte(text.encode(), self.defect) + b"\n"

    def fields(self) -> list[str]:
        day = 1 if self.defect == "late" else self.day + 10  # a late line lands in an earlier week
        timestamp = f"2024-02-{day:02d} 10:{self.minute:02d}:00"
        product = "p1" if self.event in ("product_view", "add_to_cart", "purchase") else ""
        amount = "9.99" if self.event == "purchase" else ""
        fields = [str(self.user), "1", timestamp, self.event, product, amount, ""]
        if self.defect == "missing_user":
            fields[0] = ""
        elif self.defect == "bad_timestamp":
            fields[2] = "yesterday"
        elif self.defect == "out_of_range":
            fields[2] = "1900-01-01 00:00:00"
        elif self.defect == "negative":
            fields[3:6] = ["purchase", "p1", "-1.00"]
        return fields


def _with_bad_byte(data: bytes, defect: str | None) -> bytes:
    if defect == "bad_utf8":
        return data.replace(b"_", b"\xff_", 1) if b"_" in data else data + b"\xff"
    return data


lines = st.builds(Line, user=st.integers(0, 4), minute=st.integers(0, 20), day=st.integers(0, 3),
                  event=st.sampled_from(EVENTS), defect=st.one_of(st.none(), st.none(), st.sampled_from(DEFECTS)))
names = st.text(st.sampled_from(NAME_CHARACTERS), min_size=1, max_size=6).map(lambda text: f"f{text}")
kinds = st.sampled_from(["csv", "csv", "headerless", "jsonl"])


@dataclass
class RawFile:
    lines: list[bytes]
    truncated: bytes = b""  # a last line cut short, with no line break after it
    is_gzip: bool = False
    kind: str = "csv"

    def content(self) -> bytes:
        data = (HEADER.encode() if self.kind == "csv" else b"") + b"".join(self.lines) + self.truncated
        return gzip.compress(data, mtime=0) if self.is_gzip else data

    @property
    def records(self) -> int:
        return len(self.lines) + (1 if self.truncated else 0)


# one delivery: ("new", name, lines, truncated, gzip, kind) | ("append", i, lines) | ("correct", i, lines) | ("copy", i, name)
# | ("append_during_read", i, lines): appended by a writer while the next run's bronze reads raw/
operations = st.one_of(
    st.tuples(st.just("new"), names, st.lists(lines, min_size=1, max_size=12), st.booleans(),
              st.booleans(), kinds),
    st.tuples(st.just("append"), st.integers(0, 10), st.lists(lines, min_size=1, max_size=6)),
    st.tuples(st.just("correct"), st.integers(0, 10), st.lists(lines, min_size=0, max_size=8)),
    st.tuples(st.just("copy"), st.integers(0, 10), names),
    st.tuples(st.just("append_during_read"), st.integers(0, 10), st.lists(lines, min_size=1, max_size=4)),
    st.tuples(st.just("empty"), st.integers(0, 10)),  # corrected in place to its header alone: its events leave
)
deliveries = st.lists(st.lists(operations, min_size=1, max_size=3), min_size=1, max_size=4)


@dataclass
class Raw:
    folder: Path
    files: dict[str, RawFile] = field(default_factory=dict)
    copied: set[str] = field(default_factory=set)  # files that held another's content at some time
    during_read: list[tuple[int, list[Line]]] = field(default_factory=list)  # to append while bronze reads
    appended: dict[str, list[bytes]] = field(default_factory=dict)  # appended during the last read

    def apply(self, operation: tuple) -> None:
        kind = operation[0]
        existing = sorted(self.files)
        if kind == "append_during_read":
            self.during_read.append((operation[1], operation[2]))
        elif kind == "new":
            _, name, body, truncated, is_gzip, written = operation
            name = name + KINDS[written] + (".gz" if is_gzip else "")
            cut = body[-1].render(written).rstrip(b"\n")[:12] if truncated and not is_gzip else b""
            self.write(name, RawFile([line.render(written) for line in body], cut, is_gzip, written))
        elif not existing:
            return
        elif kind == "append":
            name = existing[operation[1] % len(existing)]
            file = self.files[name]
            self.write(name, RawFile(file.lines + [line.render(file.kind) for line in operation[2]], file.truncated,
                                     file.is_gzip, file.kind))
        elif kind == "correct":
            name = existing[operation[1] % len(existing)]
            file = self.files[name]
            kept = file.lines[: len(file.lines) // 2]
            self.write(name, RawFile(kept + [line.render(file.kind) for line in operation[2]], b"", file.is_gzip,
                                     file.kind))
        elif kind == "empty":
            name = existing[operation[1] % len(existing)]
            self.write(name, RawFile([], b"", self.files[name].is_gzip, self.files[name].kind))
        elif kind == "copy":
            original = existing[operation[1] % len(existing)]
            source = self.files[original]
            name = operation[2] + KINDS[source.kind] + (".gz" if source.is_gzip else "")
            self.write(name, RawFile(list(source.lines), source.truncated, source.is_gzip, source.kind))
            self.copied |= {original, name}

    def write(self, name: str, file: RawFile, on_disk: bool = True) -> None:
        same = {other for other, held in self.files.items() if other != name and held.content() == file.content()}
        if same:  # the same content under two names, by a copy or by chance
            self.copied |= same | {name}
        self.files[name] = file
        if on_disk:
            (self.folder / name).write_bytes(file.content())

    def append_while_read(self) -> None:
        """Append the lines waiting to a file (one that ends with a line break, not gzip), as a writer would once
        bronze has hashed raw/; the model learns of them after the run (`take_appended`)."""
        for index, body in self.during_read:
            plain = sorted(n for n, f in self.files.items() if not f.is_gzip and not f.truncated)
            if plain:
                name = plain[index % len(plain)]
                body = [line.render(self.files[name].kind) for line in body]
                with (self.folder / name).open("ab") as handle:
                    handle.write(b"".join(body))
                self.appended.setdefault(name, []).extend(body)
        self.during_read = []

    def take_appended(self) -> None:
        for name, body in self.appended.items():
            file = self.files[name]
            self.write(name, RawFile(file.lines + body, file.truncated, file.is_gzip, file.kind), on_disk=False)
        self.appended = {}


COLUMNS = ["UserID", "SessionID", "Timestamp", "EventType", "ProductID", "Amount", "Outcome"]
SOURCES = [{"name": "clickstream"},
           {"name": "headerless", "glob": "*.txt", "csv": {"header": False},
            "columns": {column: position for position, column in enumerate(COLUMNS)}},
           {"name": "tracker", "glob": "*.jsonl",
            "columns": {"UserID": "user", "SessionID": "session", "Timestamp": "ts", "EventType": "event",
                        "ProductID": "item.id", "Amount": "item.price", "Outcome": None}}]


def config_for(data: Path) -> Config:
    return Config.model_validate({"sources": SOURCES, "paths": {"data_dir": str(data),
                                                                "logs_dir": str(data.parent / f"logs-{data.name}")}})


def run_and_check(config: Config, raw: Raw) -> bool:
    """Run every layer, the waiting lines appended to raw/ once bronze has hashed it, then check the ledger
    against the files as hashed; the model then takes the lines appended. Whether any were."""
    scan_all = bronze._scan_all

    def hashed_then_appended(*args):
        scans = scan_all(*args)
        raw.append_while_read()
        return scans

    with mock.patch.object(bronze, "_scan_all", hashed_then_appended):
        run_layers(config)
    check_the_ledger(config, raw)
    appended = bool(raw.appended)
    raw.take_appended()
    return appended


def check_the_ledger(config: Config, raw: Raw) -> None:
    """Every file is ingested once (or known as a copy of one), counting exactly its lines; the ledger balances;
    bronze holds what its manifest records."""
    files, bronze_problems = verify_all(config)
    assert bronze_problems == []
    assert [f["source_file"] for f in files if not f["balanced"]] == []
    counted = {f["source_file"]: f["bronze_rows"] for f in files}
    engine = create_engine(config)
    try:
        manifest = bronze.load_manifest(RunContext(config=config, engine=engine, layout=Layout(config.paths.data_dir)))
    finally:
        engine.close()
    for name, file in raw.files.items():
        if name in manifest["copies"]:
            # skipped as a copy: what it holds is in the file it copied (which may since have grown)
            original = raw.files[manifest["copies"][name]["same_as"]]
            assert original.lines[:len(file.lines)] == file.lines and original.truncated in (b"", file.truncated)
        else:
            assert counted.get(name) == file.records, name


def silver_events(data: Path) -> Counter:
    return Counter(row["event_id"] for row in read_table(data / "silver").to_pylist())


def quarantined(data: Path, leave_out: set[str]) -> Counter:
    """The rejected lines, but those of files that held another file's content: which of two files with the same
    content is skipped as the copy depends on when each arrived."""
    table = read_table(data / "quarantine")
    if table is None:
        return Counter()
    columns = ["source_file", "rejection_reasons", "source_line", "raw_line", "UserID", "Timestamp", "Amount"]
    return Counter(tuple(row[c] for c in columns) for row in table.to_pylist() if row["source_file"] not in leave_out)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(deliveries)
# always tried: a file emptied to its header in place, beside another that keeps its events
@example([[("new", "fa", [Line(1, 0, 0, "page_view", None), Line(2, 1, 1, "purchase", None)], False, False, "csv"),
           ("new", "fb", [Line(3, 2, 2, "add_to_cart", None)], False, False, "csv")],
          [("empty", 0)]])
# and JSON lines and a headerless file with their defects, the last lines cut short
@example([[("new", "fj", [Line(1, 0, 0, "purchase", None), Line(2, 1, 1, "page_view", "short"),
                          Line(2, 2, 1, "click", "stray_quote"), Line(3, 3, 2, "page_view", "long"),
                          Line(3, 4, 2, "page_view", "open_quote")], True, False, "jsonl"),
           ("new", "fh", [Line(4, 0, 0, "purchase", None), Line(4, 1, 0, "click", "short")], True, False,
            "headerless")],
          [("append", 0, [Line(5, 5, 3, "page_view", None)])]])
def test_every_line_is_accounted_for_and_gold_equals_a_rebuild(steps):
    with tempfile.TemporaryDirectory() as workspace:
        root = Path(workspace)
        data = root / "data"
        raw = Raw(data / "raw")
        raw.folder.mkdir(parents=True)
        config = config_for(data)
        ran = appended = False
        for step in steps:
            for operation in step:
                raw.apply(operation)
            if not raw.files:
                continue
            appended = run_and_check(config, raw)
            ran = True
        if appended:  # lines appended during the last read: the next run takes them
            raw.during_read = []
            run_and_check(config, raw)
        if not ran or read_table(data / "silver") is None:  # no event yet: no star to compare
            return
        # gold and analytics as the runs left them = rebuilt from all of silver
        refreshed = root / "refreshed"
        shutil.copytree(data, refreshed, symlinks=True)
        run_layers(config_for(refreshed), ("gold", "analytics"), full_refresh=True)
        for table in ("gold/fct_events", "gold/dim_sessions", "gold/dim_users", "gold/dim_products",
                      "gold/dim_date", "analytics/user_journey", "analytics/user_days", "analytics/daily_activity",
                      "analytics/funnel_users", "analytics/conversion_funnel", "analytics/retention_users",
                      "analytics/retention", "analytics/carts", "analytics/cart_abandonment_daily",
                      "analytics/visit_paths", "analytics/paths", "analytics/purchase_events",
                      "analytics/purchase_paths"):
            assert table_differences(read_table(refreshed / table), read_table(data / table)) == [], table
        # silver and quarantine as the runs left them = built from scratch over the raw files as they are now
        scratch = root / "scratch"
        shutil.copytree(raw.folder, scratch / "raw")
        run_layers(config_for(scratch))
        assert silver_events(data) == silver_events(scratch)
        assert quarantined(data, raw.copied) == quarantined(scratch, raw.copied)
