"""Tests for clickstream.generate: real files in tmp_path, checked by reading them back."""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from dataclasses import fields, replace
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from clickstream.generate import DefectRates, GenerateResult, generate

HEADER = ["UserID", "SessionID", "Timestamp", "EventType", "ProductID", "Amount", "Outcome"]
TS_FMT = "%Y-%m-%d %H:%M:%S.%f"
EVENTS = {"page_view", "product_view", "add_to_cart", "purchase", "click", "login", "logout"}
PRODUCT_EVENTS = {"product_view", "add_to_cart", "purchase"}
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")
PROD_RE = re.compile(r"^prod_\d{4,}$")
AMOUNT_RE = re.compile(r"^\d+\.\d{2}$")

# Rates high enough that every defect kind shows up many times in a small file.
HIGH = DefectRates(
    missing_user_id=0.01,
    missing_event_type=0.01,
    missing_product_id=0.01,
    missing_amount=0.005,
    invalid_timestamp=0.01,
    invalid_amount=0.004,
    negative_amount=0.004,
    duplicate=0.01,
    late=0.01,
)


def read_rows(result: GenerateResult) -> list[tuple[int, tuple[str, ...]]]:
    """(file index, 7 fields) for every data row, checking each file's header."""
    out = []
    for i, path in enumerate(result.files):
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            assert next(reader) == HEADER
            out.extend((i, tuple(row)) for row in reader)
    return out


def parse_ts(text: str) -> datetime | None:
    """Strict TS_FMT parse (regex + fromisoformat: same result as strptime, much faster)."""
    if not TS_RE.match(text):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def broken_rules(row: tuple[str, ...]) -> list[str]:
    """The quality rules a row breaks, derived only from the documented format."""
    user, _session, ts, event, product, amount, _outcome = row
    broken = []
    if user == "":
        broken.append("missing_user_id")
    if event == "":
        broken.append("missing_event_type")
    if event in PRODUCT_EVENTS and product == "":
        broken.append("missing_product_id")
    if parse_ts(ts) is None:
        broken.append("invalid_timestamp")
    if event == "purchase":
        if amount == "":
            broken.append("missing_amount")
        else:
            try:
                value = float(amount)
            except ValueError:
                broken.append("invalid_amount")
            else:
                if value < 0:
                    broken.append("negative_amount")
    return broken


def slice_start(start: str, days: int, files: int, k: int) -> datetime:
    return datetime.fromisoformat(start) + timedelta(days=days) * k / files


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", rows=5000, seed=7, files=2)
    b = generate(tmp_path / "b", rows=5000, seed=7, files=2)
    c = generate(tmp_path / "c", rows=5000, seed=8, files=2)
    assert [p.name for p in a.files] == ["clickstream_7_001.csv", "clickstream_7_002.csv"]
    for pa_, pb in zip(a.files, b.files):
        assert pa_.read_bytes() == pb.read_bytes()
    assert a.defects == b.defects and a.rows_per_file == b.rows_per_file
    assert [p.read_bytes() for p in a.files] != [p.read_bytes() for p in c.files]


# ----------------------------------------------------------------------------- format


def test_exact_total_header_and_column_formats(tmp_path: Path) -> None:
    rows = 20_000
    res = generate(tmp_path / "out" / "nested", rows=rows, seed=1)
    assert res.total_rows == rows == sum(res.rows_per_file.values())
    assert len(res.files) == 1 and res.files[0].name == "clickstream_1_001.csv"
    assert not list(res.files[0].parent.glob("*.tmp"))
    raw = res.files[0].read_text()
    assert raw.splitlines()[0] == ",".join(HEADER)
    assert '""' not in raw  # empty fields are truly empty, never quoted
    assert raw.endswith("\n") and "\r" not in raw

    data = read_rows(res)
    assert len(data) == rows
    clean = [r for _, r in data if not broken_rules(r)]
    assert len(clean) > 0.98 * rows
    prices: dict[str, str] = {}
    for user, session, ts, event, product, amount, outcome in clean:
        assert user.isdigit()
        assert 1 <= int(session) <= 10
        assert datetime.strptime(ts, TS_FMT) == parse_ts(ts)
        assert datetime(2024, 1, 1) <= parse_ts(ts) < datetime(2024, 3, 31)
        assert event in EVENTS
        assert (product != "") == (event in PRODUCT_EVENTS)
        if product:
            assert PROD_RE.match(product)
        assert (amount != "") == (event == "purchase")
        assert outcome == ("purchase" if event == "purchase" else "")
        if amount:
            assert AMOUNT_RE.match(amount) and 5.0 <= float(amount) <= 500.0
            assert prices.setdefault(product, amount) == amount  # price belongs to the product
    # Clean lines carry no quotes at all: ids and numbers are unquoted.
    assert all('"' not in line for line in raw.splitlines() if "purchase" not in line)


