"""Mutation check: does the fast suite catch a bug? `make mutants` (a tool for developers, not part of CI).

Each mutant is one small change to the code that a real bug could make. For each, the script copies the
project to a temporary folder, applies the change there (never in the working tree), runs the fast suite
(`pytest -x -m "not spark"`) against it, and reports whether a test failed (the mutant is *killed*) or the suite
stayed green (it *survived*: no test guards that line). A survivor names a test to write.

    python tests/mutants.py              # every mutant
    python tests/mutants.py key chr31    # only mutants whose name contains one of these words
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = ["src", "tests", "config", "benchmarks", "jobs", "docs", "pyproject.toml", "README.md", "Makefile"]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository
    old: str  # must occur exactly once
    new: str


MUTANTS = [
    Mutant("negative amount rule takes in zero", "src/clickstream/sql/silver/silver_typed.sql",
           "case when amount < 0 then 'negative_amount' end", "case when amount <= 0 then 'negative_amount' end"),
    Mutant("session timeout one minute longer", "src/clickstream/gold.py",
           "int(round(ctx.config.gold.session_timeout_minutes * 60 * 1_000_000))",
           "int(round((ctx.config.gold.session_timeout_minutes + 1) * 60 * 1_000_000))"),
    Mutant("user spend sums every event's amount", "src/clickstream/sql/gold/dim_users.sql",
           "then cast(coalesce(sum(case when is_purchase then amount end), 0) as decimal(18,2)) end as total_spent",
           "then cast(coalesce(sum(amount), 0) as decimal(18,2)) end as total_spent"),
    Mutant("rejection reasons split on a comma", "src/clickstream/silver.py",
           'for reason in reasons.split(";"):', 'for reason in reasons.split(","):'),
    Mutant("key_of joins values without escaping chr31", "src/clickstream/sql.py",
           "    if not checked:  # no value can hold chr(31): every row is written the first way\n        return plain",
           "    return plain"),
    Mutant("a malformed multi-line record takes the lines after it", "src/clickstream/csv_lines.py",
           "            elif len(record) > 1:", "            elif False:"),
    Mutant("a record beyond the limit is read again from its second line", "src/clickstream/csv_lines.py",
           '            return "one record" if _closes(line, options) else "read again"',
           '            return "read again"'),
    Mutant("an engine's row count per file is not checked", "src/clickstream/bronze.py",
           "        if not miscounted:\n            return staged, profile",
           "        if True:\n            return staged, profile"),
    Mutant("overlapping globs: the less specific one wins", "src/clickstream/raw_files.py",
           "        best = max(glob_specificity(s.glob) for s in candidates)",
           "        best = min(glob_specificity(s.glob) for s in candidates)"),
    Mutant("a replaced version's events are not promoted from the duplicates", "src/clickstream/sql/silver/promoted_copies.sql",
           "    where copy_number = 1", "    where copy_number = 0"),
    Mutant("the same content under a new name is ingested again", "src/clickstream/bronze.py",
           "        if facts.sha256 in current:", "        if False:"),
    Mutant("appended lines are numbered from the top", "src/clickstream/bronze.py",
           'first_line=entry.get("lines", 0) + 1,', "first_line=2,"),
    Mutant("timestamps out of range are kept", "src/clickstream/sql/silver/silver_typed.sql",
           "then 'timestamp_out_of_range'", "and false then 'timestamp_out_of_range'"),
    Mutant("funnel step conversion over the first step's users", "src/clickstream/sql/analytics/conversion_funnel.sql",
           "{{ safe_divide('users', 'users + coalesce(lag(dropped) over by_funnel, 0)') }} as conversion_from_previous",
           "{{ safe_divide('users', 'users + coalesce(sum(dropped) over (partition by breakdown_value order by "
           "step_number rows between unbounded preceding and 1 preceding), 0)') }} as conversion_from_previous"),
    Mutant("purchase paths top-N off by one", "src/clickstream/sql/analytics/purchase_paths.sql",
           "select * from final where path_rank <= {{ top_n }} order by path_rank",
           "select * from final where path_rank < {{ top_n }} order by path_rank"),
    Mutant("top products in reverse order", "src/clickstream/sql/analytics/top_products.sql",
           "select * from final order by product_rank", "select * from final order by product_rank desc"),
    Mutant("small batches fail on noise", "src/clickstream/quality.py",
           "    too_few = status == \"fail\" and total < min_rows", "    too_few = False"),
    Mutant("a product's cart adds counted from the view types", "src/clickstream/sql/gold/dim_products.sql",
           "event_type_key in {{ in_list(cart_add_event_types) }} then 1 end) as cart_adds",
           "event_type_key in {{ in_list(product_view_event_types) }} then 1 end) as cart_adds"),
    Mutant("a cleanup's error replaces the run's own", "src/clickstream/pipeline.py",
           "            if exc is None:\n                raise", "            raise"),
]


def run(mutant: Mutant, workspace: Path) -> tuple[bool, float, str]:
    """(killed, seconds, the first failing test or '')."""
    target = workspace / mutant.path
    original = target.read_text(encoding="utf-8")
    if original.count(mutant.old) != 1:
        raise SystemExit(f"mutant {mutant.name!r}: the text to change occurs {original.count(mutant.old)} times in "
                         f"{mutant.path}; update the mutant to the code")
    target.write_text(original.replace(mutant.old, mutant.new), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(workspace / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-m", "not spark", "-p", "no:cacheprovider",
                               "tests"], cwd=workspace, env=env, capture_output=True, text=True)
    finally:
        target.write_text(original, encoding="utf-8")
    failed = next((line.split(" ", 1)[1] for line in done.stdout.splitlines() if line.startswith("FAILED ")), "")
    return done.returncode != 0, time.perf_counter() - started, failed.split(" - ")[0]


def main(words: list[str]) -> int:
    chosen = [m for m in MUTANTS if not words or any(w.lower() in m.name.lower() for w in words)]
    with tempfile.TemporaryDirectory(prefix="clickstream-mutants-") as folder:
        workspace = Path(folder)
        for name in COPIED:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, workspace / name, ignore=shutil.ignore_patterns("__pycache__", ".cache"))
            else:
                shutil.copy2(source, workspace / name)
        if any(run(Mutant("none", "README.md", "# clickstream", "# clickstream"), workspace)[:1]):
            raise SystemExit("the fast suite fails without any mutant: fix it first")
        survivors = []
        for mutant in chosen:
            killed, seconds, by = run(mutant, workspace)
            print(f"{'killed  ' if killed else 'SURVIVED'} {seconds:6.1f} s  {mutant.name}" + (f"  (by {by})" if by else ""),
                  flush=True)
            if not killed:
                survivors.append(mutant.name)
    print(f"\n{len(chosen) - len(survivors)} of {len(chosen)} mutants killed"
          + (f"; survived: {', '.join(survivors)}" if survivors else ""))
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
