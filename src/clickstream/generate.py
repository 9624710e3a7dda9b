"""Seeded generator of realistic ecommerce clickstream CSV files.

Output header (exact order)::

    UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome

Design, in short:

* Users are split into chunks of ~1M rows; each chunk generates the complete event history
  of its users (so visit sequences stay coherent), fully vectorised with numpy.
* Each user gets an exact row budget (skewed: heavy users, light users, single-visit users);
  the budgets sum to the requested number of clean rows, so the total is exact.
* Visit start times follow an activity intensity (daily rhythm x weekend boost) via an inverse
  cumulative intensity map, with a minimum spacing that guarantees > 30 min between visits.
* Defects are injected on distinct rows, each breaking exactly one rule; duplicates copy clean rows.
* Rows go to the file of their time slice (late rows to the last file), are shuffled within the
  chunk, rendered with pyarrow.compute and appended as raw bytes to ``*.tmp`` files, which are
  renamed atomically at the end.
"""

from __future__ import annotations

import logging
import math
import os
from contextlib import ExitStack
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["DefectRates", "GenerateResult", "generate", "HEADER", "EVENT_TYPES", "DEFECT_NAMES"]

logger = logging.getLogger(__name__)

HEADER = "UserID,SessionID,Timestamp,EventType,ProductID,Amount,Outcome"

# Event type codes (index into EVENT_TYPES); _NULL_EVENT renders as an empty field.
PAGE_VIEW, PRODUCT_VIEW, ADD_TO_CART, PURCHASE, CLICK, LOGIN, LOGOUT = range(7)
EVENT_TYPES = ("page_view", "product_view", "add_to_cart", "purchase", "click", "login", "logout")
_NULL_EVENT = len(EVENT_TYPES)
_PRODUCT_EVENTS = (PRODUCT_VIEW, ADD_TO_CART, PURCHASE)  # the events that carry a ProductID
MAX_RATE = 0.2

# Unparseable timestamps; every one fails both strptime("%Y-%m-%d %H:%M:%S.%f") and a lenient CAST.
# Derived variants rewrite the real timestamp injectively (rows stay distinct):
# month+12, day+40, hour+30, "DD/MM/YYYY ...", "HH:MM:SS.ffffff YYYY-MM-DD".
_N_DERIVED_BAD_TS = 5
# Literal garbage, used at most once per user per chunk so two defect rows never coincide.
INVALID_TIMESTAMP_LITERALS = ("2024-13-45 25:61:00", "not-a-time", "0000-00-00 00:00:00", "yesterday")
# Non-numeric literals for invalid_amount (plus a per-product "12,50" comma-decimal variant).
INVALID_AMOUNT_LITERALS = ("abc", "N/A", "1.2.3", "twelve")

_CHUNK_ROWS = 1_000_000  # clean rows generated per chunk: bounds memory for any total
_US_PER_MIN = 60_000_000
_VISIT_GAP_MIN = 60.0  # minimum idle time between two visits of a user (real minutes, > 30)
_MIN_EVENT_GAP_S = 5.0
_MAX_EVENT_GAP_S = 590.0  # < 10 min so even two dropped rows keep a visit under 30 min
_MID_EVENTS_MEAN = 4.5  # mean number of events after the first one in a visit
_MAX_MID_EVENTS = 60
_P_LOGIN_FIRST = 0.3
_P_VIEW_TO_CART = 0.28
_P_CART_TO_PURCHASE = 0.4
_P_LOGOUT = 0.25
_WEEKEND_BOOST = 1.3
# Relative activity by hour of day: quiet nights, evening peak.
_HOURLY = np.array(
    [0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.25, 0.45, 0.65, 0.80, 0.90, 0.95,
     1.00, 0.95, 0.90, 0.90, 0.95, 1.00, 1.10, 1.25, 1.35, 1.25, 0.90, 0.50]
)