def test_tiny_outputs(tmp_path: Path) -> None:
    one = generate(tmp_path / "one", rows=1, defects=DefectRates.none())
    assert one.total_rows == 1 and len(read_rows(one)) == 1
    three = generate(tmp_path / "three", rows=3, files=3, defects=DefectRates.none())
    assert three.total_rows == 3 and len(three.files) == 3
    assert sum(three.rows_per_file.values()) == 3


# ----------------------------------------------------------------------------- defects


@pytest.mark.parametrize("rates", [None, HIGH], ids=["default-rates", "high-rates"])
def test_defect_counts_match_independent_classification(
    tmp_path: Path, rates: DefectRates | None
) -> None:
    rows, files, days = 50_000, 3, 90
    res = generate(tmp_path, rows=rows, seed=11, files=files, defects=rates)
    expected_rates = rates or DefectRates()
    for f in fields(DefectRates):  # every kind reported, at round(rate * rows)
        want = int(getattr(expected_rates, f.name) * rows + 0.5)
        assert res.defects[f.name] == want, f.name

    data = read_rows(res)
    assert len(data) == rows
    found: Counter[str] = Counter()
    for _, row in data:
        broken = broken_rules(row)
        assert len(broken) <= 1, (row, broken)  # each defect breaks exactly one rule
        found.update(broken)

    # Duplicates: exact copies of clean rows; everything else distinct.
    copies = Counter(row for _, row in data)
    dup_rows = [row for row, n in copies.items() if n > 1]
    assert all(not broken_rules(r) for r in dup_rows)
    found["duplicate"] = sum(n - 1 for n in copies.values())

    # Late: clean rows in the last file whose time belongs to an earlier slice.
    last_start = slice_start("2024-01-01", days, files, files - 1)
    found["late"] = sum(
        1
        for i, row in data
        if i == files - 1 and not broken_rules(row) and parse_ts(row[2]) < last_start
    )
    assert dict(found) == {k: v for k, v in res.defects.items() if v}


def test_defects_as_seen_by_duckdb(tmp_path: Path) -> None:
    res = generate(tmp_path, rows=20_000, seed=5, defects=HIGH)
    path = str(res.files[0])
    con = duckdb.connect()
    q = f"""
        SELECT count(*),
               count(*) FILTER (WHERE UserID IS NULL),
               count(*) FILTER (WHERE EventType IS NULL),
               count(*) FILTER (WHERE Timestamp IS NOT NULL
                                AND try_strptime(Timestamp, '{TS_FMT}') IS NULL
                                AND try_cast(Timestamp AS TIMESTAMP) IS NULL),
               count(*) FILTER (WHERE EventType = 'purchase' AND Amount IS NULL),
               count(*) FILTER (WHERE EventType = 'purchase' AND Amount IS NOT NULL
                                AND try_cast(Amount AS DOUBLE) IS NULL),
               count(*) FILTER (WHERE try_cast(Amount AS DOUBLE) < 0),
               count(*) - (SELECT count(*) FROM (SELECT DISTINCT * FROM t))
        FROM t
    """
    con.execute(
        f"CREATE TABLE t AS SELECT * FROM read_csv('{path}', header=true, all_varchar=true)"
    )
    got = con.execute(q).fetchone()
    d = res.defects
    assert got == (
        20_000,
        d["missing_user_id"],
        d["missing_event_type"],
        d["invalid_timestamp"],
        d["missing_amount"],
        d["invalid_amount"],
        d["negative_amount"],
        d["duplicate"],
    )
    # Header names and order as the pipeline expects.
    assert [c[0] for c in con.execute("DESCRIBE t").fetchall()] == HEADER


