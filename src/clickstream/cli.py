"""The `clickstream` command: one entry point, each sub-command one job."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Sequence

from clickstream import __version__
from clickstream.config import Config, ConfigError, load_config
from clickstream.context import Layout, PipelineError, ResourceError
from clickstream.engines import EngineUnavailable, InputError
from clickstream.logs import setup_logging
from clickstream.report.escape import escape_terminal, escape_terminal_lines, shorten

log = logging.getLogger(__name__)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML config (default: config/config.yaml if present, else built-in defaults)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data directory: raw input in DIR/raw, outputs beside it (default from config: data)")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug output on the terminal")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 or more, got '{text}'")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clickstream", description="Clickstream medallion pipeline: raw CSV -> "
                                     "bronze -> silver -> gold star schema -> analytics, on DuckDB or Spark.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [("run", "run every layer"), ("bronze", "ingest new raw files"),
                       ("silver", "validate, de-duplicate, quarantine"), ("gold", "rebuild the star schema"),
                       ("analytics", "answer the business queries")]:
        command = sub.add_parser(name, help=text, description=text)
        _common(command)
        _engine_and_wait(command)
        if name in ("run", "gold", "analytics"):
            command.add_argument("--full-refresh", action="store_true",
                                 help="rebuild gold and analytics from all of silver instead of only what new "
                                      "silver batches changed")
        if name in ("run", "silver"):
            command.add_argument("--rebuild-silver", action="store_true",
                                 help="rebuild silver, quarantine and duplicates from all of bronze (the raw files "
                                      "are not read); also done when a source's columns, attributes, event_types "
                                      "or identity_columns changed since silver was built")
        if name == "analytics":
            command.add_argument("--group", choices=["basic", "advanced", "all"], default="all",
                                 help="basic: queries 1-5 and 7; advanced: journeys, purchase paths, RFM")
        _terminal_options(command)
    verify = sub.add_parser("verify", help="prove the whole ledger: every line of every raw file accounted for",
                            description="prove the whole ledger: per raw file, the rows of its current version "
                                        "against silver, quarantine and duplicates, and against the rows its bytes "
                                        "in raw/ hold (exit 1 if any does not add up)")
    _common(verify)
    _engine_and_wait(verify)
    text = "rebuild bronze's manifest (_state/bronze_manifest.json) from bronze's own Parquet files"
    repair = sub.add_parser("repair-manifest", help=text, description=text + ", when it is lost or unreadable "
                            "(raw file facts bronze does not hold are taken from raw/ where the file there still "
                            "holds what bronze holds)")
    _common(repair)
    _engine_and_wait(repair)
    generate = sub.add_parser("generate", help="write seeded sample clickstream CSV into DIR/raw",
                              description="write seeded sample clickstream CSV into DIR/raw")
    _common(generate)
    generate.add_argument("--rows", type=int, default=200_000, help="data rows in total (default 200000)")
    generate.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    generate.add_argument("--files", type=int, default=1, help="number of CSV files (default 1)")
    generate.add_argument("--clean", action="store_true", help="inject no defects")
    generate.add_argument("--if-empty", action="store_true", help="do nothing if DIR/raw already holds CSV files")
    _add_watch(sub)
    _query_commands(sub)
    return parser


def _positive_seconds(text: str) -> float:
    # 0 would make the watch look at raw/ without pause; one message for every refused value
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number of seconds greater than 0, got '{text}'")
    return value


def _positive_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number, 1 or more, got '{text}'")
    return value


def _engine(command: argparse.ArgumentParser) -> None:
    command.add_argument("--engine", choices=["duckdb", "spark"], default=None,
                         help="engine (default from config: duckdb)")


def _engine_and_wait(command: argparse.ArgumentParser) -> None:
    """The options of a command that takes the data directory's writer lock: the engine, and how long to wait."""
    _engine(command)
    command.add_argument("--wait", type=_seconds, default=0.0, metavar="SECONDS",
                         help="if another run is writing the data directory, wait up to SECONDS for it to finish "
                              "(default: fail at once)")