# The strings the per-row codes index; the null entries render as empty fields.
_DIGIT_PAIRS = np.array([[48 + i // 10, 48 + i % 10] for i in range(100)], dtype=np.uint8)  # "00".."99"
_SESSION_STRINGS = pa.array([str(i) for i in range(1, 11)])
_EVENT_STRINGS = pa.array(list(EVENT_TYPES) + [None], pa.string())
_OUTCOME_STRINGS = pa.array(["\n", "purchase\n"])  # the newline rides on the last column


@dataclass(frozen=True)
class DefectRates:
    """Defect rates as fractions of the total number of rows (each within [0, 0.2])."""

    missing_user_id: float = 0.002
    missing_event_type: float = 0.001
    missing_product_id: float = 0.002
    missing_amount: float = 0.001
    invalid_timestamp: float = 0.001
    invalid_amount: float = 0.0005
    negative_amount: float = 0.0005
    duplicate: float = 0.002
    late: float = 0.001

    def __post_init__(self) -> None:
        # Fail at construction so a bad CLI value is reported where it was given.
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not (0.0 <= float(value) <= MAX_RATE):
                raise ValueError(f"defect rate {f.name}={value!r} is outside [0, {MAX_RATE}]")

    @classmethod
    def none(cls) -> DefectRates:
        """All rates zero: a perfectly clean data set."""
        return cls(**{f.name: 0.0 for f in fields(cls)})


DEFECT_NAMES = tuple(f.name for f in fields(DefectRates))


@dataclass(frozen=True)
class GenerateResult:
    files: list[Path]
    rows_per_file: dict[str, int]
    total_rows: int
    defects: dict[str, int]


@dataclass(frozen=True)
class _Plan:
    """Everything precomputed once and shared by all chunks."""

    t0_us: int
    slice_bounds_us: np.ndarray  # interior file boundaries (absolute epoch us), len files-1
    files: int
    cum_intensity: np.ndarray  # cumulative activity per minute, len minutes+1, total = minutes
    lam_max: float
    prod_cdf: np.ndarray  # Zipf cumulative weights by popularity rank
    prod_of_rank: np.ndarray  # product index of each popularity rank
    n_products: int
    product_strings: pa.Array  # "prod_0001"... plus a trailing null
    amount_strings: pa.Array  # price | -price | "12,50" | literals | null


# ---------------------------------------------------------------------------- public API


def generate(out_dir: Path, rows: int, seed: int = 42, files: int = 1, defects: DefectRates | None = None,
             start: str = "2024-01-01", days: int = 90, prefix: str = "clickstream") -> GenerateResult:
    """Write ``files`` CSV files with exactly ``rows`` data rows in total.

    Files are ``{prefix}_{seed}_{i:03d}.csv`` covering consecutive equal time slices of
    ``[start, start + days)``; late rows are written to the last file. Identical arguments
    produce byte-identical files.
    """
    t0 = _check_arguments(rows, seed, files, days, start)
    rates = defects if defects is not None else DefectRates()
    wanted = {name: _count(getattr(rates, name), rows) for name in DEFECT_NAMES}
    if files == 1:
        wanted["late"] = 0  # no later file to arrive late in
    n_dup = wanted["duplicate"]
    n_base = rows - n_dup  # the rows generated; duplicates copy some of them
    mutated = sum(wanted.values()) - n_dup
    if mutated + (1 if n_dup else 0) > n_base:
        raise ValueError(f"defect rates too high for rows={rows}: {mutated} defective/late rows and "
                         f"{n_dup} duplicates leave no clean rows; lower the rates")

    rng = np.random.default_rng(seed)
    plan = _make_plan(rng, t0, days, files, products=min(20_000, max(20, rows // 200)))
    # A visit of n events costs at most lam_max*60*n activity-minutes (see _place_visits), so a user
    # holds at most cap rows. With a quarter of that per user on average (or one row) all rows fit,
    # and there are never more users than clean rows, so every user has at least one row.
    cap = max(1, int(days * 1440 / (plan.lam_max * _VISIT_GAP_MIN) * 0.999))
    users = max(1, rows // 60, math.ceil(n_base / max(1.0, cap / 4)))
    budgets = _budgets(rng, users, n_base, cap)

    # Chunks of ~_CHUNK_ROWS rows own whole users; each gets a share of every defect, by its rows.
    rows_before = np.concatenate([[0], np.cumsum(budgets)])  # rows of the users before each user
    cuts = np.searchsorted(rows_before[1:], np.arange(_CHUNK_ROWS, n_base, _CHUNK_ROWS), side="left") + 1
    user_bounds = np.unique(np.concatenate([[0], cuts, [users]]))
    shares = {name: np.diff(n * rows_before[user_bounds] // n_base) for name, n in wanted.items()}

    paths = [Path(out_dir) / f"{prefix}_{seed}_{i:03d}.csv" for i in range(1, files + 1)]
    counts, injected = _write_files(paths, seed, plan, budgets, user_bounds, shares)
    return GenerateResult(files=paths, rows_per_file={p.name: int(n) for p, n in zip(paths, counts)},
                          total_rows=int(counts.sum()), defects=injected)


# ---------------------------------------------------------------------------- setup helpers
def _write_files(paths: list[Path], seed: int, plan: _Plan, budgets: np.ndarray, user_bounds: np.ndarray,
                 shares: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, int]]:
    """Write the files chunk by chunk, each under a temporary name renamed into place once all are complete (none
    is left behind by a failure). Returns the data rows written per file and the defects injected."""
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    tmps = [p.with_name(p.name + ".tmp") for p in paths]
    counts = np.zeros(len(paths), dtype=np.int64)
    injected = dict.fromkeys(DEFECT_NAMES, 0)
    try:
        with ExitStack() as stack:
            handles = [stack.enter_context(open(tmp, "wb", buffering=1 << 20)) for tmp in tmps]
            for fh in handles:
                fh.write((HEADER + "\n").encode())
            for c, (first, end) in enumerate(zip(user_bounds[:-1], user_bounds[1:])):
                chunk_rng = np.random.default_rng([seed, c + 1])
                want = {name: int(share[c]) for name, share in shares.items()}
                got = _write_chunk(chunk_rng, plan, int(first), budgets[first:end], want, handles, counts)
                for name, n in got.items():
                    injected[name] += n
        for tmp, path, n in zip(tmps, paths, counts):
            os.replace(tmp, path)
            logger.info("wrote %s (%d rows)", path, int(n))
    except BaseException:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        raise
    return counts, injected




def _check_arguments(rows: int, seed: int, files: int, days: int, start: str) -> datetime:
    """Fail before anything is written; returns the parsed start."""
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    if files < 1:
        raise ValueError(f"files must be >= 1, got {files}")
    if files > rows:
        raise ValueError(f"files ({files}) must not exceed rows ({rows})")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    try:
        t0 = datetime.fromisoformat(str(start))
    except ValueError as exc:
        raise ValueError(f"start must be an ISO date like '2024-01-01', got {start!r}") from exc
    if t0.tzinfo is not None:
        raise ValueError(f"start must be naive (UTC implied), got {start!r}")
    return t0


def _count(rate: float, rows: int) -> int:
    # Round half up (not banker's rounding) so e.g. 0.0005 * 1000 gives 1.
    return int(math.floor(rate * rows + 0.5))


def _make_plan(rng: np.random.Generator, t0: datetime, days: int, files: int, products: int) -> _Plan:
    """File time slices, activity intensity, product popularity and prices: shared by all chunks."""
    minutes = days * 1440
    t0_us = int(np.datetime64(t0, "us").astype(np.int64))
    span_us = minutes * _US_PER_MIN
    bounds = t0_us + (np.arange(1, files, dtype=np.int64) * span_us) // files

    # Activity intensity per minute (mean 1): daily rhythm times the weekend boost.
    t = np.datetime64(t0, "m") + np.arange(minutes)
    hour = t.astype("datetime64[h]").astype(np.int64) % 24
    dow = (t.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    lam = _HOURLY[hour] * np.where(dow >= 5, _WEEKEND_BOOST, 1.0)
    lam /= lam.mean()
    cum = np.concatenate([[0.0], np.cumsum(lam)])
    cum *= minutes / cum[-1]  # exact total despite float summation

    # Zipf-like popularity over ranks; ranks map to random product ids.
    prod_cdf = np.cumsum(np.arange(1, products + 1, dtype=np.float64) ** -1.07)
    prod_of_rank = rng.permutation(products).astype(np.int32)
    # Price is a property of the product: lognormal around ~30, clipped to [5, 500].
    price = np.clip(rng.lognormal(np.log(30.0), 0.9, products), 5.0, 500.0)
    cents = np.round(price * 100).astype(np.int64).tolist()
    prices = [f"{c // 100}.{c % 100:02d}" for c in cents]
    # Comma decimal needs CSV quoting; rows are written as raw bytes, so it is quoted here.
    amounts = prices + [f"-{p}" for p in prices] + [f'"{p.replace(".", ",")}"' for p in prices]
    return _Plan(
        t0_us=t0_us, slice_bounds_us=bounds, files=files, cum_intensity=cum, lam_max=float(lam.max()),
        prod_cdf=prod_cdf, prod_of_rank=prod_of_rank, n_products=products,
        product_strings=pa.array([f"prod_{i:04d}" for i in range(1, products + 1)] + [None], pa.string()),
        amount_strings=pa.array(amounts + list(INVALID_AMOUNT_LITERALS) + [None], pa.string()),
    )


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Largest-remainder split of total into integers proportional to weights."""
    share = weights * (total / weights.sum())
    out = np.floor(share).astype(np.int64)
    short = total - int(out.sum())
    if short > 0:
        out[np.argsort(out - share, kind="stable")[:short]] += 1
    elif short < 0:  # float rounding overshoot
        out[np.argsort(share - out, kind="stable")[: -short]] -= 1
    return out


def _budgets(rng: np.random.Generator, users: int, total: int, cap: int) -> np.ndarray:
    """Skewed per-user row counts in [1, cap] summing exactly to total (users <= total <= users * cap)."""
    weights = rng.lognormal(0.0, 1.2, users)  # heavy tail: few heavy users, many light ones
    budget = 1 + _apportion(total - users, weights)
    for _ in range(20):  # move the excess above cap to users with room, by weight
        excess = int(np.clip(budget - cap, 0, None).sum())
        if excess == 0:
            break
        np.minimum(budget, cap, out=budget)
        room = (budget < cap).astype(np.float64) * weights
        budget += _apportion(excess, room)
    excess = int(np.clip(budget - cap, 0, None).sum())
    if excess:  # deterministic fill; users*cap >= total holds by the choice of users
        np.minimum(budget, cap, out=budget)
        room = cap - budget
        fill = np.minimum(room, np.maximum(excess - (np.cumsum(room) - room), 0))
        budget += fill
    return budget


# ---------------------------------------------------------------------------- chunk generation


def _segment_starts(lengths: np.ndarray) -> np.ndarray:
    """Index of the first element of each segment of consecutive elements, given the segments' lengths."""
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def _sample_products(rng: np.random.Generator, plan: _Plan, n: int) -> np.ndarray:
    """n product indices drawn by popularity."""
    rank = np.searchsorted(plan.prod_cdf, rng.random(n) * plan.prod_cdf[-1], side="right")
    return plan.prod_of_rank[np.minimum(rank, plan.n_products - 1)]


def _make_visits(rng: np.random.Generator, plan: _Plan, n_visits: int) -> tuple[np.ndarray, ...]:
    """Events of n_visits visits: (visit, order key, type, product, visit length)."""
    n_mid = rng.geometric(1.0 / (1.0 + _MID_EVENTS_MEAN), n_visits) - 1
    np.minimum(n_mid, _MAX_MID_EVENTS, out=n_mid)
    n_core = n_mid + 1
    core_visit = np.repeat(np.arange(n_visits, dtype=np.int64), n_core)
    pos = np.arange(core_visit.size, dtype=np.int64) - np.repeat(_segment_starts(n_core), n_core)
    r = rng.random(core_visit.size)
    # First event: login or page_view; then a page_view / click / product_view mix.
    etype = np.where(
        pos == 0,
        np.where(r < _P_LOGIN_FIRST, LOGIN, PAGE_VIEW),
        np.select([r < 0.30, r < 0.55], [PAGE_VIEW, CLICK], PRODUCT_VIEW),
    ).astype(np.int8)
    prod = np.full(core_visit.size, -1, dtype=np.int32)
    is_view = etype == PRODUCT_VIEW
    prod[is_view] = _sample_products(rng, plan, int(is_view.sum()))

    # Some viewed products go to the cart right after the view; some carts are bought at checkout.
    view_idx = np.flatnonzero(is_view)
    cart_idx = view_idx[rng.random(view_idx.size) < _P_VIEW_TO_CART]
    buy_idx = cart_idx[rng.random(cart_idx.size) < _P_CART_TO_PURCHASE]
    logout_visit = np.flatnonzero(rng.random(n_visits) < _P_LOGOUT)

    # Core events, carts, purchases, logouts. Order keys within a visit: core 4p, its cart 4p+1,
    # checkout 4n+4p+2 (< 8n), logout 8n+8.
    visit = np.concatenate([core_visit, core_visit[cart_idx], core_visit[buy_idx], logout_visit])
    key = np.concatenate([4 * pos, 4 * pos[cart_idx] + 1, 4 * n_core[core_visit[buy_idx]] + 4 * pos[buy_idx] + 2,
                          8 * n_core[logout_visit] + 8])
    etype = np.concatenate([etype, np.full(cart_idx.size, ADD_TO_CART, np.int8),
                            np.full(buy_idx.size, PURCHASE, np.int8), np.full(logout_visit.size, LOGOUT, np.int8)])
    prod = np.concatenate([prod, prod[cart_idx], prod[buy_idx], np.full(logout_visit.size, -1, np.int32)])
    length = np.bincount(visit, minlength=n_visits)
    return visit, key, etype, prod, length


def _user_events(rng: np.random.Generator, plan: _Plan, budgets: np.ndarray) -> dict[str, np.ndarray]:
    """Exactly budgets[u] time-ordered events for every local user u of a chunk."""
    n_users = budgets.size
    mean_len = 1.0 + _MID_EVENTS_MEAN * (1 + 0.45 * _P_VIEW_TO_CART * (1 + _P_CART_TO_PURCHASE))
    remaining = budgets.astype(np.int64)
    rounds = []  # (user, visit, order key, type, product) of each round's events
    n_vis_total = 0
    # Generate visits in rounds until every user has at least its budget of events.
    while True:
        needy = np.flatnonzero(remaining > 0)
        if needy.size == 0:
            break
        k = np.ceil(remaining[needy] * 1.1 / mean_len).astype(np.int64) + 1
        vis_user = np.repeat(needy, k)
        visit, key, etype, prod, length = _make_visits(rng, plan, vis_user.size)
        rounds.append((vis_user, visit + n_vis_total, key, etype, prod))
        n_vis_total += vis_user.size
        remaining -= np.bincount(vis_user, weights=length, minlength=n_users).astype(np.int64)
    vis_user, visit, key, etype, prod = (np.concatenate(parts) for parts in zip(*rounds))

    # Order visits by user (rounds keep their order), events by (visit rank, key).
    vis_rank = np.empty(n_vis_total, dtype=np.int64)
    vis_rank[np.argsort(vis_user, kind="stable")] = np.arange(n_vis_total)
    order = np.argsort(vis_rank[visit] * 1024 + key)
    visit_r = vis_rank[visit[order]]
    etype, prod = etype[order], prod[order]
    ev_user = np.sort(vis_user)[visit_r]

    # Truncate each user to its exact budget (drops a suffix: causality view->cart->buy holds).
    user_first = _segment_starts(np.bincount(ev_user, minlength=n_users))
    keep = (np.arange(ev_user.size) - user_first[ev_user]) < budgets[ev_user]
    visit_r, etype, prod, ev_user = visit_r[keep], etype[keep], prod[keep], ev_user[keep]

    # Renumber the surviving visits 0..V-1 (still grouped by user, in order).
    is_first = np.concatenate([[True], visit_r[1:] != visit_r[:-1]])
    first_ev = np.flatnonzero(is_first)
    new_visit = np.cumsum(is_first) - 1
    v_user = ev_user[first_ev]
    v_first = _segment_starts(np.bincount(v_user, minlength=n_users))
    v_rank_in_user = np.arange(first_ev.size) - v_first[v_user]

    # Gaps between events of a visit: 5 s .. ~10 min, lognormal around 35 s, microsecond grain.
    gap_s = rng.lognormal(np.log(35.0), 1.0, new_visit.size)
    np.clip(gap_s, _MIN_EVENT_GAP_S, _MAX_EVENT_GAP_S, out=gap_s)
    gap_us = np.round(gap_s * 1e6).astype(np.int64)
    gap_us[first_ev] = 0
    csum = np.cumsum(gap_us)
    offset = csum - csum[first_ev][new_visit]
    last_ev = np.concatenate([first_ev[1:] - 1, [new_visit.size - 1]])
    dur_min = offset[last_ev] / _US_PER_MIN

    start_min = _place_visits(rng, plan, v_user, dur_min, n_users)
    start_us = np.round(start_min * _US_PER_MIN).astype(np.int64)
    return {
        "user": ev_user,
        "session": (v_rank_in_user[new_visit] % 10).astype(np.int8),  # index of SessionID "1".."10"
        "ts": plan.t0_us + start_us[new_visit] + offset,
        "etype": etype,
        "prod": prod,
    }


def _place_visits(
    rng: np.random.Generator, plan: _Plan, v_user: np.ndarray, dur_min: np.ndarray, n_users: int
) -> np.ndarray:
    """Visit start times (minutes from t0), visits of a user in order and well separated.

    Work in "activity time" u = Lambda(t), the cumulative intensity. Since dLambda <= lam_max*dt,
    spacing visits by lam_max*(duration + gap) in u guarantees >= duration + gap real minutes.
    Positions are uniform order statistics on the slack plus the cumulative required spacing.
    """
    cum = plan.cum_intensity
    total = cum[-1]
    need = plan.lam_max * (dur_min + _VISIT_GAP_MIN)
    per_user_need = np.bincount(v_user, weights=need, minlength=n_users)
    slack = total - per_user_need
    if np.any(slack[v_user] < 0):  # prevented by the per-user cap in generate()
        raise RuntimeError("internal error: user visits do not fit in the time span")
    frac = np.sort(v_user + rng.random(v_user.size)) - v_user
    need_before = np.cumsum(need) - need
    need_before -= need_before[np.searchsorted(v_user, v_user, side="left")]  # per-user restart
    u = frac * slack[v_user] + need_before
    return np.interp(u, cum, np.arange(cum.size, dtype=np.float64))


# ---------------------------------------------------------------------------- defects & output


def _pick(rng: np.random.Generator, avail: np.ndarray, cond: np.ndarray, n: int) -> np.ndarray:
    """Up to n random available rows satisfying cond, which stop being available."""
    cands = np.flatnonzero(avail & cond)
    if n <= 0 or cands.size == 0:
        return np.empty(0, dtype=np.int64)
    chosen = rng.choice(cands, size=min(n, cands.size), replace=False)
    avail[chosen] = False
    return np.sort(chosen)


def _pick_or_convert(rng: np.random.Generator, plan: _Plan, ev: dict[str, np.ndarray], avail: np.ndarray,
                     cond: np.ndarray, n: int, new_type: int) -> np.ndarray:
    """Pick n rows satisfying cond; if too few exist, turn plain rows (then any rows) into new_type events."""
    chosen = _pick(rng, avail, cond, n)
    short = n - chosen.size
    if short > 0:
        extra = _pick(rng, avail, np.isin(ev["etype"], (PAGE_VIEW, CLICK)), short)
        extra = np.concatenate([extra, _pick(rng, avail, np.ones_like(avail), short - extra.size)])
        ev["etype"][extra] = new_type
        if new_type in _PRODUCT_EVENTS:
            ev["prod"][extra] = _sample_products(rng, plan, extra.size)
        else:  # drop product, amount and outcome so only the intended rule is broken
            ev["prod"][extra] = -1
        chosen = np.sort(np.concatenate([chosen, extra]))
    return chosen


def _pick_defect_rows(rng: np.random.Generator, plan: _Plan, ev: dict[str, np.ndarray],
                      want: dict[str, int]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Distinct rows for each defect that alters a row, and the mask of the rows left clean."""
    etype = ev["etype"]  # updated in place when rows are converted
    avail = np.ones(etype.size, dtype=bool)
    anywhere = np.ones(etype.size, dtype=bool)
    # Scarce candidates first: purchase-amount defects, then product-id defects.
    n_amount = want["missing_amount"] + want["invalid_amount"] + want["negative_amount"]
    buy = rng.permutation(_pick_or_convert(rng, plan, ev, avail, etype == PURCHASE, n_amount, PURCHASE))
    n_ma = min(want["missing_amount"], buy.size)
    n_ia = min(want["invalid_amount"], buy.size - n_ma)
    rows = {"missing_amount": buy[:n_ma], "invalid_amount": buy[n_ma:n_ma + n_ia], "negative_amount": buy[n_ma + n_ia:]}
    rows["missing_product_id"] = _pick_or_convert(rng, plan, ev, avail, np.isin(etype, _PRODUCT_EVENTS),
                                                  want["missing_product_id"], PRODUCT_VIEW)
    # Missing event type only on rows without product/amount so no other rule is touched.
    rows["missing_event_type"] = _pick_or_convert(rng, plan, ev, avail, ~np.isin(etype, _PRODUCT_EVENTS),
                                                  want["missing_event_type"], PAGE_VIEW)
    rows["missing_user_id"] = _pick(rng, avail, anywhere, want["missing_user_id"])
    rows["invalid_timestamp"] = _pick(rng, avail, anywhere, want["invalid_timestamp"])
    return rows, avail


def _output_codes(rng: np.random.Generator, plan: _Plan, ev: dict[str, np.ndarray], bad: dict[str, np.ndarray],
                  user_offset: int) -> dict[str, np.ndarray]:
    """Per row, what each column shows, with the defects applied: mostly indexes into a column's strings."""
    P = plan.n_products
    etype, prod = ev["etype"], ev["prod"]
    user = ev["user"] + (user_offset + 1)  # UserIDs start at 1: 0 renders as an empty field
    user[bad["missing_user_id"]] = 0
    event = etype.copy()
    event[bad["missing_event_type"]] = _NULL_EVENT
    product = np.where(prod >= 0, prod, P).astype(np.int32)
    product[bad["missing_product_id"]] = P
    # Amounts index plan.amount_strings: price | -price | "12,50" | literals | null.
    null_amount = 3 * P + len(INVALID_AMOUNT_LITERALS)
    amount = np.where(etype == PURCHASE, np.maximum(prod, 0), null_amount)
    amount[bad["missing_amount"]] = null_amount
    negative, invalid = bad["negative_amount"], bad["invalid_amount"]
    amount[negative] = P + prod[negative]
    variant = rng.integers(0, 1 + len(INVALID_AMOUNT_LITERALS), invalid.size)
    amount[invalid] = np.where(variant == 0, 2 * P + prod[invalid], 3 * P + variant - 1)
    # Timestamps: -1 valid, then the derived variants, then the literals.
    bad_ts = bad["invalid_timestamp"]
    ts_bad = np.full(etype.size, -1, dtype=np.int16)
    ts_bad[bad_ts] = rng.integers(0, _N_DERIVED_BAD_TS, bad_ts.size)
    _, first_of_user = np.unique(ev["user"][bad_ts], return_index=True)
    literal = bad_ts[first_of_user[rng.random(first_of_user.size) < 0.5]]
    ts_bad[literal] = _N_DERIVED_BAD_TS + rng.integers(0, len(INVALID_TIMESTAMP_LITERALS), literal.size)
    return {"user": user, "session": ev["session"], "ts": ev["ts"], "ts_bad": ts_bad, "event": event,
            "product": product, "amount": amount}


def _write_chunk(rng: np.random.Generator, plan: _Plan, user_offset: int, budgets: np.ndarray,
                 want: dict[str, int], handles: list[BinaryIO], counts: np.ndarray) -> dict[str, int]:
    """Append the rows of one chunk of users to the files; returns the defects injected."""
    ev = _user_events(rng, plan, budgets)
    bad, clean = _pick_defect_rows(rng, plan, ev, want)

    # Rows go to the file of their time slice; late rows: clean rows of the earliest slices.
    file_of = np.searchsorted(plan.slice_bounds_us, ev["ts"], side="right").astype(np.int32)
    late = np.empty(0, dtype=np.int64)
    if want["late"] > 0:
        cands = np.flatnonzero(clean & (file_of < plan.files - 1))
        late = np.sort(cands[np.lexsort((rng.random(cands.size), file_of[cands]))][: want["late"]])
        clean[late] = False
        file_of[late] = plan.files - 1

    # Duplicates copy clean rows (distinct sources when possible), in the same file.
    clean_rows = np.flatnonzero(clean)
    n_dup = want["duplicate"] if clean_rows.size else 0
    dup_src = np.empty(0, dtype=np.int64)
    if n_dup:
        dup_src = rng.choice(clean_rows, size=n_dup, replace=n_dup > clean_rows.size)
    codes = _output_codes(rng, plan, ev, bad, user_offset)

    # Row order: by file, random within the file (duplicates land away from their source).
    src = np.concatenate([np.arange(ev["ts"].size, dtype=np.int64), dup_src])
    file_of_src = file_of[src]
    perm = rng.permutation(src.size)
    order = perm[np.argsort(file_of_src[perm], kind="stable")]  # stable sort on small ints is a radix sort
    lines = _render(plan, {name: code[src[order]] for name, code in codes.items()})
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4)
    data = memoryview(lines.buffers()[2])
    edges = np.searchsorted(file_of_src[order], np.arange(plan.files + 1), side="left")
    for f in range(plan.files):
        handles[f].write(data[offsets[edges[f]]:offsets[edges[f + 1]]])
        counts[f] += edges[f + 1] - edges[f]
    return {name: rows.size for name, rows in bad.items()} | {"duplicate": int(n_dup), "late": late.size}


def _render(plan: _Plan, codes: dict[str, np.ndarray]) -> pa.Array:
    """CSV lines (with trailing newline) as one string array, from the output codes of its rows."""
    return pc.binary_join_element_wise(
        pc.cast(pa.array(codes["user"], mask=codes["user"] == 0), pa.string()),
        _take(_SESSION_STRINGS, codes["session"]),
        _timestamp_strings(codes["ts"], codes["ts_bad"]),
        _take(_EVENT_STRINGS, codes["event"]),
        _take(plan.product_strings, codes["product"]),
        _take(plan.amount_strings, codes["amount"]),
        _take(_OUTCOME_STRINGS, (codes["event"] == PURCHASE).astype(np.int8)),
        ",", null_handling="replace", null_replacement="",
    )


def _take(strings: pa.Array, codes: np.ndarray) -> pa.Array:
    return pc.take(strings, pa.array(codes))


def _timestamp_strings(us: np.ndarray, bad: np.ndarray) -> pa.Array:
    """``YYYY-MM-DD HH:MM:SS.ffffff`` strings of epoch microseconds, byte by byte (pc.strftime is ~30x slower).

    Rows with ``bad`` >= 0 get an unparseable variant (see _N_DERIVED_BAD_TS) or literal instead.
    """
    n = us.size
    day = us // 86_400_000_000
    rem = us - day * 86_400_000_000
    d = day.astype("datetime64[D]")
    year = d.astype("datetime64[Y]").astype(np.int64) + 1970
    month_start = d.astype("datetime64[M]")
    month = month_start.astype(np.int64) % 12 + 1
    dom = (d - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    hour, rem = np.divmod(rem, 3_600_000_000)
    minute, rem = np.divmod(rem, 60_000_000)
    second, micro = np.divmod(rem, 1_000_000)
    buf = np.empty((n, 26), dtype=np.uint8)
    for col, ch in ((4, "-"), (7, "-"), (10, " "), (13, ":"), (16, ":"), (19, ".")):
        buf[:, col] = ord(ch)
    # Two digits at a time from a 100-entry table: far fewer divisions than digit by digit.
    two_digit_fields = (
        (0, year // 100), (2, year % 100), (5, month), (8, dom), (11, hour), (14, minute),
        (17, second), (20, micro // 10_000), (22, (micro // 100) % 100), (24, micro % 100),
    )
    for col, value in two_digit_fields:
        buf[:, col:col + 2] = _DIGIT_PAIRS[value]
    _corrupt_timestamps(buf, bad, month, dom, hour)
    offsets = np.arange(0, 26 * (n + 1), 26, dtype=np.int32)
    strings = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(buf)])
    is_literal = bad >= _N_DERIVED_BAD_TS
    if not np.any(is_literal):
        return strings
    literals = _take(pa.array(INVALID_TIMESTAMP_LITERALS), np.clip(bad - _N_DERIVED_BAD_TS, 0, None))
    return pc.if_else(pa.array(is_literal), literals, strings)


def _corrupt_timestamps(buf: np.ndarray, bad: np.ndarray, month: np.ndarray, dom: np.ndarray,
                        hour: np.ndarray) -> None:
    """Rewrite rows of the (n, 26) timestamp byte matrix into unparseable variants, in place."""
    for code, col, value in ((0, 5, month + 12), (1, 8, dom + 40), (2, 11, hour + 30)):
        rows = np.flatnonzero(bad == code)
        buf[rows, col:col + 2] = _DIGIT_PAIRS[value[rows]]
    rows = np.flatnonzero(bad == 3)  # DD/MM/YYYY HH:MM:SS.ffffff
    date = buf[rows, :10].copy()
    buf[rows, 0:2], buf[rows, 3:5], buf[rows, 6:10] = date[:, 8:10], date[:, 5:7], date[:, 0:4]
    buf[rows, 2] = buf[rows, 5] = ord("/")
    rows = np.flatnonzero(bad == 4)  # HH:MM:SS.ffffff YYYY-MM-DD
    row_bytes = buf[rows].copy()
    buf[rows, 0:15] = row_bytes[:, 11:26]
    buf[rows, 15] = ord(" ")
    buf[rows, 16:26] = row_bytes[:, 0:10]
