"""Config fails loudly: unknown keys, wrong types, values out of bounds and missing files are errors naming the key
and the file, on one line."""
from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from clickstream.config import (STRFTIME_CODES, Analytics, Cart, Config, ConfigError, CsvOptions, DuckDBSettings,
                                Funnel, Gold, Quality, Retention, Segments, SilverRules, Source, SparkSettings,
                                Threshold, TimestampRange, duration_seconds, load_config)
from clickstream.engines.spark_formats import _STRFTIME_TO_JAVA

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def refused(tmp_path: Path, text: str) -> str:
    """The message of the error loading `text`, checked to name the file and to be one line."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message
    assert "\n" not in message
    return message


def test_the_shipped_config_states_exactly_the_defaults():
    assert load_config(REPO / "config" / "config.yaml") == Config()


def test_a_partial_config_keeps_the_other_defaults(tmp_path):
    config = load_config(write(tmp_path, "gold:\n  session_timeout_minutes: 45\nengine: spark\n"))
    assert (config.gold.session_timeout_minutes, config.engine, config.silver) == (45, "spark", Config().silver)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("silver:\n  requried_columns: [user_id]\n", "unknown key 'silver.requried_columns'"),
        ("enigne: duckdb\n", "unknown key 'enigne'"),
        ("engine: postgres\n", "key 'engine'"),
        ("gold:\n  session_timeout_minutes: soon\n", "key 'gold.session_timeout_minutes'"),
        ("gold:\n  session_timeout_minutes: -5\n", "key 'gold.session_timeout_minutes'"),
        ("quality:\n  quarantine_rate: {warn: 0.5, fail: 0.1}\n", "warn must not exceed fail"),
        ("sources:\n  - name: s\n    columns: {UserID: uid}\n", "must be mapped to a column of the file"),
        ("sources:\n  - name: s\n    columns: {UserId: uid}\n", "unknown canonical column"),
        ("sources:\n  - name: a\n  - name: a\n", "source names must be unique"),
        ("silver:\n  required_columns: [event_type]\n", "must include ['user_id']"),
        ("gold:\n  cart_add_event_types: [add_to_basket]\n",
         "key 'gold.cart_add_event_types.0': 'add_to_basket' is not a known event type"),
        ("silver:\n  required_columns: [user_id, event_type, product_id]\n", "key 'silver.required_columns.2'"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("engine: [unclosed\n", "invalid YAML"),
    ],
)
def test_bad_config_is_an_error_naming_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=None) as error:
        load_config(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


SOURCE = "sources:\n  - name: s\n"
KNOWN = "(known: add_to_cart, click, login, logout, page_view, product_view, purchase; list other types under " \
        "silver.extra_event_types)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("analytics:\n  html_report: maybe\n", "key 'analytics.html_report': Input should be a valid boolean"),
        # engine settings
        ("duckdb:\n  threads: 0\n", "key 'duckdb.threads': Input should be greater than or equal to 1"),
        ("duckdb:\n  threads: 257\n", "key 'duckdb.threads': Input should be less than or equal to 256"),
        ("duckdb:\n  memory_limit: lots\n", "key 'duckdb.memory_limit': 'lots' is not a memory size DuckDB reads"),
        ("duckdb:\n  memory_limit: 6GBs\n", "key 'duckdb.memory_limit': '6GBs' is not a memory size DuckDB reads"),
        ("duckdb:\n  memory_limit: 1PB\n", "key 'duckdb.memory_limit': '1PB' is not a memory size DuckDB reads"),
        # DuckDB reads these, but a percentage is not read by every supported DuckDB version, 'none' lifts the
        # limit (null already means DuckDB's default) and a zero limit fails every query
        ("duckdb:\n  memory_limit: 80%\n", "key 'duckdb.memory_limit': '80%' is not a memory size DuckDB reads"),
        ("duckdb:\n  memory_limit: none\n", "key 'duckdb.memory_limit': 'none' is not a memory size DuckDB reads"),
        ("duckdb:\n  memory_limit: 0GB\n", "key 'duckdb.memory_limit': '0GB' must be more than zero"),
        ("duckdb:\n  memory_limit: 16777216TiB\n", "key 'duckdb.memory_limit': '16777216TiB' is more than DuckDB"),
        ("spark:\n  driver_memory: 2gb\n", "key 'spark.driver_memory': '2gb' is not a JVM memory size"),
        ("spark:\n  driver_memory: '512'\n", "key 'spark.driver_memory': '512' is not a JVM memory size"),
        ("spark:\n  driver_memory: 1.5g\n", "key 'spark.driver_memory': '1.5g' is not a JVM memory size"),
        ("spark:\n  executor_memory: lots\n", "key 'spark.executor_memory': 'lots' is not a JVM memory size"),
        ("spark:\n  driver_memory: 100m\n", "key 'spark.driver_memory': '100m' is too small: Spark needs at least"),
        # sources
        (SOURCE + "    timezone: Mars/Olympus\n",
         "key 'sources.0.timezone': 'Mars/Olympus' is not a time zone of the tz database (e.g. 'UTC'"),
        (SOURCE + "    timezone: Europe/Pari\n",
         "key 'sources.0.timezone': 'Europe/Pari' is not a time zone of the tz database; did you mean 'Europe/Paris'?"),
        (SOURCE + "    timezone: localtime\n", "key 'sources.0.timezone': 'localtime' is not a time zone"),
        (SOURCE + "    timezone: posix/UTC\n", "key 'sources.0.timezone': 'posix/UTC' is not a time zone"),
        (SOURCE + "    timestamp_formats: ['%Y-%m-%d', '%Y-%m-%d %Q']\n",
         "key 'sources.0.timestamp_formats.1': '%Y-%m-%d %Q' uses '%Q', which is not supported (supported: %Y %y "
         "%m %d %H %I %M %S %f %p %b %B %j %%)"),
        (SOURCE + "    timestamp_formats: ['%Y-%m-%dT%H:%M:%S%z']\n",
         "key 'sources.0.timestamp_formats.0': '%Y-%m-%dT%H:%M:%S%z' uses %z: timestamps must be written without a "
         "zone, and sources[].timezone names their zone"),
        (SOURCE + "    timestamp_formats: ['%Y-%m-%d %H:%M:%S %Z']\n",
         "uses %Z: timestamps must be written without a zone, and sources[].timezone names their zone"),
        (SOURCE + "    timestamp_formats: ['']\n", "key 'sources.0.timestamp_formats.0': '' is an empty format"),
        (SOURCE + "    timestamp_formats: ['%d%']\n",
         "key 'sources.0.timestamp_formats.0': '%d%' ends with a lone '%'; write '%%' for a percent sign"),
        (SOURCE + "    timestamp_formats: ['%Y-%m-%d %H:%M:%S', epoch_msec]\n",
         "key 'sources.0.timestamp_formats.1': 'epoch_msec' has no strftime code and is not a keyword (epoch_s, "
         "epoch_ms, epoch_us, epoch_ns, iso8601); did you mean 'epoch_ms'?"),
        (SOURCE + "    timestamp_formats: [ISO8601]\n",
         "key 'sources.0.timestamp_formats.0': 'ISO8601' has no strftime code and is not a keyword"),
        (SOURCE + "    timestamp_formats: ['100%%']\n",
         "key 'sources.0.timestamp_formats.0': '100%%' has no strftime code and is not a keyword"),
        (SOURCE + "    csv: {delimiter: ';', quote: ';'}\n", "key 'sources.0.csv.quote': ';' is also the delimiter"),
        (SOURCE + "    csv: {escape: ','}\n", "key 'sources.0.csv.escape': ',' is also the delimiter"),
        (SOURCE + '    csv: {quote: "\\n"}\n', "key 'sources.0.csv.quote': '\\n' is a line break, which ends a row"),
        (SOURCE + '    csv: {escape: "\\n"}\n', "key 'sources.0.csv.escape': '\\n' is a line break"),
        (SOURCE + '    csv: {delimiter: "\\r"}\n', "key 'sources.0.csv.delimiter': '\\r' is a line break"),
        (SOURCE + "    glob: ''\n", "key 'sources.0.glob': must not be empty"),
        (SOURCE + "    glob: /data/*.csv\n",
         "key 'sources.0.glob': '/data/*.csv' is absolute; a glob is relative to <data_dir>/raw"),
        (SOURCE + "    glob: 'C:\\data\\*.csv'\n", "key 'sources.0.glob': 'C:\\\\data\\\\*.csv' is absolute"),
        (SOURCE + "    glob: ../other/*.csv\n",
         "key 'sources.0.glob': '../other/*.csv' leaves <data_dir>/raw through '..'"),
        (SOURCE + "    glob: shop/../../*.csv\n", "key 'sources.0.glob': 'shop/../../*.csv' leaves <data_dir>/raw"),
        (SOURCE + "    glob: 'exports**.csv'\n",
         "key 'sources.0.glob': 'exports**.csv': '**' stands for any number of folders only as a whole part"),
        # rules and analytics
        ("analytics:\n  funnel: {steps: []}\n", "key 'analytics.funnel.steps': needs at least one step"),
        ("analytics:\n  funnel: {steps: [product_view, purchase, product_view]}\n",
         "key 'analytics.funnel.steps.2': step 'product_view' appears more than once"),
        ("analytics:\n  funnel: [product_view, purchase]\n",
         "key 'analytics.funnel': must be a mapping: write the steps under 'steps', e.g. {steps: [product_view, "
         "add_to_cart, purchase], window: 7d}"),
        ("analytics:\n  funnel: {window: 7x}\n", "key 'analytics.funnel.window': '7x' is not a duration: a whole "
         "number and a unit s, m, h or d, e.g. '30m', '24h' or '7d'"),
        ("analytics:\n  funnel: {window: 7}\n", "key 'analytics.funnel.window': '7' is not a duration"),
        ("analytics:\n  funnel: {window: 1.5h}\n", "key 'analytics.funnel.window': '1.5h' is not a duration"),
        ("analytics:\n  funnel: {window: 0m}\n", "key 'analytics.funnel.window': '0m' must be longer than zero"),
        ("analytics:\n  funnel: {window: ' 7d'}\n", "key 'analytics.funnel.window': ' 7d' is not a duration"),
        ("analytics:\n  cart: {window: 24 h}\n", "key 'analytics.cart.window': '24 h' is not a duration"),
        ("analytics:\n  cart: {window: 2w}\n", "key 'analytics.cart.window': '2w' is not a duration"),
        ("analytics:\n  funnel: {scope: session}\n", "key 'analytics.funnel.scope': Input should be 'user' or 'visit'"),
        ("analytics:\n  funnel: {breakdown: is_buyer}\n", "key 'analytics.funnel.breakdown': 'is_buyer' is neither a "
         "column of dim_users nor one of gold.visit_attributes; did you mean 'is_purchaser'? (choices: user_key, "
         "user_id, first_seen_ts"),
        ("analytics:\n  retention: {period: month}\n",
         "key 'analytics.retention.period': Input should be 'day' or 'week'"),
        ("analytics:\n  paths: {steps: 0}\n", "key 'analytics.paths.steps': Input should be greater than or equal"),
        ("analytics:\n  top_products: {rank_by: clicks}\n",
         "key 'analytics.top_products.rank_by': Input should be 'views', 'revenue' or 'purchases'"),
        ("analytics:\n  segments: {thresholds: deciles}\n",
         "key 'analytics.segments.thresholds': Input should be 'quantiles' or 'fixed'"),
        ("analytics:\n  segments: {high_percent: 60, medium_percent: 50}\n",
         "key 'analytics.segments': high_percent + medium_percent (60 + 50) must not exceed 100"),
        ("analytics:\n  segments: {high_min_events: 5, medium_min_events: 10}\n",
         "key 'analytics.segments': medium_min_events must not exceed high_min_events"),
        ("analytics:\n  rfm: {min_days: -1}\n", "key 'analytics.rfm.min_days': Input should be greater than"),
        ("analytics:\n  churn: {horizon: 36h}\n",
         "key 'analytics.churn.horizon': '36h' is not a whole number of days, e.g. '28d'"),
        ("analytics:\n  churn: {horizon: 0d}\n", "key 'analytics.churn.horizon': '0d' must be longer than zero"),
        ("analytics:\n  churn: {horizn: 7d}\n", "unknown key 'analytics.churn.horizn' (did you mean 'horizon'?)"),
        ("analytics:\n  churn: {enabled: maybe}\n", "key 'analytics.churn.enabled': Input should be a valid boolean"),
        ("analytics:\n  clusters: {k: 13}\n",
         "key 'analytics.clusters.k': '13' is not a number of clusters: auto, or a whole number from 2 to 12"),
        ("analytics:\n  clusters: {k: 1}\n", "key 'analytics.clusters.k': '1' is not a number of clusters"),
        ("analytics:\n  clusters: {k: automatic}\n", "key 'analytics.clusters.k': 'automatic' is not a number"),
        ("gold:\n  session_timeout_minutes: .inf\n", "key 'gold.session_timeout_minutes': Input should be a finite"),
        ("gold:\n  session_timeout_minutes: .nan\n", "key 'gold.session_timeout_minutes': Input should be a finite"),
        ("gold:\n  session_timeout_minutes: 0\n", "key 'gold.session_timeout_minutes': Input should be greater than 0"),
        ("quality:\n  quarantine_rate: {warn: .nan, fail: 0.5}\n",
         "key 'quality.quarantine_rate.warn': Input should be a finite number"),
        ("quality:\n  duplicate_rate: {warn: 0.1, fail: .nan}\n",
         "key 'quality.duplicate_rate.fail': Input should be a finite number"),
        ("silver:\n  timestamp_range: {min: 2030-01-01, max: 2020-01-01}\n",
         "key 'silver.timestamp_range': min (2030-01-01 00:00:00) must be before max (2020-01-01 00:00:00)"),
        ("silver:\n  timestamp_range: {min: 2020-01-01 00:00:00, max: 2020-01-01 00:00:00}\n",
         "key 'silver.timestamp_range': min (2020-01-01 00:00:00) must be before max (2020-01-01 00:00:00)"),
        ("silver:\n  timestamp_range: {min: 2020-01-01 00:00:00, max: 2020-01-01T00:30:00+01:00}\n",
         "key 'silver.timestamp_range': min (2020-01-01 00:00:00) must be before max (2019-12-31 23:30:00)"),
        # event types: mapping targets and funnel steps are canonical names
        (SOURCE + "    event_types: {cart: add-to-cart}\n",
         f"key 'sources.0.event_types.cart': 'add-to-cart' is not a known event type; did you mean 'add_to_cart'? "
         f"{KNOWN}"),
        ("sources:\n  - name: a\n  - name: b\n    event_types: {view: page_view, wish: wishlist}\n",
         f"key 'sources.1.event_types.wish': 'wishlist' is not a known event type {KNOWN}"),
        ("analytics:\n  funnel: {steps: [product_view, checkout]}\n",
         f"key 'analytics.funnel.steps.1': 'checkout' is not a known event type {KNOWN}"),
        ("silver:\n  product_event_types: [product_view, purchase]\n",
         "key 'analytics.funnel.steps.1': 'add_to_cart' is not a known event type"),
        ("silver:\n  amount_required_for: [purchase, add_to_crt]\n",
         "key 'silver.amount_required_for.1': 'add_to_crt' is not a known event type; did you mean 'add_to_cart'?"),
        ("analytics:\n  retention: {start_event: signup}\n",
         f"key 'analytics.retention.start_event': 'signup' is not a known event type {KNOWN}"),
        ("analytics:\n  retention: {return_event: purchse}\n",
         "key 'analytics.retention.return_event': 'purchse' is not a known event type; did you mean 'purchase'?"),
        ("duckdb:\n  memory_limit: 63.9MB\n", "key 'duckdb.memory_limit': '63.9MB' is too small: a run needs at least "
         "'64MB'"),
        ("duckdb:\n  memory_limit: 61MiB\n", "key 'duckdb.memory_limit': '61MiB' is too small"),
    ],
)
def test_a_value_out_of_bounds_is_an_error_naming_the_file_and_key(tmp_path, text, message):
    assert message in refused(tmp_path, text)


def test_every_problem_is_named_in_the_one_line(tmp_path):
    text = SOURCE + "    timestamp_formats: ['%Y %Q', '%Y', '%z']\n    csv: {delimiter: ';', quote: ';', escape: ';'}\n"
    path = write(tmp_path, text)
    assert refused(tmp_path, text) == (
        f"invalid config {path}: key 'sources.0.csv.quote': ';' is also the delimiter; "
        "key 'sources.0.csv.escape': ';' is also the delimiter; "
        "key 'sources.0.timestamp_formats.0': '%Y %Q' uses '%Q', which is not supported (supported: %Y %y %m %d %H "
        "%I %M %S %f %p %b %B %j %%); "
        "key 'sources.0.timestamp_formats.2': '%z' uses %z: timestamps must be written without a zone, and "
        "sources[].timezone names their zone (the engines read zones in the text differently)")


LONG = 100_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SOURCE + f"    timezone: {'x' * LONG}\n", f"key 'sources.0.timezone': '{'x' * 200}'... ({LONG} characters)"),
        (SOURCE + f"    event_types: {{a: {'x' * LONG}}}\n",
         f"key 'sources.0.event_types.a': '{'x' * 200}'... ({LONG} characters) is not a known event type"),
        (SOURCE + f"    timestamp_formats: ['%Q{'x' * LONG}']\n",
         f"key 'sources.0.timestamp_formats.0': '%Q{'x' * 198}'... ({LONG + 2} characters) uses '%Q'"),
        (f"duckdb:\n  memory_limit: '1{'x' * LONG}'\n", f"'1{'x' * 199}'... ({LONG + 1} characters) is not a memory"),
        (SOURCE + f"    glob: '/{'x' * LONG}'\n", f"'/{'x' * 199}'... ({LONG + 1} characters) is absolute"),
        (f"{'k' * 1000}: 1\n", f"unknown key '{'k' * 200}...'"),
        (SOURCE + f"    event_types: {{{'k' * 1000}: nope}}\n", f"key 'sources.0.event_types.{'k' * 200}...': 'nope'"),
        (SOURCE + f"    columns: {{UserID: u, Timestamp: t, EventType: e, {'C' * 1000}: c}}\n",
         f"unknown canonical column(s) '{'C' * 200}'... (1000 characters); expected"),
        (f"sources:\n  - name: {'n' * LONG}\n  - name: {'n' * LONG}\n",
         f"source names must be unique, '{'n' * 200}'... ({LONG} characters) is used more than once"),
    ],
)
def test_a_value_quoted_in_a_message_is_cut_to_200_characters(tmp_path, text, message):
    quoted = refused(tmp_path, text)
    assert message in quoted
    assert len(quoted) < 700


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("duckdb:\n  threads: 1\n", Config(duckdb=DuckDBSettings(threads=1))),
        ("duckdb:\n  threads: 256\n", Config(duckdb=DuckDBSettings(threads=256))),
        ("duckdb:\n  memory_limit: 512MiB\n", Config(duckdb=DuckDBSettings(memory_limit="512MiB"))),
        ("duckdb:\n  memory_limit: 1.5 GB\n", Config(duckdb=DuckDBSettings(memory_limit="1.5 GB"))),
        ("spark:\n  driver_memory: 512m\n  executor_memory: 4G\n",
         Config(spark=SparkSettings(driver_memory="512m", executor_memory="4G"))),
        (SOURCE + "    timezone: America/Argentina/Buenos_Aires\n",
         Config(sources=[Source(name="s", timezone="America/Argentina/Buenos_Aires")])),
        (SOURCE + "    timestamp_formats: ['%m/%d/%Y %I:%M %p', '%d %b %Y, 100%%']\n",
         Config(sources=[Source(name="s", timestamp_formats=["%m/%d/%Y %I:%M %p", "%d %b %Y, 100%%"])])),
        (SOURCE + "    timestamp_formats: [epoch_s, epoch_ms, epoch_us, epoch_ns, iso8601, '%Y']\n",
         Config(sources=[Source(name="s", timestamp_formats=["epoch_s", "epoch_ms", "epoch_us", "epoch_ns",
                                                              "iso8601", "%Y"])])),
        (SOURCE + "    glob: exports/shop..2_*.csv\n    csv: {delimiter: \"\\t\", quote: \"'\", escape: \"\\\\\"}\n",
         Config(sources=[Source(name="s", glob="exports/shop..2_*.csv",
                                csv=CsvOptions(delimiter="\t", quote="'", escape="\\"))])),
        ("silver:\n  extra_event_types: [wishlist]\n" + SOURCE + "    event_types: {wish: wishlist, View: page_view}\n"
         "analytics:\n  funnel: {steps: [product_view, wishlist, purchase]}\n",
         Config(silver=SilverRules(extra_event_types=["wishlist"]),
                sources=[Source(name="s", event_types={"wish": "wishlist", "View": "page_view"})],
                analytics=Analytics(funnel=Funnel(steps=["product_view", "wishlist", "purchase"])))),
        ("analytics:\n  funnel: {steps: [login]}\n", Config(analytics=Analytics(funnel=Funnel(steps=["login"])))),
        ("analytics:\n  funnel: {window: 1s, scope: visit, breakdown: is_purchaser}\n  cart: {window: 30m}\n",
         Config(analytics=Analytics(funnel=Funnel(window="1s", scope="visit", breakdown="is_purchaser"),
                                    cart=Cart(window="30m")))),
        ("analytics:\n  retention: {period: day, start_event: purchase, return_event: login}\n",
         Config(analytics=Analytics(retention=Retention(period="day", start_event="purchase",
                                                        return_event="login")))),
        ("analytics:\n  segments: {thresholds: fixed, high_percent: 100, medium_percent: 0}\n",
         Config(analytics=Analytics(segments=Segments(thresholds="fixed", high_percent=100, medium_percent=0)))),
        ("gold:\n  session_timeout_minutes: 0.5\nquality:\n  quarantine_rate: {warn: 0, fail: 1}\n",
         Config(gold=Gold(session_timeout_minutes=0.5), quality=Quality(quarantine_rate=Threshold(warn=0, fail=1)))),
        ("silver:\n  timestamp_range: {min: 2020-01-01 00:00:00, max: 2030-01-01T01:00:00+01:00}\n",
         Config(silver=SilverRules(timestamp_range=TimestampRange(min=dt.datetime(2020, 1, 1),
                                                                  max=dt.datetime(2030, 1, 1))))),
        ("duckdb:\n  memory_limit: 64MB\n", Config(duckdb=DuckDBSettings(memory_limit="64MB"))),
        ("duckdb:\n  memory_limit: 62MiB\n", Config(duckdb=DuckDBSettings(memory_limit="62MiB"))),
    ],
)
def test_values_at_the_edge_of_the_bounds_are_kept(tmp_path, text, expected):
    assert load_config(write(tmp_path, text)) == expected


@pytest.mark.parametrize(("text", "seconds"), [("1s", 1), ("30m", 1800), ("24h", 86400), ("7d", 604800),
                                              ("999999999d", 999999999 * 86400)])
def test_a_duration_is_read_in_seconds(tmp_path, text, seconds):
    config = load_config(write(tmp_path, f"analytics:\n  funnel: {{window: {text}}}\n  cart: {{window: {text}}}\n"))
    assert (config.analytics.funnel.window_seconds, config.analytics.cart.window_seconds) == (seconds, seconds)
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"])
def test_a_tz_database_zone_is_accepted_and_duckdb_converts_with_it(tmp_path, zone):
    config = load_config(write(tmp_path, SOURCE + f"    timezone: {zone}\n"))
    assert config.sources == [Source(name="s", timezone=zone)]
    noon = dt.datetime(2024, 6, 1, 12, 0)
    expected = noon.replace(tzinfo=ZoneInfo(zone)).astimezone(dt.timezone.utc).replace(tzinfo=None)
    converted = duckdb.connect().execute(f"select cast(timezone('{zone}', timestamp '{noon}') as timestamp)")
    assert converted.fetchone() == (expected,)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "localtime", "posixrules", "posix/UTC", "right/UTC"])
def test_a_refused_zone_is_one_duckdb_does_not_know(zone):
    with pytest.raises(ValueError, match="is not a time zone of the tz database"):
        Source(timezone=zone)
    with pytest.raises(duckdb.Error, match="Unknown TimeZone"):
        duckdb.connect().execute(f"select timezone('{zone}', timestamp '2024-06-01 12:00')")


def test_the_strftime_codes_are_those_the_engines_translate():
    assert sorted(STRFTIME_CODES) == sorted(_STRFTIME_TO_JAVA)


@pytest.mark.parametrize("size", ["6GB", "6 GB", " 6gb ", "512MiB", "1.5GB", ".5GB", "4g", "2 terabytes",
                                  "16777215TiB"])
def test_a_memory_limit_the_config_accepts_is_one_duckdb_accepts(size):
    assert DuckDBSettings(memory_limit=size).memory_limit == size
    con = duckdb.connect()
    con.execute(f"set memory_limit = '{size}'")  # raises if DuckDB cannot read it


@pytest.mark.parametrize("size", ["lots", "", "GB", "1.5.5GB", "6GBs", "6GB6", "1PB", "2,5GB", "\uff11GB", "16777216TiB"])
def test_a_memory_limit_the_config_refuses_is_one_duckdb_refuses(size):
    with pytest.raises(ValueError, match="memory size DuckDB reads|more than DuckDB can hold"):
        DuckDBSettings(memory_limit=size)
    with pytest.raises(duckdb.Error):
        duckdb.connect().execute(f"set memory_limit = '{size}'")


HEADERLESS = SOURCE + "    csv: {header: false}\n"


@pytest.mark.parametrize(("text", "message"), [
    (HEADERLESS + "    columns: {UserID: user_id, Timestamp: 4, EventType: 3}\n",
     "key 'sources.0.columns.UserID': 'user_id' is not a position: with csv.header false, map each column to its "
     "0-based position in the row, e.g. UserID: 0"),
    (HEADERLESS + "    columns: {UserID: '0', Timestamp: 4, EventType: 3}\n",
     "key 'sources.0.columns.UserID': '0' is not a position"),
    (HEADERLESS + "    columns: {UserID: 0, Timestamp: -1, EventType: 3}\n",
     "key 'sources.0.columns.Timestamp': -1 is negative: positions count from 0 (the row's first field)"),
    (HEADERLESS + "    columns: {UserID: 0, Timestamp: 1.0, EventType: 3}\n",
     "key 'sources.0.columns.Timestamp': '1.0' is neither a column name nor a position"),
    (HEADERLESS + "    columns: {UserID: 0, Timestamp: true, EventType: 3}\n",
     "key 'sources.0.columns.Timestamp': 'True' is neither a column name nor a position"),
    (SOURCE + "    columns: {UserID: 0, Timestamp: when, EventType: action}\n",
     "key 'sources.0.columns.UserID': 0 is a position, but csv.header is true: name the header's column, or set "
     "csv.header: false"),
    (HEADERLESS, "key 'sources.0.columns.UserID': 'UserID' is not a position"),  # the default names need a header
])
def test_columns_are_names_with_a_header_and_positions_without_one(tmp_path, text, message):
    assert message in refused(tmp_path, text)


def test_a_headerless_source_maps_columns_to_positions(tmp_path):
    config = load_config(write(tmp_path, HEADERLESS + "    columns: {UserID: 0, Timestamp: 4, EventType: 3, "
                                                      "ProductID: 1, SessionID: null}\n"))
    assert (config.sources[0].csv.header, config.sources[0].columns) == (False, {
        "UserID": 0, "SessionID": None, "Timestamp": 4, "EventType": 3, "ProductID": 1, "Amount": None,
        "Outcome": None, "EventID": None})


def test_the_readme_source_example_is_a_valid_config(tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Mapping a feed by hand"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)
    config = load_config(write(tmp_path, block))
    assert config.sources == [
        Source(),
        Source(name="shop2", glob="shop2_*.csv", csv=CsvOptions(delimiter=";"),
               columns={"UserID": "customer", "SessionID": None, "Timestamp": "when", "EventType": "action",
                        "ProductID": "sku", "Amount": "price", "Outcome": None},
               event_types={"view": "page_view", "buy": "purchase"}, timestamp_formats=["%d/%m/%Y %H:%M"],
               timezone="Europe/Paris"),
    ]


def test_the_headerless_source_example_of_the_docs_is_a_valid_config(tmp_path):
    page = (REPO / "docs" / "SOURCES.md").read_text(encoding="utf-8")
    section = page[page.index("## Files without a header line"):]
    block = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)[0]
    config = load_config(write(tmp_path, "silver: {extra_event_types: [favorite]}\nsources:\n" + block))
    assert config.sources == [
        Source(name="taobao", glob="UserBehavior*.csv", csv=CsvOptions(header=False),
               columns={"UserID": 0, "SessionID": None, "Timestamp": 4, "EventType": 3, "ProductID": 1,
                        "Amount": None, "Outcome": None},
               event_types={"pv": "product_view", "cart": "add_to_cart", "buy": "purchase", "fav": "favorite"})]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("duckdb:\n  threads: 1000\n", "key 'duckdb.threads': Input should be less than or equal to 256"),
        (SOURCE + "    timezone: Mars/Olympus\n", "key 'sources.0.timezone': 'Mars/Olympus' is not a time zone of "
         "the tz database (e.g. 'UTC', 'Europe/Paris', 'America/New_York')"),
        (SOURCE + "    event_types: {cart: add-to-cart}\n", "key 'sources.0.event_types.cart': 'add-to-cart' is not "
         f"a known event type; did you mean 'add_to_cart'? {KNOWN}"),
        ("duckdb:\n  memory_limit: 1KB\n", "key 'duckdb.memory_limit': '1KB' is too small: a run needs at least "
         "'64MB' (below it DuckDB cannot hold even a few hundred rows' tables)"),
        ("engine: duckdb\nengine: spark\n", "key 'engine' is given twice, on line 1 and line 2 (YAML would keep "
         "the last silently): keep one"),
    ],
)
def test_the_command_line_exits_2_with_one_line_naming_the_key_and_file(tmp_path, text, message):
    path = write(tmp_path, text)
    done = subprocess.run([sys.executable, "-m", "clickstream.cli", "run", "--config", str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (2, f"clickstream: error: invalid config {path}: {message}\n")


@pytest.mark.parametrize(("text", "key", "lines"), [
    ("quality:\n  quarantine_rate: {warn: 0.01, fail: 0.05}\n  min_rows: 0\n  quarantine_rate: {warn: 0.5, "
     "fail: 0.6}\n", "quarantine_rate", (2, 4)),
    ("engine: duckdb\npaths:\n  data_dir: data\nengine: spark\n", "engine", (1, 4)),
    ("sources:\n  - name: a\n    glob: '*.csv'\n    name: b\n", "name", (2, 4)),
    ("quality:\n  quarantine_rate: {warn: 0.01, fail: 0.05, fail: 0.9}\n", "fail", (2, 2)),
    ("analytics:\n  top_n: 5\n  'top_n': 6\n", "top_n", (2, 3)),
])
def test_a_key_given_twice_is_refused_naming_it_and_its_lines(tmp_path, text, key, lines):
    path = write(tmp_path, text)
    assert refused(tmp_path, text) == (f"invalid config {path}: key '{key}' is given twice, on line {lines[0]} and "
                                       f"line {lines[1]} (YAML would keep the last silently): keep one")


@pytest.mark.parametrize(("text", "message"), [
    ("sources:\n  - name: a\n    timestamp_format: '%Y'\n",
     "unknown key 'sources.0.timestamp_format' (did you mean 'timestamp_formats'?)"),
    ("enigne: spark\n", "unknown key 'enigne' (did you mean 'engine'?)"),
    ("quality:\n  quarantine_rate: {warn: 0.1, fail: 0.2, fial: 0.3}\n",
     "unknown key 'quality.quarantine_rate.fial' (did you mean 'fail'?)"),
    ("analytics:\n  funnel: {stpes: [purchase]}\n", "unknown key 'analytics.funnel.stpes' (did you mean 'steps'?)"),
    ("paths:\n  timestamp_format: x\n", "unknown key 'paths.timestamp_format'"),  # nothing close among paths' keys
])
def test_an_unknown_key_is_named_with_the_closest_key_of_its_section(tmp_path, text, message):
    path = write(tmp_path, text)
    assert refused(tmp_path, text) == f"invalid config {path}: {message}"


def test_a_merged_mapping_may_still_be_overridden(tmp_path):
    config = load_config(write(tmp_path, "quality:\n  quarantine_rate: &gate {warn: 0.01, fail: 0.05}\n"
                               "  duplicate_rate:\n    <<: *gate\n    fail: 0.2\n"))
    assert config.quality.duplicate_rate == Threshold(warn=0.01, fail=0.2)


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_command_line_overrides_are_validated_too(tmp_path):
    config = Config().with_overrides(data_dir=tmp_path, engine="spark")
    assert (config.paths.data_dir, config.engine) == (tmp_path, "spark")
    with pytest.raises(Exception, match="engine"):
        Config().with_overrides(engine="oracle")


SEGMENT = SOURCE + "    columns: {UserID: userId, Timestamp: timestamp, EventType: event, EventID: messageId}\n"
BRANDED = SOURCE + "    attributes: {brand: brand_name, channel: utm_source}\n"


@pytest.mark.parametrize(("text", "message"), [
    (SEGMENT + "    identity_columns: [model_id]\n",
     "key 'sources.0.identity_columns': must be empty when columns.EventID is mapped"),
    (SOURCE + "    identity_columns: [model_id, model_id]\n",
     "key 'sources.0.identity_columns.1': 'model_id' is listed twice"),
    (SOURCE + "    identity_columns: [UserID]\n",
     "key 'sources.0.identity_columns.0': 'UserID' is mapped as columns.UserID: name an unmapped column"),
    (SOURCE + "    identity_columns: ['  ']\n", "key 'sources.0.identity_columns.0': is empty"),
    (HEADERLESS + "    columns: {UserID: 0, Timestamp: 1, EventType: 2}\n    identity_columns: [model_id]\n",
     "key 'sources.0.identity_columns.0': 'model_id' is not a position"),
    (HEADERLESS + "    columns: {UserID: 0, Timestamp: 1, EventType: 2}\n    attributes: {brand: 1}\n",
     "key 'sources.0.attributes.brand': '1' is mapped as columns.Timestamp"),
    (SOURCE + "    attributes: {user_id: uid}\n",
     "key 'sources.0.attributes.user_id': 'user_id' is already a column name (of bronze or silver)"),
    (SOURCE + "    attributes: {eventid: x}\n", "key 'sources.0.attributes.eventid': 'eventid' is already a column"),
    (SOURCE + "    attributes: {extra: x}\n", "key 'sources.0.attributes.extra': 'extra' is already a column"),
    (SOURCE + "    attributes: {amount_text: x}\n", "key 'sources.0.attributes.amount_text': 'amount_text' is already"),
    (SOURCE + "    attributes: {Brand: brand}\n", "key 'sources.0.attributes.Brand': 'Brand' is not an attribute name"),
    (SOURCE + "    attributes: {brand: ProductID}\n",
     "key 'sources.0.attributes.brand': 'ProductID' is mapped as columns.ProductID"),
    (BRANDED + "gold: {product_attributes: [brnd]}\n",
     "key 'gold.product_attributes.0': 'brnd' is not an attribute of any source; did you mean 'brand'? "
     "(sources[].attributes names: brand, channel)"),
    (SOURCE + "    attributes: {views: v}\ngold: {product_attributes: [views]}\n",
     "key 'gold.product_attributes.0': 'views' is already a column of dim_products: rename the attribute"),
    (BRANDED + "gold: {visit_attributes: [channel, channel]}\n",
     "key 'gold.visit_attributes.1': 'channel' is listed twice"),
    (BRANDED + "analytics: {funnel: {breakdown: chanel}}\n",
     "key 'analytics.funnel.breakdown': 'chanel' is neither a column of dim_users nor one of gold.visit_attributes"),
])
def test_identity_columns_and_attributes_are_checked_at_load(tmp_path, text, message):
    assert message in refused(tmp_path, text)


def test_attributes_identity_columns_and_a_visit_attribute_breakdown_load(tmp_path):
    config = load_config(write(tmp_path, BRANDED + "    identity_columns: [model_id, 7]\n"
                                         "gold: {product_attributes: [brand], visit_attributes: [channel]}\n"
                                         "analytics: {funnel: {breakdown: channel}}\n"))
    source = config.sources[0]
    assert (source.attributes, source.identity_columns, config.attribute_names, config.analytics.funnel.breakdown) \
        == ({"brand": "brand_name", "channel": "utm_source"}, ["model_id", "7"], ["brand", "channel"], "channel")