def _add_watch(sub: argparse._SubParsersAction) -> None:
    text = "watch raw/ and run every layer whenever new or changed files are complete"
    command = sub.add_parser("watch", help=text, description=text + " (micro-batches; Ctrl-C or SIGTERM stops "
                             "after the current batch)")
    _common(command)
    _engine(command)
    command.add_argument("--interval", type=_positive_seconds, default=None, metavar="SECONDS",
                         help="how often to look at raw/; a file written in place is complete once unchanged "
                              "this long (default 2)")
    command.add_argument("--max-batches", type=_positive_count, default=None, metavar="N",
                         help="stop after N batches (default: run until stopped)")


def _watch(args: argparse.Namespace, config: Config) -> int:
    from clickstream.watch import DEFAULT_INTERVAL_SECONDS, watch

    error = watch(config, interval=args.interval or DEFAULT_INTERVAL_SECONDS, max_batches=args.max_batches)
    if error:
        raise PipelineError(f"the last batch failed: {error}")
    return 0


def _terminal_options(command: argparse.ArgumentParser) -> None:
    """How much a layer command shows: progress and the summary by default."""
    shown = command.add_mutually_exclusive_group()
    shown.add_argument("--show-results", action="store_true",
                       help="also print the first rows of every analytics result (analytics.show_rows)")
    shown.add_argument("--quiet", "-q", action="store_true",
                       help="print nothing but warnings and errors (the exit status says how it went)")


def _query_commands(sub: argparse._SubParsersAction) -> None:
    """The commands that read what runs wrote: `sql` over the warehouse, `history` of the runs."""
    sql = sub.add_parser("sql", help="run a read-only SQL query over the warehouse's views",
                         description="run a read-only SQL query over <data_dir>/warehouse.duckdb: a view for "
                                     "every gold, analytics, silver, quarantine and duplicates table")
    _common(sql)
    sql.add_argument("query", help='the query, e.g. "select * from daily_activity order by activity_date"')
    sql.add_argument("--format", choices=["table", "csv", "json"], default="table",
                     help="table (default): aligned columns; csv: with a header line; json: one object per line")
    sql.add_argument("--max-rows", type=_positive_count, default=None, metavar="N",
                     help="print at most N rows (default: all; a table says how many it left out)")
    history = sub.add_parser("history", help="list the runs recorded under reports/history/",
                             description="list the runs recorded under <data_dir>/reports/history/: id, start, "
                                         "duration, rows in and out, outcome and gates, oldest first")
    _common(history)
    history.add_argument("--last", type=int, default=None, metavar="N", help="only the N latest runs")
    history.add_argument("--format", choices=["table", "csv", "json"], default="table",
                         help="table (default), csv or json (one object per line)")
    history.add_argument("--profile", nargs="?", const="", default=None, metavar="RUN_ID",
                         help="instead, the steps of run RUN_ID (default: the latest run) that took the longest, "
                              "with their wall and CPU seconds (--last N: the N longest, default 10)")


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    return config.with_overrides(data_dir=args.data_dir, engine=getattr(args, "engine", None))


def _generate(args: argparse.Namespace, config: Config) -> None:
    from clickstream.generate import DefectRates, generate

    raw = Layout(Path(config.paths.data_dir)).raw
    if args.if_empty and raw.is_dir() and any(raw.glob("*.csv")):
        log.info("generate: %s already holds CSV files; nothing generated", raw)
        return
    result = generate(raw, rows=args.rows, seed=args.seed, files=args.files,
                      defects=DefectRates.none() if args.clean else None)
    injected = ", ".join(f"{k}={v}" for k, v in result.defects.items() if v)
    print(f"generated {result.total_rows:,} rows in {len(result.files)} file(s) under {raw}"
          + (f" (injected defects: {injected})" if injected else ""))