def test_no_defects_means_all_rows_clean_and_distinct(tmp_path: Path) -> None:
    res = generate(tmp_path, rows=10_000, seed=2, files=2, defects=DefectRates.none())
    assert set(res.defects.values()) == {0}
    data = [r for _, r in read_rows(res)]
    assert all(not broken_rules(r) for r in data)
    assert len(set(data)) == len(data)
    assert len({(r[0], r[2]) for r in data}) == len(data)  # (user, timestamp) unique


# ----------------------------------------------------------------------------- sessions / realism


def _visits(res: GenerateResult) -> dict[str, list[list[tuple[str, ...]]]]:
    """Clean rows per user split into visits on a 30-minute inactivity gap."""
    by_user: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for _, row in read_rows(res):
        if not broken_rules(row):
            by_user[row[0]].append(row)
    out: dict[str, list[list[tuple[str, ...]]]] = {}
    for user, rows in by_user.items():
        rows.sort(key=lambda r: r[2])
        visits = [[rows[0]]]
        for prev, cur in zip(rows, rows[1:]):
            gap = (parse_ts(cur[2]) - parse_ts(prev[2])).total_seconds()
            assert gap > 0
            # Bimodal gaps: within a visit 5 s..10 min, between visits at least an hour.
            assert 5 <= gap <= 600 or gap >= 3600, gap
            if gap > 1800:
                visits.append([cur])
            else:
                visits[-1].append(cur)
        out[user] = visits
    return out


def test_sessions_split_on_30_minute_gap_and_session_ids_wrap(tmp_path: Path) -> None:
    res = generate(tmp_path, rows=30_000, seed=4, defects=DefectRates.none())
    visits = _visits(res)
    n_visits = sum(len(v) for v in visits.values())
    wrapped_pairs = 0
    for user_visits in visits.values():
        expected = 1
        for visit in user_visits:
            assert {r[1] for r in visit} == {str(expected)}  # SessionID = visit no. % 10 + 1
            expected = expected % 10 + 1
        wrapped_pairs += len(user_visits) > 10
    assert wrapped_pairs > 0  # some (UserID, SessionID) pairs span several visits
    assert n_visits > 2 * len(visits)
    per_user = sorted(sum(len(v) for v in vs) for vs in visits.values())
    single_visit_users = sum(1 for vs in visits.values() if len(vs) == 1)
    assert single_visit_users > 0.03 * len(visits)
    assert per_user[-1] > 5 * (sum(per_user) / len(per_user))  # heavy users exist
    starts = Counter(v[0][3] for vs in visits.values() for v in vs)
    assert set(starts) <= {"login", "page_view"}
    assert sum(1 for vs in visits.values() for v in vs if v[-1][3] == "logout") > 0.1 * n_visits


