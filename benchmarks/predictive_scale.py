"""What the predictive models cost on the driver as users grow: wall, CPU and peak memory of the fit per user count.

The features come from a finished run's gold (its data directory), computed by DuckDB exactly as `clickstream run`
computes them; they are then repeated (each copy's users renamed) to the user counts asked for, and each count is
fitted in a process of its own: churn (training, evaluation, scoring) and clusters (k chosen by silhouette), as
analytics runs them on either engine once the features are on the driver. Peak RSS is the fitting process's
(`ru_maxrss`), of which the features themselves are the part measured before the fit.

    .venv/bin/python benchmarks/predictive_scale.py --data-dir bench-data/2m --users 45000 1000000 2200000

The repeated users are copies, so this measures cost, not model quality.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def features_of(data_dir: Path, scratch: Path) -> dict:
    """The run's feature rows (all cutoffs) written to `scratch`, with the cutoffs and the horizon."""
    from clickstream import analytics, catalog, predictive, storage
    from clickstream.config import Config, DuckDBSettings
    from clickstream.engines.duckdb_engine import DuckDBEngine

    config = Config()
    engine = DuckDBEngine(DuckDBSettings())
    try:
        for star_table in catalog.gold_tables():
            engine.read_parquet(star_table.name, storage.parquet_files(star_table.path(data_dir)), None)
        context = analytics.model_context(config)
        first, as_of = predictive.span(engine, config.analytics)
        horizon = config.analytics.churn.horizon_days
        times = predictive.cutoffs(first, as_of, horizon, True)
        started = time.perf_counter()
        table = predictive.features(engine, context, times, horizon)
        seconds = time.perf_counter() - started
    finally:
        engine.close()
    pq.write_table(table, scratch / "features.parquet")
    return {"path": str(scratch / "features.parquet"), "cutoffs": [t.isoformat() for t in times], "horizon": horizon,
            "users": len(set(table["user_key"].to_pylist())), "rows": table.num_rows, "feature_seconds": seconds}


def repeated(table: pa.Table, users: int) -> pa.Table:
    """`table`'s rows repeated until it holds `users` users (the last copy cut short), each copy's users new."""
    keys = table["user_key"]
    distinct = pc.unique(keys)
    parts, have, copy = [], 0, 0
    while have < users:
        take = min(len(distinct), users - have)
        part = table.filter(pc.is_in(keys, distinct.slice(0, take))) if take < len(distinct) else table
        for column in ("user_key", "user_id"):
            part = part.set_column(part.schema.get_field_index(column), column, pc.binary_join_element_wise(
                pc.cast(part[column], pa.string()), pa.scalar(str(copy)), "#"))
        parts.append(part)
        have, copy = have + take, copy + 1
    return pa.concat_tables(parts)


def fit_one(spec: dict, users: int) -> dict:
    """Fit both models on the features repeated to `users` users, in this process; what it cost."""
    import datetime as dt

    from clickstream import churn, clusters

    table = repeated(pq.read_table(spec["path"]), users)
    loaded_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = [dt.datetime.fromisoformat(t) for t in spec["cutoffs"]]
    started, cpu = time.perf_counter(), time.process_time()
    churned = churn.fit(table, times, spec["horizon"])
    churn_seconds = time.perf_counter() - started
    now = table.filter(pc.equal(table["cutoff_number"], 0))
    clusters.fit(now, "auto")
    return {"users": users, "feature_rows": table.num_rows, "churn_status": churned.model["status"][0].as_py(),
            "churn_s": round(churn_seconds, 2), "fit_wall_s": round(time.perf_counter() - started, 2),
            "fit_cpu_s": round(time.process_time() - cpu, 2), "features_rss_gib": round(loaded_kib / 2**20, 3),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="a finished run's data directory (gold/ is read)")
    parser.add_argument("--users", type=int, nargs="+", default=[45_000, 1_000_000, 2_200_000])
    parser.add_argument("--fit", type=Path, help=argparse.SUPPRESS)  # a child: the spec file of one fit
    args = parser.parse_args()
    if args.fit:
        print(json.dumps(fit_one(json.loads(args.fit.read_text()), args.users[0])))
        return 0
    if not args.data_dir or not (args.data_dir / "gold").is_dir():
        parser.error(f"--data-dir must be a finished run's data directory (no gold/ under {args.data_dir})")
    with tempfile.TemporaryDirectory() as scratch:
        spec = features_of(args.data_dir, Path(scratch))
        print(f"features: {spec['users']:,} users, {spec['rows']:,} rows over {len(spec['cutoffs'])} cutoffs, "
              f"computed by DuckDB in {spec['feature_seconds']:.2f} s")
        (Path(scratch) / "spec.json").write_text(json.dumps(spec))
        print("| users | feature rows | churn s | fit wall s | fit CPU s | RSS with features GiB | peak RSS GiB |")
        print("|---|---|---|---|---|---|---|")
        for users in args.users:
            out = subprocess.run([sys.executable, __file__, "--fit", str(Path(scratch) / "spec.json"),
                                  "--users", str(users)], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"the fit at {users:,} users failed:\n{out.stderr}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {r['users']:,} | {r['feature_rows']:,} | {r['churn_s']} | {r['fit_wall_s']} | {r['fit_cpu_s']} "
                  f"| {r['features_rss_gib']} | {r['peak_rss_gib']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