def _run(args: argparse.Namespace, config: Config, quiet: bool) -> int:
    """A layer or the whole run: progress while it runs (on a terminal), then the summary."""
    from clickstream.pipeline import LAYERS, run_layers
    from clickstream.report.tables import render_results
    from clickstream.report.terminal import LayerProgress, summary

    layers = LAYERS if args.command == "run" else (args.command,)
    with LayerProgress(enabled=False if quiet or args.verbose else None) as progress:
        results = run_layers(config, layers, analytics_group=getattr(args, "group", "all"),
                             full_refresh=getattr(args, "full_refresh", False), wait_seconds=args.wait,
                             show_results=args.show_results, rebuild_silver=getattr(args, "rebuild_silver", False),
                             progress=progress)
    if quiet:
        return 0
    if args.show_results and results.get("analytics"):
        print(render_results(results["analytics"]))
    print(summary(results, config.logs_dir, config.analytics.funnel.window))
    return 0


def _verify(config: Config, wait_seconds: float) -> int:
    from clickstream.pipeline import refused_files, verify_all
    from clickstream.report.tables import text_table

    files, problems = verify_all(config, wait_seconds)
    refused = refused_files(config)
    if refused:
        print(f"{len(refused)} raw file(s) refused, not ingested (each is tried again when it or its source's "
              f"config changes):")
        for entry in refused:
            print(f"  {escape_terminal(shorten(entry['path']))}: {escape_terminal(entry['reason'])}")
        print()
    if not files and not problems:
        also = f" ({len(refused)} raw file(s) refused, listed above)" if refused else ""
        raise PipelineError(f"nothing ingested yet in {shorten(str(config.paths.data_dir))}: nothing to verify{also}")
    columns = ["source_file", "file_rows", "bronze_rows", "silver_rows", "quarantine_rows", "duplicate_rows",
               "redelivered_rows", "pending_rows", "stale_rows", "balanced"]
    if problems and not files:  # the manifest itself is lost: no ledger to show
        raise PipelineError(problems[0])
    print(text_table(columns, [tuple(row[c] for c in columns) for row in files]))
    if problems:
        shown = (escape_terminal(shorten(problem, _MESSAGE_LIMIT)) for problem in problems)
        print("\nbronze:\n" + "\n".join(f"  {line}" for line in shown))
        raise PipelineError(f"bronze does not hold what its manifest records ({len(problems)} problem(s), listed "
                            f"above): {problems[0]}")
    broken = [row["source_file"] for row in files if not row["balanced"]]
    lines = sum(row["bronze_rows"] for row in files)
    if broken:
        raise PipelineError(f"the ledger does not add up for {len(broken)} file(s), e.g. {shorten(broken[0])!r}: "
                            f"see the table above")
    uncounted = sum(1 for row in files if row["file_rows"] is None)
    note = f" ({uncounted:,} file(s) gone from raw/ or changed since: not counted there)" if uncounted else ""
    print(f"\nledger: {len(files):,} file(s), {lines:,} data line(s), every one accounted for once{note}")
    return 0


def _repair_manifest(config: Config, wait_seconds: float) -> int:
    from clickstream.pipeline import repair_manifest

    done = repair_manifest(config, wait_seconds)
    if not done.rebuilt:
        print(f"{done.manifest} already records what bronze holds: nothing changed")
        return 0
    aside = f" (the one it replaces is kept as {done.kept_aside})" if done.kept_aside else ""
    print(f"rebuilt {done.manifest} from {done.parquet_files:,} bronze file(s): {done.batches:,} batch(es), "
          f"{done.rows:,} row(s), {len(done.recovered) + len(done.unrecovered):,} raw file(s){aside}")
    print(f"{len(done.recovered):,} raw file(s) recovered whole from raw/ (SHA-256, size, lines, records)")
    for path, why in sorted(done.unrecovered.items()):
        print(f"not recovered: {escape_terminal(shorten(path))}: {escape_terminal(why)}; the next run ingests it "
              f"again as a new version, replacing its rows")
    return 0


def _check_directory(path: Path, what: str, setting: str) -> None:
    """Fail up front, in plain words, if `path` or a folder above it is a file."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            if candidate.is_dir():
                return
            where = "" if candidate == path else f" cannot be made: {shorten(str(candidate))}"
            subject = f"{what} {shorten(str(path))}{where}"
            raise PipelineError(f"{subject} is a file, not a directory: remove or rename it, or point {setting} "
                                f"elsewhere")


# A message is one line a person reads: an engine's dump or a pasted CSV row in it is cut.
_MESSAGE_LIMIT = 1000


def _first_failure(exc: BaseException) -> BaseException:
    """An I/O error raised while another failure was being handled (the quality report written at the end, on
    the same full disk) is a consequence: the failure before it is the one to report."""
    while isinstance(exc, OSError) and isinstance(exc.__context__, Exception) and not exc.__suppress_context__:
        exc = exc.__context__
    return exc


# Lines shown below the message (an error's pointer into a query or a file), each indented and cut.
_DETAIL_LINES = 12
_DETAIL_INDENT = "    "


class _Detailed(PipelineError):
    """A failure whose message is followed by lines of detail (a query error's pointer)."""

    def __init__(self, message: str, details: Sequence[str]) -> None:
        super().__init__(message)
        self.details = tuple(details)


def _lines(text: str) -> tuple[str, list[str]]:
    """A multi-line error (DuckDB's, with its `LINE 1:` and `^^^` pointer): its first line, and the other lines
    that are not blank."""
    first, *rest = text.strip().splitlines() or [""]
    return first, [line.rstrip() for line in rest if line.strip()]


def _failure(exc: BaseException, config: Config | None) -> tuple[str, list[str], int]:
    """The one-line message for a failure, lines of detail to show below it, and the exit status: 2 for the
    config, 1 for anything else."""
    exc = _first_failure(exc)
    details = list(getattr(exc, "details", ()))
    if isinstance(exc, ConfigError):
        return shorten(str(exc), _MESSAGE_LIMIT), details, 2
    if isinstance(exc, (PipelineError, InputError, EngineUnavailable)):
        return shorten(str(exc), _MESSAGE_LIMIT), details, 1
    if isinstance(exc, OSError):
        scratch = "spark.local.dir in spark.conf" if config and config.engine == "spark" else "duckdb.temp_directory"
        return str(ResourceError.from_errno(exc.errno, exc.filename, scratch, reason=exc.strerror or str(exc))), [], 1
    first, details = _lines(str(exc))
    detail = f": {shorten(first)}" if first else ""
    return f"unexpected {type(exc).__name__}{detail} (run again with --verbose for the traceback)", details, 1


def _sql(args: argparse.Namespace, config: Config) -> int:
    """One read-only query over the warehouse, printed in the format asked for."""
    from clickstream.report.tables import formatted
    from clickstream.warehouse import QueryError, query

    try:
        columns, rows = query(Path(config.paths.data_dir), args.query)
    except QueryError as exc:
        first, details = _lines(str(exc))
        raise _Detailed(f"sql: {first}", details) from exc
    shown = rows if args.max_rows is None else rows[:args.max_rows]
    print(formatted(columns, shown, args.format), end="")
    if len(shown) < len(rows) and args.format == "table":
        print(f"({len(rows) - len(shown):,} more rows not shown; --max-rows)")
    return 0


def _history(args: argparse.Namespace, config: Config) -> int:
    """The recorded runs, oldest first."""
    from clickstream.report.history import COLUMNS, rows
    from clickstream.report.tables import formatted

    if args.profile is not None:
        return _profile(args, config)
    runs = rows(Path(config.paths.data_dir), args.last)
    if not runs:
        raise PipelineError(f"no run recorded yet under {shorten(str(Path(config.paths.data_dir) / 'reports' / 'history'))}")
    print(formatted(COLUMNS, [tuple(run[c] for c in COLUMNS) for run in runs], args.format), end="")
    return 0


def _profile(args: argparse.Namespace, config: Config) -> int:
    """One run's longest steps, longest first."""
    from clickstream.profile import top_steps
    from clickstream.report.history import PROFILE_COLUMNS, profile
    from clickstream.report.tables import formatted

    found = profile(Path(config.paths.data_dir), args.profile or None)
    if found is None:
        what = f"run {args.profile!r}" if args.profile else "any run"
        raise PipelineError(f"no profile recorded for {what} under "
                            f"{shorten(str(Path(config.paths.data_dir) / 'reports' / 'history'))} (see "
                            f"`clickstream history` for the runs)")
    run_id, steps = found
    top = top_steps(steps, args.last or 10)
    if args.format == "table":
        print(f"run {escape_terminal(run_id)}: {len(steps)} steps, {sum(s['wall_seconds'] for s in steps):.3f} s "
              f"wall, {sum(s['cpu_seconds'] for s in steps):.3f} s CPU; the {len(top)} longest:")
    print(formatted(PROFILE_COLUMNS, [tuple(step[c] for c in PROFILE_COLUMNS) for step in top], args.format), end="")
    return 0


# Ctrl-C: what the command says, and its exit status (128 + SIGINT, as a shell reports a process it ended).
INTERRUPTED = "interrupted; the next run recovers"
INTERRUPTED_STATUS = 130


class _SigintSeen:
    """While a command runs, SIGINT is noted before the handler in place handles it (Python's own raises
    KeyboardInterrupt; a Spark session's cancels its jobs first): an engine may report the query it stopped in its
    own words (an error about reading a table, say), and the note lets the command still say it was interrupted."""

    def __init__(self) -> None:
        self.seen = False
        self._previous: Any = None

    def __enter__(self) -> _SigintSeen:
        # not where SIGINT is ignored (a job started in the background by a script): it stays ignored
        if threading.current_thread() is threading.main_thread() and callable(signal.getsignal(signal.SIGINT)):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        self.seen = True
        self._previous(signum, frame)
        raise KeyboardInterrupt  # a handler in place that returned: the command stops all the same


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    setup_logging(args.verbose, quiet=quiet)
    with _SigintSeen() as sigint:
        return _main(args, quiet, sigint)


def _main(args: argparse.Namespace, quiet: bool, sigint: _SigintSeen) -> int:
    config: Config | None = None
    try:
        config = _config(args)
        _check_directory(Path(config.paths.data_dir), "data directory", "--data-dir (paths.data_dir)")
        if args.command == "generate":
            try:
                _generate(args, config)
            except ValueError as exc:  # the generator's argument checks
                raise PipelineError(f"generate: {exc}") from exc
            return 0
        if args.command == "verify":
            return _verify(config, args.wait)
        if args.command == "repair-manifest":
            return _repair_manifest(config, args.wait)
        if args.command == "sql":
            return _sql(args, config)
        if args.command == "history":
            return _history(args, config)
        _check_directory(config.logs_dir, "logs directory", "paths.logs_dir")
        if args.command == "watch":
            return _watch(args, config)
        return _run(args, config, quiet)
    except (Exception, KeyboardInterrupt) as exc:  # one line saying what to do; the traceback only with --verbose
        if isinstance(exc, KeyboardInterrupt) or sigint.seen:
            # the writer lock is released and staging cleared on the way here; the next run's recovery finishes
            # or undoes a publish the signal cut
            line, status = f"clickstream: {INTERRUPTED}", INTERRUPTED_STATUS
        else:
            message, details, status = _failure(exc, config)
            line = "\n".join([f"clickstream: error: {escape_terminal(message)}", *(
                _DETAIL_INDENT + escape_terminal(shorten(detail)) for detail in details[:_DETAIL_LINES])])
        print(line, file=sys.stderr)
        if args.verbose:
            print(escape_terminal_lines("".join(traceback.format_exception(exc))).rstrip("\n"), file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
