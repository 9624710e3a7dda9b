"""Plain PySpark: the clickstream medallion written by hand, without the clickstream framework.

What a competent engineer would write to do the same work in one PySpark script, for the benchmark to
compare against: raw CSV read with an explicit all-text schema -> bronze Parquet partitioned by
ingestion_date -> silver (typed, every rejected row quarantined with its reasons, de-duplicated) -> the
gold star schema -> the analytics queries. Same rules and definitions as the project's SQL
(src/clickstream/sql/), same tables as Parquet under DIR; no manifests, ledger, data tests, CSV copies or
report. Each layer reads what the layer before it wrote. It imports nothing from clickstream on purpose.

    python benchmarks/baselines/plain_pyspark.py --data-dir DIR [--master local[*]] [--driver-memory 2g]

Layer times go to DIR/reports/timings.json in the project's shape ({"timings_seconds": {...}}); the
session start (JVM launch) is counted in bronze, as the first thing the job does.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

# The project's default rules (config/config.yaml), written out as a hand-written script would.
SESSION_TIMEOUT_US = 30 * 60 * 1_000_000
TOP_N = 20
FUNNEL_WINDOW_US = 7 * 24 * 3600 * 1_000_000  # analytics.funnel.window: 7d
CART_WINDOW_US = 24 * 3600 * 1_000_000  # analytics.cart.window: 24h
DAY_US = 24 * 3600 * 1_000_000
PATH_STEPS = 5
HIGH_PERCENT, MEDIUM_PERCENT = 10, 40  # segments by quantiles of events per user
# The product key of events without a product (the not-applicable member of dim_products): empty, since
# silver turns an empty product id into NULL, so no real product can have it.
NO_PRODUCT = ""
PRODUCT_EVENTS = ["product_view", "add_to_cart", "purchase"]
RAW_COLUMNS = ["UserID", "SessionID", "Timestamp", "EventType", "ProductID", "Amount", "Outcome"]
RAW_SCHEMA = StructType([StructField(c, StringType()) for c in RAW_COLUMNS])
OUTPUTS = ["bronze", "silver", "quarantine", "gold", "analytics", "reports"]
KEY_SEPARATOR = "\x1f"


def key(values: list[Column], free_text: list[Column]) -> Column:
    """The values joined by KEY_SEPARATOR, NULL as '' (values are never empty); a row where a text value holds the
    separator is written with one separator more, each value escaped (a backslash doubled, the separator as `\\s`,
    NULL as `\\N`), so distinct tuples give distinct keys."""
    plain = F.concat_ws(KEY_SEPARATOR, *[F.coalesce(v, F.lit("")) for v in values])
    escaped = [F.coalesce(F.replace(F.replace(v, F.lit("\\"), F.lit("\\\\")), F.lit(KEY_SEPARATOR), F.lit("\\s")),
                          F.lit("\\N")) for v in values]
    holds = F.lit(False)
    for value in free_text:
        holds = holds | F.coalesce(value.contains(KEY_SEPARATOR), F.lit(False))
    return F.when(holds, F.concat(F.lit(KEY_SEPARATOR), F.concat_ws(KEY_SEPARATOR, *escaped))).otherwise(plain)


def text(column: str) -> Column:
    """Trimmed text, NULL when empty."""
    trimmed = F.trim(F.col(column))
    return F.when(trimmed != "", trimmed)


def ratio(numerator: Column, denominator: Column) -> Column:
    return numerator.cast("double") / F.when(denominator != 0, denominator.cast("double"))


def date_key(ts: Column) -> Column:
    return (F.year(ts) * 10000 + F.month(ts) * 100 + F.dayofmonth(ts)).cast("int")


def write(df: DataFrame, path: Path, partition_by: str | None = None) -> None:
    writer = df.write.mode("overwrite")
    if partition_by:
        writer = writer.partitionBy(partition_by)
    writer.parquet(str(path))


def bronze(spark: SparkSession, data: Path, batch_id: str, ingested_at: datetime) -> None:
    raw = (spark.read.schema(RAW_SCHEMA).option("header", True).option("quote", '"').option("escape", '"')
           .option("mode", "FAILFAST").csv(str(data / "raw" / "*.csv")))
    landed = raw.select(
        *RAW_COLUMNS,
        F.lit(None).cast("string").alias("EventID"),  # the feed's own event id: this feed has none
        F.lit(None).cast("string").alias("extra"),  # the feed's unmapped columns: none
        F.lit(None).cast("bigint").alias("source_line"),
        F.lit(None).cast("string").alias("raw_line"),
        F.lit(None).cast("string").alias("parse_error"),
        F.lit("clickstream").alias("source_name"),
        F.col("_metadata.file_name").alias("source_file"),
        F.lit(batch_id).alias("batch_id"),
        F.lit(f"{ingested_at:%Y-%m-%d %H:%M:%S.%f}").cast("timestamp").alias("ingestion_timestamp"),
        F.lit(f"{ingested_at:%Y-%m-%d}").cast("date").alias("ingestion_date"),
    )
    write(landed, data / "bronze", "ingestion_date")


def silver(spark: SparkSession, data: Path) -> dict[str, int]:
    bronze_rows = spark.read.parquet(str(data / "bronze"))
    ts_text = text("Timestamp")
    typed = bronze_rows.select(
        text("UserID").alias("user_id"),
        text("SessionID").alias("session_id"),
        ts_text.alias("timestamp_text"),
        F.coalesce(F.try_to_timestamp(ts_text, F.lit("yyyy-MM-dd HH:mm:ss.SSSSSS")),
                   F.try_to_timestamp(ts_text, F.lit("yyyy-MM-dd HH:mm:ss"))).alias("event_ts"),
        text("EventType").alias("event_type"),
        text("ProductID").alias("product_id"),
        text("Amount").alias("amount_text"),
        # Spark names are case-insensitive too: the typed values must not be called amount/outcome here.
        text("Amount").try_cast("decimal(18,2)").alias("amount_value"),
        text("Outcome").alias("outcome_value"),
        *RAW_COLUMNS, "EventID", "source_line", "raw_line", "source_name", "source_file", "batch_id",
        "ingestion_timestamp", "ingestion_date",
    )
    reasons = F.concat_ws(
        ";",
        F.when(F.col("user_id").isNull(), "missing_user_id"),
        F.when(F.col("event_type").isNull(), "missing_event_type"),
        F.when(F.col("timestamp_text").isNull(), "missing_timestamp")
         .when(F.col("event_ts").isNull(), "invalid_timestamp")
         .when((F.col("event_ts") < F.lit("2000-01-01 00:00:00").cast("timestamp"))
               | (F.col("event_ts") > F.col("ingestion_timestamp") + F.expr("interval 1 day")),
               "timestamp_out_of_range"),
        F.when(F.col("event_type").isin(PRODUCT_EVENTS) & F.col("product_id").isNull(), "missing_product_id"),
        F.when((F.col("event_type") == "purchase") & F.col("amount_text").isNull(), "missing_amount"),
        F.when(F.col("amount_text").isNotNull() & F.col("amount_value").isNull(), "invalid_amount"),
        F.when(F.col("amount_value") < 0, "negative_amount"),
    )
    texts = [F.col("user_id"), F.col("session_id"), F.col("event_type"), F.col("product_id"), F.col("outcome_value")]
    event_id = F.md5(key([texts[0], texts[1], F.unix_micros("event_ts").cast("string"), texts[2], texts[3],
                          F.col("amount_value").cast("string"), texts[4]], texts))
    classified = (typed.withColumn("rejection_reasons", reasons)
                  .withColumn("event_id", F.when(F.col("rejection_reasons") == "", event_id))
                  .persist(StorageLevel.MEMORY_AND_DISK))

    first_copy = Window.partitionBy("event_id").orderBy("source_file")
    clean = (classified.where(F.col("rejection_reasons") == "")
             .withColumn("copy_number", F.row_number().over(first_copy))
             .where(F.col("copy_number") == 1)
             .select("event_id", "user_id", "session_id", "event_ts", "event_type", "product_id",
                     F.col("amount_value").alias("amount"), F.col("outcome_value").alias("outcome"),
                     "source_name", "source_file", "batch_id", "ingestion_timestamp", "ingestion_date"))
    write(clean, data / "silver", "ingestion_date")
    rejected = (classified.where(F.col("rejection_reasons") != "")
                .select(*RAW_COLUMNS, "EventID", "rejection_reasons", "source_line", "raw_line", "source_name", "source_file",
                        "batch_id", "ingestion_timestamp", "ingestion_date"))
    write(rejected, data / "quarantine", "ingestion_date")
    counts = classified.agg(F.count(F.lit(1)).alias("bronze_rows"),
                            F.count(F.when(F.col("rejection_reasons") != "", 1)).alias("quarantine_rows")).first()
    classified.unpersist()
    silver_rows = spark.read.parquet(str(data / "silver")).count()
    return {"bronze_rows": counts.bronze_rows, "silver_rows": silver_rows, "quarantine_rows": counts.quarantine_rows,
            "duplicate_rows": counts.bronze_rows - counts.quarantine_rows - silver_rows}


def gold(spark: SparkSession, data: Path) -> dict[str, int]:
    events = spark.read.parquet(str(data / "silver")).select(
        "event_id", "user_id", "session_id", "event_ts", "event_type", "product_id", "amount", "outcome")
    # A visit ends after 30 minutes of inactivity, even inside one supplied session id; its key is the
    # user, the supplied session and the visit's first event time.
    visit = Window.partitionBy("user_id", "session_id").orderBy("event_ts", "event_id")
    previous_ts = F.lag("event_ts").over(visit)
    flagged = events.withColumn(
        "is_session_start",
        F.when(previous_ts.isNull() | (F.unix_micros("event_ts") - F.unix_micros(previous_ts) > SESSION_TIMEOUT_US), 1)
         .otherwise(0))
    started = flagged.withColumn(
        "session_start_ts",
        F.max(F.when(F.col("is_session_start") == 1, F.col("event_ts")))
         .over(visit.rowsBetween(Window.unboundedPreceding, Window.currentRow)))
    sessionized = started.select(
        "event_id",
        F.md5(key([F.col("user_id"), F.col("session_id"), F.unix_micros("session_start_ts").cast("string")],
                  [F.col("user_id"), F.col("session_id")])).alias("session_key"),
        "user_id", "session_id", "event_ts", "event_type", "product_id", "amount", "outcome",
    ).persist(StorageLevel.MEMORY_AND_DISK)

    is_purchase = F.col("is_purchase")
    fct_events = sessionized.select(
        "event_id", F.col("user_id").alias("user_key"), "session_key",
        F.coalesce("product_id", F.lit(NO_PRODUCT)).alias("product_key"),
        F.col("event_type").alias("event_type_key"),
        date_key(F.col("event_ts")).alias("date_key"),
        (F.hour("event_ts") * 100 + F.minute("event_ts")).cast("int").alias("time_key"),
        "event_ts", "amount", "outcome", (F.col("event_type") == "purchase").alias("is_purchase"),
    )
    write(fct_events, data / "gold" / "fct_events")
    fct = spark.read.parquet(str(data / "gold" / "fct_events"))

    dim_users = fct.groupBy("user_key").agg(
        F.min("event_ts").alias("first_seen_ts"), F.max("event_ts").alias("last_seen_ts"),
        F.count(F.lit(1)).alias("total_events"), F.countDistinct("session_key").alias("total_sessions"),
        F.count(F.when(is_purchase, 1)).alias("total_purchases"),
        F.coalesce(F.sum(F.when(is_purchase, F.col("amount"))), F.lit(0)).cast("decimal(18,2)").alias("total_spent"),
        F.min(F.when(is_purchase, F.col("event_ts"))).alias("first_purchase_ts"),
        F.max(F.when(is_purchase, F.col("event_ts"))).alias("last_purchase_ts"),
    ).select("user_key", F.col("user_key").alias("user_id"), "first_seen_ts", "last_seen_ts", "total_events",
             "total_sessions", "total_purchases", "total_spent", "first_purchase_ts", "last_purchase_ts",
             (F.col("total_purchases") > 0).alias("is_purchaser"))

    purchase = F.col("event_type") == "purchase"
    dim_sessions = sessionized.groupBy("session_key").agg(
        F.min("user_id").alias("user_key"), F.min("session_id").alias("source_session_id"),
        F.min("event_ts").alias("session_start_ts"), F.max("event_ts").alias("session_end_ts"),
        ((F.unix_micros(F.max("event_ts")) - F.unix_micros(F.min("event_ts"))) / 1e6).alias("duration_seconds"),
        date_key(F.min("event_ts")).alias("start_date_key"),
        F.count(F.lit(1)).alias("total_events"),
        F.count(F.when(F.col("event_type") == "page_view", 1)).alias("page_views"),
        F.count(F.when(F.col("event_type") == "product_view", 1)).alias("product_views"),
        F.count(F.when(F.col("event_type") == "add_to_cart", 1)).alias("cart_adds"),
        F.count(F.when(purchase, 1)).alias("purchases"),
        F.coalesce(F.sum(F.when(purchase, F.col("amount"))), F.lit(0)).cast("decimal(18,2)").alias("revenue"),
    ).withColumn("is_bounce", F.col("total_events") == 1).withColumn("has_purchase", F.col("purchases") > 0)

    products = fct.where(F.col("product_key") != NO_PRODUCT).groupBy("product_key").agg(
        F.count(F.when(F.col("event_type_key") == "product_view", 1)).alias("views"),
        F.count(F.when(F.col("event_type_key") == "add_to_cart", 1)).alias("cart_adds"),
        F.count(F.when(is_purchase, 1)).alias("purchases"),
        F.coalesce(F.sum(F.when(is_purchase, F.col("amount"))), F.lit(0)).cast("decimal(18,2)").alias("revenue"),
        F.countDistinct("user_key").alias("unique_users"),
        F.min("event_ts").alias("first_seen_ts"), F.max("event_ts").alias("last_seen_ts"),
    ).select("product_key", F.col("product_key").alias("product_id"), "views", "cart_adds", "purchases", "revenue",
             "unique_users", "first_seen_ts", "last_seen_ts", F.lit(False).alias("is_not_applicable"))
    not_applicable = spark.range(1).select(
        F.lit(NO_PRODUCT).alias("product_key"), F.lit(None).cast("string").alias("product_id"),
        *[F.lit(0).cast("bigint").alias(c) for c in ("views", "cart_adds", "purchases")],
        F.lit(0).cast("decimal(18,2)").alias("revenue"), F.lit(0).cast("bigint").alias("unique_users"),
        F.lit(None).cast("timestamp").alias("first_seen_ts"), F.lit(None).cast("timestamp").alias("last_seen_ts"),
        F.lit(True).alias("is_not_applicable"))
    dim_products = products.unionByName(not_applicable)

    observed = fct.groupBy("event_type_key").agg(F.count(F.lit(1)).alias("total_events"))
    configured = spark.createDataFrame([(t,) for t in sorted(PRODUCT_EVENTS)], "event_type_key string")
    event_type_key = F.col("event_type_key")
    funnel_step = (F.when(event_type_key == "product_view", 1).when(event_type_key == "add_to_cart", 2)
                   .when(event_type_key == "purchase", 3))
    dim_event_types = (observed.select("event_type_key").union(configured).distinct()
                       .join(observed, "event_type_key", "left")
                       .select("event_type_key", F.col("event_type_key").alias("event_type"),
                               F.col("event_type_key").isin(PRODUCT_EVENTS).alias("is_product_event"),
                               (F.col("event_type_key") == "purchase").alias("is_purchase"),
                               funnel_step.alias("funnel_step"),
                               F.coalesce("total_events", F.lit(0)).alias("total_events")))

    day = F.col("date_day")
    dim_date = (fct.agg(F.to_date(F.min("event_ts")).alias("first_day"), F.to_date(F.max("event_ts")).alias("last_day"))
                .select(F.explode(F.sequence("first_day", "last_day", F.expr("interval 1 day"))).alias("date_day"))
                .select(date_key(day).alias("date_key"), "date_day",
                        F.year(day).cast("int").alias("year"), F.quarter(day).cast("int").alias("quarter"),
                        F.month(day).cast("int").alias("month"), F.date_format(day, "MMMM").alias("month_name"),
                        F.dayofmonth(day).cast("int").alias("day_of_month"),
                        (F.weekday(day) + 1).cast("int").alias("day_of_week"),
                        F.date_format(day, "EEEE").alias("day_name"),
                        F.weekofyear(day).cast("int").alias("iso_week"),
                        (F.weekday(day) >= 5).alias("is_weekend")))

    hour, minute = F.col("hour_of_day"), F.col("minute_of_hour")
    dim_time = (spark.range(24).select(F.col("id").cast("int").alias("hour_of_day"))
                .crossJoin(spark.range(60).select(F.col("id").cast("int").alias("minute_of_hour")))
                .select((hour * 100 + minute).alias("time_key"), "hour_of_day", "minute_of_hour",
                        F.when(hour < 6, "night").when(hour < 12, "morning").when(hour < 18, "afternoon")
                         .otherwise("evening").alias("day_part")))

    for name, df in [("dim_users", dim_users), ("dim_sessions", dim_sessions), ("dim_products", dim_products),
                     ("dim_event_types", dim_event_types), ("dim_date", dim_date), ("dim_time", dim_time)]:
        write(df, data / "gold" / name)
    sessionized.unpersist()
    return {t: spark.read.parquet(str(data / "gold" / t)).count() for t in ["fct_events", "dim_sessions", "dim_users"]}


def first_at_or_after(starts: DataFrame, events: DataFrame, at: str) -> DataFrame:
    """The first of `events` (user_key, us) at or after each start's `at` time, per user: both in one stream, latest
    first (at one time the events first), with a running minimum of event times. Adds `next_us` to `starts`."""
    stream = (starts.withColumn("_us", F.col(at)).withColumn("_is_start", F.lit(1))
              .unionByName(events.select("user_key", F.col("us").alias("_us"), F.lit(0).alias("_is_start")),
                           allowMissingColumns=True))
    latest_first = (Window.partitionBy("user_key").orderBy(F.desc("_us"), "_is_start")
                    .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    return (stream.withColumn("next_us", F.min(F.when(F.col("_is_start") == 0, F.col("_us"))).over(latest_first))
            .where(F.col("_is_start") == 1).drop("_us", "_is_start"))


def analytics(spark: SparkSession, data: Path) -> dict[str, int]:
    def gold_table(name: str) -> DataFrame:
        return spark.read.parquet(str(data / "gold" / name))

    fct, dim_users, dim_sessions = gold_table("fct_events"), gold_table("dim_users"), gold_table("dim_sessions")
    dim_products, dim_date = gold_table("dim_products"), gold_table("dim_date")
    is_purchase = F.col("is_purchase")
    n = F.count(F.lit(1))
    everything = Window.partitionBy()
    bounds = fct.agg(F.min("event_ts").alias("first_ts"), F.max("event_ts").alias("last_ts"),
                     F.unix_micros(F.min("event_ts")).alias("first_us"),
                     F.unix_micros(F.max("event_ts")).alias("end_us"))
    results: dict[str, DataFrame] = {}

    # Rates on users: who viewed, carted and bought each product; ranked by revenue, units, views.
    product_users = fct.where(F.col("product_key") != NO_PRODUCT).groupBy("product_key", "user_key").agg(
        F.max((F.col("event_type_key") == "product_view").cast("int")).alias("viewed"),
        F.max((F.col("event_type_key") == "add_to_cart").cast("int")).alias("carted"),
        F.max(is_purchase.cast("int")).alias("bought"))
    viewed, carted, bought = (F.col(c) == 1 for c in ("viewed", "carted", "bought"))
    product_counts = product_users.groupBy("product_key").agg(
        F.count(F.when(viewed, 1)).alias("viewers"), F.count(F.when(carted, 1)).alias("carters"),
        F.count(F.when(bought, 1)).alias("buyers"), F.count(F.when(viewed & carted, 1)).alias("viewed_carted"),
        F.count(F.when(carted & bought, 1)).alias("carted_bought"),
        F.count(F.when(viewed & bought, 1)).alias("viewed_bought"))
    by_revenue = Window.orderBy(F.desc("revenue"), F.desc("purchases"), F.desc("views"), "product_key")
    results["top_products"] = (
        dim_products.where(~F.col("is_not_applicable")).join(product_counts, "product_key")
        .withColumn("product_rank", F.row_number().over(by_revenue).cast("int"))
        .where(F.col("product_rank") <= TOP_N)
        .select("product_rank", "product_id", "views", "cart_adds", F.col("purchases").alias("units"), "revenue",
                "viewers", "carters", "buyers",
                ratio(F.col("viewed_carted"), F.col("viewers")).alias("view_to_cart_rate"),
                ratio(F.col("carted_bought"), F.col("carters")).alias("cart_to_purchase_rate"),
                ratio(F.col("viewed_bought"), F.col("viewers")).alias("view_to_purchase_rate"))
        .orderBy("product_rank"))

    # Ordered: every view starts an attempt; the first cart at or after it, then the first purchase at or after
    # that cart, each within the window of the view. A user counts at the furthest step of any attempt.
    steps = fct.where(F.col("event_type_key").isin(PRODUCT_EVENTS)).select(
        "user_key", "event_id", "event_type_key", F.unix_micros("event_ts").alias("us"))
    of_type = {t: steps.where(F.col("event_type_key") == t).select("user_key", "us") for t in PRODUCT_EVENTS}
    in_window = F.col("next_us") <= F.col("s1") + FUNNEL_WINDOW_US
    attempts = steps.where(F.col("event_type_key") == "product_view").select(
        "user_key", F.col("event_id").alias("attempt"), F.col("us").alias("s1"))
    attempts = first_at_or_after(attempts, of_type["add_to_cart"], "s1").select(
        "user_key", "attempt", "s1", F.when(in_window, F.col("next_us")).alias("s2"))
    attempts = first_at_or_after(attempts, of_type["purchase"], "s2").select(
        "user_key", "attempt", "s1", "s2", F.when(F.col("s2").isNotNull() & in_window, F.col("next_us")).alias("s3"))
    reached = F.when(F.col("s3").isNotNull(), 3).when(F.col("s2").isNotNull(), 2).otherwise(1)
    per_attempt = (attempts.crossJoin(bounds.select("end_us"))
                   .select("user_key", "attempt", "s1", "s2", "s3", reached.alias("reached"),
                           (F.col("s1") + FUNNEL_WINDOW_US > F.col("end_us")).cast("int").alias("is_open")))
    by_user = Window.partitionBy("user_key")
    funnel_users = (per_attempt
                    .withColumn("rank", F.row_number().over(by_user.orderBy(F.desc("reached"), "s1", "attempt")))
                    .withColumn("has_open", F.max("is_open").over(by_user))
                    .where(F.col("rank") == 1)
                    .select(F.col("reached").alias("furthest"),
                            ((F.col("reached") < 3) & (F.col("has_open") == 1)).alias("waiting"),
                            ((F.col("s2") - F.col("s1")) / 1e6).alias("t2"),
                            ((F.col("s3") - F.col("s2")) / 1e6).alias("t3")))
    furthest, waiting = F.col("furthest"), F.col("waiting")
    funnel = None
    for k, step in enumerate(PRODUCT_EVENTS, start=1):
        seconds = F.col(f"t{k}") if k > 1 else F.lit(None).cast("double")
        reached_k = furthest >= k
        row = funnel_users.agg(
            F.lit(k).cast("int").alias("step_number"), F.lit(step).alias("event_type"),
            F.count(F.when(reached_k, 1)).alias("users"),
            F.count(F.when((furthest == k) & waiting, 1)).alias("in_progress"),
            F.count(F.when((furthest == k) & ~waiting & F.lit(k < len(PRODUCT_EVENTS)), 1)).alias("dropped"),
            F.percentile(F.when(reached_k, seconds), 0.5).alias("median_seconds_from_previous"),
            F.avg(F.when(reached_k, seconds)).alias("mean_seconds_from_previous"))
        funnel = row if funnel is None else funnel.unionByName(row)
    in_order = Window.orderBy("step_number")
    dropped_before = F.coalesce(F.sum("dropped").over(in_order.rowsBetween(Window.unboundedPreceding, -1)), F.lit(0))
    results["conversion_funnel"] = funnel.select(
        "step_number", "event_type", "users", "in_progress", "dropped",
        ratio(F.col("users"), F.col("users") + F.coalesce(F.lag("dropped").over(in_order), F.lit(0)))
        .alias("conversion_from_previous"),
        ratio(F.col("users"), F.col("users") + dropped_before).alias("conversion_from_first"),
        "median_seconds_from_previous", "mean_seconds_from_previous").orderBy("step_number")

    # The order-free counts: each step's type at any time, and with every earlier one, in any order.
    did = fct.where(F.col("event_type_key").isin(PRODUCT_EVENTS)).groupBy("user_key").agg(
        *[F.max(F.when(F.col("event_type_key") == step, 1).otherwise(0)).alias(f"did_{i}")
          for i, step in enumerate(PRODUCT_EVENTS, start=1)])
    done = [F.col(f"did_{i}") == 1 for i in (1, 2, 3)]
    counts = did.agg(
        F.count(F.when(done[0], 1)).alias("reached_1"), F.count(F.when(done[0], 1)).alias("through_1"),
        F.count(F.when(done[1], 1)).alias("reached_2"), F.count(F.when(done[0] & done[1], 1)).alias("through_2"),
        F.count(F.when(done[2], 1)).alias("reached_3"),
        F.count(F.when(done[0] & done[1] & done[2], 1)).alias("through_3"))
    any_order = None
    for i, step in enumerate(PRODUCT_EVENTS, start=1):
        previous = F.col("reached_1") if i == 1 else F.col(f"through_{i - 1}")
        row = counts.select(F.lit(i).cast("int").alias("step_number"), F.lit(step).alias("event_type"),
                            F.col(f"reached_{i}").alias("users_reached"),
                            F.col(f"through_{i}").alias("users_through_all_steps"),
                            ratio(F.col(f"through_{i}"), previous).alias("step_conversion"),
                            ratio(F.col(f"through_{i}"), F.col("reached_1")).alias("overall_conversion"))
        any_order = row if any_order is None else any_order.unionByName(row)
    results["funnel_any_order"] = any_order.orderBy("step_number")

    # A day's coverage: from its midnight, or the first event, to the next midnight, or the last event.
    day_start = F.unix_micros(F.col("date_day").cast("timestamp"))
    covered = ((F.least(day_start + DAY_US, F.col("end_us")) - F.greatest(day_start, F.col("first_us"))) / 8.64e10)
    days = dim_date.crossJoin(bounds.select("first_us", "end_us")).withColumn("covered", covered)
    daily = fct.groupBy("date_key").agg(
        F.countDistinct("user_key").alias("active_users"), F.count(F.lit(1)).alias("events"),
        F.countDistinct("session_key").alias("sessions"), F.count(F.when(is_purchase, 1)).alias("purchases"),
        F.sum(F.when(is_purchase, F.col("amount"))).alias("revenue"))
    results["daily_activity"] = (
        days.join(daily, "date_key", "left")
        .select(F.col("date_day").alias("activity_date"), "day_name", "is_weekend",
                (F.col("covered") < 1).alias("is_partial_day"), F.col("covered").alias("share_of_day_covered"),
                F.coalesce("active_users", F.lit(0)).alias("active_users"),
                F.coalesce("events", F.lit(0)).alias("events"),
                ratio(F.col("events"), F.col("active_users")).alias("events_per_user"),
                F.coalesce("sessions", F.lit(0)).alias("sessions"),
                F.coalesce("purchases", F.lit(0)).alias("purchases"),
                F.coalesce("revenue", F.lit(0)).cast("decimal(18,2)").alias("revenue"))
        .orderBy("activity_date"))

    # One visit: one_time; the others by the share of multi-visit users with more events (ties share a segment).
    one_visit = F.col("total_sessions") == 1
    by_visits = Window.partitionBy(one_visit)
    above = F.rank().over(by_visits.orderBy(F.desc("total_events"))) - 1
    ranked_users = F.count(F.lit(1)).over(by_visits)
    segment = (F.when(one_visit, "one_time").when(above * 100 < HIGH_PERCENT * ranked_users, "high")
               .when(above * 100 < (HIGH_PERCENT + MEDIUM_PERCENT) * ranked_users, "medium").otherwise("low"))
    results["user_segments"] = (
        dim_users.withColumn("segment", segment).groupBy("segment").agg(
            n.alias("users"), F.min("total_events").alias("min_events"), F.max("total_events").alias("max_events"),
            ratio(F.sum("total_events"), n).alias("avg_events"),
            ratio(F.sum("total_sessions"), n).alias("avg_sessions"),
            ratio(F.sum("total_purchases"), n).alias("avg_purchases"),
            ratio(F.sum("total_spent"), n).alias("avg_spent"),
            F.sum("total_spent").cast("decimal(18,2)").alias("total_spent"),
            ratio(F.count(F.when(F.col("is_purchaser"), 1)), n).alias("purchaser_rate"))
        .select("segment", "users", ratio(F.col("users"), F.sum("users").over(everything)).alias("share_of_users"),
                "min_events", "max_events", "avg_events", "avg_sessions", "avg_purchases", "avg_spent",
                "total_spent", "purchaser_rate")
        .orderBy(F.when(F.col("segment") == "high", 1).when(F.col("segment") == "medium", 2)
                 .when(F.col("segment") == "low", 3).otherwise(4)))

    per_user = fct.where(is_purchase).groupBy("user_key").agg(n.alias("orders"), F.count("amount").alias("priced"),
                                                             F.sum("amount").alias("spent"))
    totals = per_user.agg(
        F.coalesce(F.sum("spent"), F.lit(0)).cast("decimal(18,2)").alias("total_revenue"),
        F.coalesce(F.sum("orders"), F.lit(0)).cast("bigint").alias("total_orders"),
        F.coalesce(F.sum(F.col("orders") - F.col("priced")), F.lit(0)).cast("bigint").alias("orders_without_amount"),
        n.alias("purchasers"), F.count(F.when(F.col("orders") > 1, 1)).alias("repeat_purchasers"))
    results["revenue_metrics"] = totals.crossJoin(dim_users.agg(n.alias("users"))).select(
        "total_revenue", "total_orders", "orders_without_amount", "users", "purchasers", "repeat_purchasers",
        ratio(F.col("repeat_purchasers"), F.col("purchasers")).alias("repeat_purchaser_rate"),
        ratio(F.col("total_revenue"), F.col("total_orders") - F.col("orders_without_amount"))
        .alias("average_order_value"),
        ratio(F.col("total_revenue"), F.col("users")).alias("revenue_per_user"),
        ratio(F.col("total_revenue"), F.col("purchasers")).alias("revenue_per_purchaser"))

    user_order = Window.partitionBy("user_key").orderBy("event_ts", "event_id")
    previous_ts = F.lag("event_ts").over(user_order)
    results["user_journey"] = fct.select(
        "user_key", F.row_number().over(user_order).cast("bigint").alias("event_number"), "event_ts",
        F.col("event_type_key").alias("event_type"),
        F.when(F.col("product_key") != NO_PRODUCT, F.col("product_key")).alias("product_id"), "session_key",
        F.lag("event_type_key").over(user_order).alias("previous_event_type"),
        ((F.unix_micros("event_ts") - F.unix_micros(previous_ts)) / 1e6).alias("seconds_since_previous"))

    by_session = Window.partitionBy("session_key").orderBy("event_ts", "event_id")
    purchase_paths = (fct.select(F.concat_ws(" > ", F.lag("event_type_key", 2).over(by_session),
                                             F.lag("event_type_key", 1).over(by_session), "event_type_key")
                                 .alias("path"), "is_purchase")
                      .where(is_purchase).groupBy("path").agg(n.alias("purchases")))
    results["purchase_paths"] = (
        purchase_paths.select(
            F.row_number().over(Window.orderBy(F.desc("purchases"), "path")).cast("int").alias("path_rank"),
            "path", "purchases", ratio(F.col("purchases"), F.sum("purchases").over(everything))
            .alias("share_of_purchases"))
        .where(F.col("path_rank") <= TOP_N).orderBy("path_rank"))

    # Within visits: consecutive repeats collapsed, the first steps kept; each leaves to the next step or exit.
    previous_type = F.col("previous_type")
    collapsed = (fct.withColumn("previous_type", F.lag("event_type_key").over(by_session))
                 .where(previous_type.isNull() | (previous_type != F.col("event_type_key"))))
    edges = (collapsed.select("user_key", F.col("event_type_key").alias("from_event"),
                              F.row_number().over(by_session).alias("step"),
                              F.coalesce(F.lead("event_type_key").over(by_session), F.lit("exit")).alias("to_event"))
             .where(F.col("step") <= PATH_STEPS)
             .groupBy("step", "from_event", "to_event")
             .agg(n.alias("sessions"), F.countDistinct("user_key").alias("users")))
    results["paths"] = edges.select(
        F.col("step").cast("int").alias("step"), "from_event", "to_event", "sessions", "users",
        ratio(F.col("sessions"), F.sum("sessions").over(Window.partitionBy("step"))).alias("share_of_step")
    ).orderBy("step", F.desc("sessions"), "from_event", "to_event")

    # Weekday / weekend over the days the data covers from midnight to midnight.
    full_days = days.where(F.col("covered") >= 1).select("date_key", "is_weekend")
    with_day = fct.join(full_days, "date_key")
    day_events = with_day.groupBy("is_weekend").agg(
        n.alias("events"), F.count(F.when(is_purchase, 1)).alias("purchases"),
        F.sum(F.when(is_purchase, F.col("amount"))).alias("revenue"))
    day_users = (with_day.groupBy("is_weekend", "date_key").agg(F.countDistinct("user_key").alias("active_users"))
                 .groupBy("is_weekend").agg(F.sum("active_users").alias("user_days")))
    day_sessions = (dim_sessions.join(full_days, dim_sessions.start_date_key == full_days.date_key)
                    .groupBy("is_weekend").agg(n.alias("sessions"),
                                               F.count(F.when(F.col("has_purchase"), 1)).alias("converting_sessions"),
                                               F.avg("duration_seconds").alias("avg_session_seconds")))
    calendar = days.groupBy("is_weekend").agg(F.count(F.when(F.col("covered") >= 1, 1)).alias("full_days"),
                                              F.count(F.when(F.col("covered") < 1, 1)).alias("partial_days"))
    full = F.col("full_days")
    results["day_type_behavior"] = (
        calendar.join(day_events, "is_weekend", "left").join(day_users, "is_weekend", "left")
        .join(day_sessions, "is_weekend", "left")
        .select(F.when(F.col("is_weekend"), "weekend").otherwise("weekday").alias("day_type"), "full_days",
                "partial_days", F.coalesce("events", F.lit(0)).alias("events"),
                ratio(F.col("events"), full).alias("events_per_day"),
                ratio(F.col("user_days"), full).alias("active_users_per_day"),
                F.coalesce("sessions", F.lit(0)).alias("sessions"),
                ratio(F.col("sessions"), full).alias("sessions_per_day"),
                F.coalesce("purchases", F.lit(0)).alias("purchases"),
                F.coalesce("revenue", F.lit(0)).cast("decimal(18,2)").alias("revenue"),
                ratio(F.col("revenue"), full).alias("revenue_per_day"),
                ratio(F.col("converting_sessions"), F.col("sessions")).alias("session_conversion_rate"),
                "avg_session_seconds")
        .orderBy("day_type"))

    # Recency is counted from the last event in the data, so the same data always gives the same scores. A score is
    # the quintile of the middle of the user's tie group: ceil(5 * (worse + equal / 2) / n).
    purchasers = dim_users.where(F.col("is_purchaser")).crossJoin(bounds.select("last_ts")).select(
        "user_key",
        F.floor((F.unix_micros("last_ts") - F.unix_micros("last_purchase_ts")) / 8.64e10).cast("bigint")
         .alias("recency_days"),
        F.col("total_purchases").alias("frequency"), F.col("total_spent").alias("monetary"))

    def score(value: str, worst_first: Column) -> Column:
        worse = F.rank().over(Window.orderBy(worst_first)) - 1
        equal = F.count(F.lit(1)).over(Window.partitionBy(value))
        return F.ceil(5 * (worse + equal / 2) / F.count(F.lit(1)).over(everything)).cast("int")

    r, f, m = F.col("recency_score"), F.col("frequency_score"), F.col("monetary_score")
    rfm_scores = (
        purchasers
        .withColumn("recency_score", score("recency_days", F.desc("recency_days")))
        .withColumn("frequency_score", score("frequency", F.asc("frequency")))
        .withColumn("monetary_score", score("monetary", F.asc("monetary")))
        .withColumn("segment", F.when((r >= 4) & (f >= 4) & (m >= 4), "champions").when((r >= 3) & (f >= 3), "loyal")
                    .when(r >= 4, "promising").when(r == 3, "needs_attention").when(f >= 3, "at_risk")
                    .otherwise("hibernating"))
        .persist(StorageLevel.MEMORY_AND_DISK))
    results["rfm_scores"] = rfm_scores
    order = ["champions", "loyal", "promising", "needs_attention", "at_risk", "hibernating"]
    observed = bounds.select(F.col("first_ts").alias("observation_start_ts"),
                             F.col("last_ts").alias("observation_end_ts"),
                             ((F.col("end_us") - F.col("first_us")) / 8.64e10).alias("observation_days"))
    results["rfm_segments"] = (
        rfm_scores.groupBy("segment").agg(
            n.alias("customers"),
            ratio(F.sum("recency_days"), n).alias("avg_recency_days"),
            ratio(F.sum("frequency"), n).alias("avg_frequency"),
            F.sum("monetary").cast("decimal(18,2)").alias("total_monetary"),
            ratio(F.sum("monetary"), n).alias("avg_monetary"))
        .crossJoin(observed)
        .select("segment", "customers",
                ratio(F.col("customers"), F.sum("customers").over(everything)).alias("share_of_customers"),
                "avg_recency_days", "avg_frequency", "total_monetary", "avg_monetary", "observation_start_ts",
                "observation_end_ts", "observation_days")
        .orderBy(F.array_position(F.array(*[F.lit(s) for s in order]), F.col("segment"))))

    # First-time retention by ISO week (UTC); a week not over at the data's last event has no retention yet.
    weeks = fct.select("user_key", F.to_date(F.date_trunc("week", "event_ts")).alias("week"))
    cohorts = weeks.groupBy("user_key").agg(F.min("week").alias("cohort_start"))
    sizes = cohorts.groupBy("cohort_start").agg(n.alias("cohort_users"))
    returns = (weeks.join(cohorts, "user_key").where(F.col("week") > F.col("cohort_start"))
               .select("cohort_start", (F.datediff("week", "cohort_start") / 7).cast("int").alias("period"),
                       "user_key").distinct()
               .groupBy("cohort_start", "period").agg(n.alias("returned")))
    last_week = bounds.select("last_ts", F.to_date(F.date_trunc("week", "last_ts")).alias("last_week"))
    grid = (sizes.crossJoin(last_week)
            .select("cohort_start", "cohort_users", "last_ts",
                    F.explode(F.sequence(F.lit(0), (F.datediff("last_week", "cohort_start") / 7).cast("int")))
                    .alias("period")))
    complete = F.date_add("cohort_start", 7 * (F.col("period") + 1)).cast("timestamp") <= F.col("last_ts")
    retained = (F.when(F.col("period") == 0, F.col("cohort_users"))
                .when(complete, F.coalesce("returned", F.lit(0)).cast("bigint")))
    results["retention"] = (
        grid.join(returns, ["cohort_start", "period"], "left")
        .select("cohort_start", F.col("period").cast("int").alias("period"), "cohort_users",
                retained.alias("retained_users"), ratio(retained, F.col("cohort_users")).alias("retention_rate"))
        .orderBy("cohort_start", "period"))

    # Carts per user across visits: an add opens one when none is open and joins the open one within the window of
    # the previous add with no purchase between; the next purchase within the window of its last add converts it.
    stream = fct.where((F.col("event_type_key") == "add_to_cart") | is_purchase).select(
        "user_key", "event_id", "event_ts", F.unix_micros("event_ts").alias("us"), "amount",
        is_purchase.cast("int").alias("kind"))
    in_time = Window.partitionBy("user_key").orderBy("us", "kind", "event_id")
    latest_first = (Window.partitionBy("user_key").orderBy(F.desc("us"), F.desc("kind"), F.desc("event_id"))
                    .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    joins = (F.lag("kind").over(in_time) == 0) & (F.col("us") - F.lag("us").over(in_time) <= CART_WINDOW_US)
    adds = (stream.withColumn("joins", joins)
            .withColumn("next_purchase_us", F.min(F.when(F.col("kind") == 1, F.col("us"))).over(latest_first))
            .where(F.col("kind") == 0)
            .withColumn("cart", F.sum(F.when(F.col("joins"), 0).otherwise(1)).over(
                Window.partitionBy("user_key").orderBy("us", "event_id")
                .rowsBetween(Window.unboundedPreceding, Window.currentRow))))
    carts = adds.groupBy("user_key", "cart").agg(
        F.to_date(F.min("event_ts")).alias("cart_date"), F.max("us").alias("last_us"),
        F.min("next_purchase_us").alias("next_purchase_us"), F.sum("amount").alias("value"))
    status = (F.when(F.col("next_purchase_us") - F.col("last_us") <= CART_WINDOW_US, "converted")
              .when(F.col("last_us") + CART_WINDOW_US > F.col("end_us"), "open").otherwise("abandoned"))
    by_day = (carts.crossJoin(bounds.select("end_us")).withColumn("status", status).groupBy("cart_date").agg(
        n.alias("carts"), F.count(F.when(F.col("status") == "converted", 1)).alias("converted"),
        F.count(F.when(F.col("status") == "abandoned", 1)).alias("abandoned"),
        F.count(F.when(F.col("status") == "open", 1)).alias("open"),
        F.sum(F.when(F.col("status") == "abandoned", F.col("value"))).alias("abandoned_value")))
    priced = stream.where(F.col("kind") == 0).agg((F.count("amount") > 0).alias("has_amounts"))
    cart_days = (
        dim_date.select(F.col("date_day").alias("cart_date")).crossJoin(priced).join(by_day, "cart_date", "left")
        .select("cart_date", *[F.coalesce(c, F.lit(0)).alias(c) for c in ("carts", "converted", "abandoned", "open")],
                ratio(F.col("abandoned"), F.col("converted") + F.col("abandoned")).alias("abandonment_rate"),
                F.when(F.col("has_amounts"), F.coalesce("abandoned_value", F.lit(0)).cast("decimal(18,2)"))
                .alias("abandoned_value"))
        .persist(StorageLevel.MEMORY_AND_DISK))
    results["cart_abandonment_daily"] = cart_days.orderBy("cart_date")
    cart_totals = cart_days.agg(
        *[F.sum(c).cast("bigint").alias(c) for c in ("carts", "converted", "abandoned", "open")],
        F.sum("abandoned_value").cast("decimal(18,2)").alias("abandoned_value"))
    results["cart_abandonment"] = cart_totals.select(
        "carts", "converted", "abandoned", "open",
        ratio(F.col("abandoned"), F.col("converted") + F.col("abandoned")).alias("abandonment_rate"),
        "abandoned_value")

    counts = {}
    for name in ["top_products", "conversion_funnel", "funnel_any_order", "daily_activity", "user_segments",
                 "revenue_metrics", "user_journey", "purchase_paths", "paths", "day_type_behavior", "rfm_scores",
                 "rfm_segments", "retention", "cart_abandonment_daily", "cart_abandonment"]:
        write(results[name], data / "analytics" / name)
        counts[name] = spark.read.parquet(str(data / "analytics" / name)).count()
    rfm_scores.unpersist()
    cart_days.unpersist()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="reads DIR/raw/*.csv, writes beside it")
    parser.add_argument("--master", default="local[*]", help="Spark master (default local[*])")
    parser.add_argument("--driver-memory", default="2g", help="spark.driver.memory (default 2g)")
    parser.add_argument("--shuffle-partitions", type=int, default=4, help="spark.sql.shuffle.partitions (default 4)")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="any other Spark setting")
    args = parser.parse_args()
    data = args.data_dir.resolve()
    if not any((data / "raw").glob("*.csv")):
        parser.error(f"no CSV files in {data / 'raw'}")
    for name in OUTPUTS:  # a full refresh: this script's own outputs only
        shutil.rmtree(data / name, ignore_errors=True)

    timings: dict[str, float] = {}
    counts: dict[str, int] = {}
    started = time.perf_counter()
    builder = (SparkSession.builder.master(args.master).appName("plain-pyspark")
               .config("spark.driver.memory", args.driver_memory)
               .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false"))
    for setting in args.conf:
        key, _, value = setting.partition("=")
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")

    ingested_at = datetime.now(timezone.utc).replace(tzinfo=None)
    batch_id = ingested_at.strftime("%Y%m%dT%H%M%S")
    bronze(spark, data, batch_id, ingested_at)
    timings["bronze"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    counts.update(silver(spark, data))
    timings["silver"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    counts.update(gold(spark, data))
    timings["gold"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    counts.update(analytics(spark, data))
    timings["analytics"] = round(time.perf_counter() - started, 3)
    spark.stop()

    (data / "reports").mkdir(parents=True, exist_ok=True)
    report = {"engine": "plain-pyspark", "timings_seconds": timings, "row_counts": counts}
    (data / "reports" / "timings.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("Rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print("Layer times: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