def test_funnel_products_and_rhythm(tmp_path: Path) -> None:
    res = generate(tmp_path, rows=40_000, seed=9, defects=DefectRates.none())
    visits = _visits(res)
    kinds: Counter[str] = Counter()
    views: Counter[str] = Counter()
    for user_visits in visits.values():
        for visit in user_visits:
            viewed, carted = set(), set()
            for r in visit:
                kinds[r[3]] += 1
                if r[3] == "product_view":
                    viewed.add(r[4])
                    views[r[4]] += 1
                elif r[3] == "add_to_cart":
                    assert r[4] in viewed  # carts follow a view of the same product
                    carted.add(r[4])
                elif r[3] == "purchase":
                    assert r[4] in carted  # purchases follow a cart of the same product
    assert 0.2 <= kinds["add_to_cart"] / kinds["product_view"] <= 0.35
    assert 0.25 <= kinds["purchase"] / kinds["add_to_cart"] <= 0.45
    assert kinds["click"] > 0 and kinds["page_view"] > 0 and kinds["logout"] > 0

    # Zipf-like popularity: the top 10% of products get a large share of views.
    ranked = sorted(views.values(), reverse=True)
    assert sum(ranked[: max(1, len(ranked) // 10)]) > 0.4 * sum(ranked)

    # Weekly and daily rhythm.
    per_weekday: Counter[bool] = Counter()
    hours: Counter[int] = Counter()
    for _, row in read_rows(res):
        t = parse_ts(row[2])
        per_weekday[t.weekday() >= 5] += 1
        hours[t.hour] += 1
    dates = [datetime(2024, 1, 1) + timedelta(days=d) for d in range(90)]
    weekend_days = sum(1 for d in dates if d.weekday() >= 5)
    weekend_rate = per_weekday[True] / weekend_days
    weekday_rate = per_weekday[False] / (90 - weekend_days)
    assert 1.1 < weekend_rate / weekday_rate < 1.6
    night = sum(hours[h] for h in (2, 3, 4))
    evening = sum(hours[h] for h in (19, 20, 21))
    assert night < 0.25 * evening


# ----------------------------------------------------------------------------- files / late


def test_files_are_ordered_time_slices_with_late_rows_in_last(tmp_path: Path) -> None:
    files, days = 4, 28
    rates = replace(DefectRates.none(), late=0.01)
    res = generate(tmp_path, rows=20_000, seed=6, files=files, days=days, defects=rates)
    assert res.defects["late"] == 200
    data = read_rows(res)
    assert [p.name for p in res.files] == [f"clickstream_6_{i:03d}.csv" for i in range(1, 5)]
    assert res.rows_per_file == dict(Counter(res.files[i].name for i, _ in data))
    last_start = slice_start("2024-01-01", days, files, files - 1)
    late = [row for i, row in data if i == files - 1 and parse_ts(row[2]) < last_start]
    assert len(late) == 200 and all(not broken_rules(r) for r in late)
    # Late rows come from the earliest slice.
    assert all(parse_ts(r[2]) < slice_start("2024-01-01", days, files, 1) for r in late)
    late_set = set(late)
    for k in range(files):
        lo = slice_start("2024-01-01", days, files, k)
        hi = slice_start("2024-01-01", days, files, k + 1)
        times = [parse_ts(r[2]) for i, r in data if i == k and r not in late_set]
        assert times and all(lo <= t < hi for t in times)


def test_single_file_reports_no_late_rows(tmp_path: Path) -> None:
    res = generate(tmp_path, rows=5000, defects=HIGH)
    assert res.defects["late"] == 0 and len(res.defects) == 9


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rows": 0}, "rows must be >= 1"),
        ({"rows": 10, "files": 0}, "files must be >= 1"),
        ({"rows": 3, "files": 4}, r"files \(4\) must not exceed rows \(3\)"),
        ({"rows": 10, "days": 0}, "days must be >= 1"),
        ({"rows": 10, "start": "yesterday"}, "start must be an ISO date"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate(tmp_path, **kwargs)
    assert not list(tmp_path.glob("*.csv"))


@pytest.mark.parametrize("value", [-0.01, 0.21, float("nan")])
def test_bad_rates(tmp_path: Path, value: float) -> None:
    with pytest.raises(ValueError, match=r"defect rate duplicate=.* outside \[0, 0.2\]"):
        generate(tmp_path, rows=100, defects=DefectRates(duplicate=value))


def test_rates_that_leave_no_clean_rows(tmp_path: Path) -> None:
    too_many = DefectRates(**{f.name: 0.2 for f in fields(DefectRates)})
    with pytest.raises(ValueError, match="defect rates too high"):
        generate(tmp_path, rows=1000, files=2, defects=too_many)
