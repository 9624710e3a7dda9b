"""Presets as config sees them: what a preset fills, what the keys beside it override, and a wrong name."""
from __future__ import annotations

import pytest

from clickstream.config import Config, ConfigError, SilverRules, Source, load_config
from clickstream.presets import MERGED_KEYS, PRESETS, Preset, with_preset

RETAILROCKET = {"name": "rr", "preset": "retailrocket", "glob": "events*.csv"}


def test_a_preset_fills_the_source():
    source = Source.model_validate(RETAILROCKET)
    assert (source.columns, source.event_types, source.timestamp_formats, source.timezone) == (
        {"UserID": "visitorid", "SessionID": None, "Timestamp": "timestamp", "EventType": "event",
         "ProductID": "itemid", "Amount": None, "Outcome": None, "EventID": None},
        {"view": "product_view", "addtocart": "add_to_cart", "transaction": "purchase"}, ["epoch_ms"], "UTC")
    assert (source.name, source.glob, source.preset) == ("rr", "events*.csv", "retailrocket")


def test_keys_beside_a_preset_override_it_merged_or_whole():
    source = Source.model_validate({**RETAILROCKET, "columns": {"Amount": "price", "SessionID": "session"},
                                    "event_types": {"transaction": "click", "refund": "logout"},
                                    "timestamp_formats": ["epoch_s"], "csv": {"delimiter": ";"}})
    # columns and event_types merged key by key: the preset's others stay
    assert source.columns == {"UserID": "visitorid", "SessionID": "session", "Timestamp": "timestamp",
                              "EventType": "event", "ProductID": "itemid", "Amount": "price", "Outcome": None,
                              "EventID": None}
    assert source.event_types == {"view": "product_view", "addtocart": "add_to_cart", "transaction": "click",
                                  "refund": "logout"}
    assert source.timestamp_formats == ["epoch_s"]  # a list replaces the preset's whole
    assert (source.csv.delimiter, source.csv.header) == (";", True)


def test_merging_keeps_the_preset_and_the_source_unchanged():
    preset = Preset(source={"columns": {"UserID": "a"}, "timezone": "UTC", "csv": {"header": False}})
    source = {"columns": {"UserID": "b", "Amount": None}, "csv": {"delimiter": "\t"}, "timezone": "Asia/Tokyo"}
    assert with_preset(source, preset) == {"columns": {"UserID": "b", "Amount": None},
                                           "csv": {"header": False, "delimiter": "\t"}, "timezone": "Asia/Tokyo"}
    assert preset.source == {"columns": {"UserID": "a"}, "timezone": "UTC", "csv": {"header": False}}
    assert source["columns"] == {"UserID": "b", "Amount": None}
    assert MERGED_KEYS == ("csv", "columns", "event_types", "attributes")


def test_a_presets_extra_event_types_join_silvers_and_a_rebuilt_config_is_the_same():
    preset = Preset(source={"columns": {"UserID": "u", "Timestamp": "t", "EventType": "e"},
                            "event_types": {"wish": "wishlist_add"}}, extra_event_types=("wishlist_add",))
    PRESETS["test_wishlist"] = preset
    try:
        config = Config.model_validate({"sources": [{"name": "w", "preset": "test_wishlist"}],
                                        "silver": {"extra_event_types": ["favorite"]},
                                        "analytics": {"funnel": {"steps": ["wishlist_add", "purchase"]}}})
        assert config.silver.extra_event_types == ["favorite", "wishlist_add"]
        assert config.with_overrides(engine="duckdb") == config
        typed = Config(sources=[Source(name="w", preset="test_wishlist")], silver=SilverRules())
        assert typed.silver.extra_event_types == ["wishlist_add"]
    finally:
        del PRESETS["test_wishlist"]


@pytest.mark.parametrize(("preset", "message"), [
    ("retailrock", "key 'sources.0.preset': 'retailrock' is not a preset; did you mean 'retailrocket'? (presets: "
                   "amplitude, mixpanel, posthog, rees46, retailrocket, segment, taobao)"),
    ("3", "key 'sources.0.preset': '3' is not a preset (presets: amplitude, mixpanel, posthog, rees46, "
          "retailrocket, segment, taobao)"),
])
def test_an_unknown_preset_is_one_line_naming_the_key_and_the_file(tmp_path, preset, message):
    path = tmp_path / "config.yaml"
    path.write_text(f"sources: [{{name: x, preset: {preset}, glob: 'a.csv'}}]\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"invalid config {path}: {message}"


def test_a_wrong_key_beside_a_preset_is_named_as_without_one(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("sources: [{name: x, preset: retailrocket, columns: {UserId: visitorid}}]\n")
    with pytest.raises(ConfigError, match=r"key 'sources\.0\.columns': unknown canonical column\(s\) 'UserId'"):
        load_config(path)


def test_every_preset_names_the_documentation_it_follows_and_maps_the_required_columns():
    for name, preset in PRESETS.items():
        assert preset.documentation and all(d.startswith("https://") for d in preset.documentation), name
        assert all(preset.source["columns"].get(c) not in (None, "") for c in ("UserID", "Timestamp", "EventType"))


def test_a_json_lines_source_keeps_its_keys_through_the_command_lines_overrides():
    config = Config.model_validate({"sources": [{"name": "r", "preset": "retailrocket"},
                                                {"name": "j", "format": "ndjson", "glob": "*.jsonl",
                                                 "columns": {"UserID": "user.id", "Timestamp": "ts",
                                                             "EventType": "type"}}]})
    changed = config.with_overrides(engine="spark", data_dir="elsewhere")
    assert (changed.engine, str(changed.paths.data_dir)) == ("spark", "elsewhere")
    assert changed.sources == config.sources
