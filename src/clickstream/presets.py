"""Presets: the `sources[]` settings of well-known event exports, declared as data and written from each export's
public documentation (docs/SOURCES.md gives each mapping and its documentation).

`sources[].preset: name` starts a source from one. A key written beside it overrides the preset's: `csv`,
`columns`, `event_types` and `attributes` key by key (`columns: {Amount: null}` unmaps one column and keeps the
others), every other key whole. The canonical event types a preset maps to beyond the built-in ones join
`silver.extra_event_types`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

# The keys of a source merged key by key with the preset's; any other key given replaces the preset's whole.
MERGED_KEYS = ("csv", "columns", "event_types", "attributes")


@dataclass(frozen=True)
class Preset:
    # the source keys the preset fills (as a config file writes them)
    source: dict[str, Any]
    # canonical event types the preset maps to besides the built-in ones: added to silver.extra_event_types
    extra_event_types: tuple[str, ...] = ()
    # the public documentation the mapping follows
    documentation: tuple[str, ...] = field(default=())


# Segment's and PostHog's ecommerce specs name the same events.
_ECOMMERCE_SPEC_EVENTS = {"Product Viewed": "product_view", "Product Added": "add_to_cart",
                          "Product Removed": "remove_from_cart", "Order Completed": "purchase"}

PRESETS: dict[str, Preset] = {
    # Kaggle "eCommerce behavior data from multi category store" (REES46 / Open CDP): event_time written
    # "2019-10-01 00:00:04 UTC"; price on every event; category_code and brand often empty.
    "rees46": Preset(
        source={
            "columns": {"UserID": "user_id", "SessionID": "user_session", "Timestamp": "event_time",
                        "EventType": "event_type", "ProductID": "product_id", "Amount": "price"},
            "event_types": {"view": "product_view", "cart": "add_to_cart", "remove_from_cart": "remove_from_cart",
                            "purchase": "purchase"},
            "timestamp_formats": ["%Y-%m-%d %H:%M:%S UTC", "%Y-%m-%d %H:%M:%S"],
            "timezone": "UTC",
            "attributes": {"category_id": "category_id", "category_code": "category_code", "brand": "brand"},
        },
        extra_event_types=("remove_from_cart",),
        documentation=("https://www.kaggle.com/datasets/mkechinov/ecommerce-behavior-data-from-multi-category-store",),
    ),
    # RetailRocket events.csv: timestamp in milliseconds since 1970, no price, transactionid only on transactions
    # (kept in bronze's `extra`).
    "retailrocket": Preset(
        source={
            "columns": {"UserID": "visitorid", "SessionID": None, "Timestamp": "timestamp", "EventType": "event",
                        "ProductID": "itemid", "Amount": None},
            "event_types": {"view": "product_view", "addtocart": "add_to_cart", "transaction": "purchase"},
            "timestamp_formats": ["epoch_ms"],
            "timezone": "UTC",
        },
        documentation=("https://www.kaggle.com/datasets/retailrocket/ecommerce-dataset",),
    ),
    # Taobao UserBehavior.csv (Alibaba Tianchi): no header line; user id, item id, category id, behavior type
    # (pv, buy, cart, fav), timestamp in seconds; no price.
    "taobao": Preset(
        source={
            "csv": {"header": False},
            "columns": {"UserID": 0, "SessionID": None, "Timestamp": 4, "EventType": 3, "ProductID": 1,
                        "Amount": None},
            "event_types": {"pv": "product_view", "cart": "add_to_cart", "fav": "favorite", "buy": "purchase"},
            "timestamp_formats": ["epoch_s"],
            "timezone": "UTC",
            "attributes": {"category_id": "2"},
        },
        extra_event_types=("favorite",),
        documentation=("https://tianchi.aliyun.com/dataset/649",),
    ),
    # Segment track calls, one JSON object a line: anonymousId is set by every client library (userId only once
    # a user is identified); messageId identifies the message; timestamp in ISO 8601.
    "segment": Preset(
        source={
            "format": "ndjson",
            "columns": {"UserID": "anonymousId", "SessionID": None, "Timestamp": "timestamp", "EventType": "event",
                        "ProductID": "properties.product_id", "Amount": "properties.revenue",
                        "EventID": "messageId"},
            "event_types": {**_ECOMMERCE_SPEC_EVENTS, "Product Clicked": "click", "Signed In": "login",
                            "Signed Out": "logout"},
            "timestamp_formats": ["iso8601"],
            "timezone": "UTC",
            "attributes": {"account_id": "userId", "page_url": "context.page.url",
                           "referrer": "context.page.referrer", "campaign_source": "context.campaign.source",
                           "campaign_medium": "context.campaign.medium", "brand": "properties.brand",
                           "category": "properties.category"},
        },
        extra_event_types=("remove_from_cart",),
        documentation=("https://segment.com/docs/connections/spec/track/",
                       "https://segment.com/docs/connections/spec/common/",
                       "https://segment.com/docs/connections/spec/ecommerce/v2/"),
    ),
    # Mixpanel raw event export: {"event": ..., "properties": {"time": seconds, "distinct_id", "$insert_id", ...}}.
    "mixpanel": Preset(
        source={
            "format": "ndjson",
            "columns": {"UserID": "properties.distinct_id", "SessionID": None, "Timestamp": "properties.time",
                        "EventType": "event", "ProductID": "properties.Item", "Amount": "properties.Amount",
                        "EventID": "properties.$insert_id"},
            "event_types": {"$mp_web_page_view": "page_view", "Page View": "page_view", "Purchase": "purchase"},
            "timestamp_formats": ["epoch_s"],
            "timezone": "UTC",
            "attributes": {"page_url": "properties.$current_url", "browser": "properties.$browser",
                           "os": "properties.$os", "device": "properties.$device",
                           "referring_domain": "properties.$referring_domain",
                           "country": "properties.mp_country_code"},
        },
        documentation=("https://developer.mixpanel.com/reference/raw-event-export",
                       "https://developer.mixpanel.com/reference/import-events"),
    ),
    # Amplitude Export API: zipped files of JSON lines; event_time "2024-01-01 10:00:00.123000" in UTC without a
    # zone; uuid on every stored event ($insert_id only when the sender gave one); revenue events "revenue_amount".
    "amplitude": Preset(
        source={
            "format": "ndjson",
            "columns": {"UserID": "amplitude_id", "SessionID": "session_id", "Timestamp": "event_time",
                        "EventType": "event_type", "ProductID": "event_properties.$productId",
                        "Amount": "event_properties.$revenue", "EventID": "uuid"},
            "event_types": {"[Amplitude] Page Viewed": "page_view", "revenue_amount": "purchase"},
            "timestamp_formats": ["iso8601"],
            "timezone": "UTC",
            "attributes": {"account_id": "user_id", "device_id": "device_id", "platform": "platform",
                           "os": "os_name", "device_type": "device_type", "country": "country", "city": "city",
                           "language": "language"},
        },
        documentation=("https://amplitude.com/docs/apis/analytics/export",),
    ),
    # PostHog batch export, events model in JSON lines: uuid, event, distinct_id, timestamp (ISO 8601, UTC),
    # properties as a nested object ($current_url, $session_id, ...).
    "posthog": Preset(
        source={
            "format": "ndjson",
            "columns": {"UserID": "distinct_id", "SessionID": "properties.$session_id", "Timestamp": "timestamp",
                        "EventType": "event", "ProductID": "properties.product_id", "Amount": "properties.revenue",
                        "EventID": "uuid"},
            "event_types": {**_ECOMMERCE_SPEC_EVENTS, "$pageview": "page_view", "$autocapture": "click"},
            "timestamp_formats": ["iso8601"],
            "timezone": "UTC",
            "attributes": {"page_url": "properties.$current_url", "browser": "properties.$browser",
                           "os": "properties.$os", "device_type": "properties.$device_type",
                           "referring_domain": "properties.$referring_domain",
                           "country": "properties.$geoip_country_code", "utm_source": "properties.utm_source"},
        },
        extra_event_types=("remove_from_cart",),
        documentation=("https://posthog.com/docs/data-pipelines/batch-exports/s3",
                       "https://posthog.com/docs/data/events",
                       "https://posthog.com/docs/data/event-spec/ecommerce-events"),
    ),
}


def with_preset(source: dict[str, Any], preset: Preset) -> dict[str, Any]:
    """A source's keys over its preset's: `MERGED_KEYS` key by key, the others whole; the source is not changed."""
    merged = copy.deepcopy(preset.source)
    for key, value in source.items():
        if key in MERGED_KEYS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged
