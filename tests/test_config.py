"""Config fails loudly: unknown keys, wrong types, values out of bounds and missing files are errors naming the key
and the file, on one line."""
from __future__ import annotations

from pathlib import Path

import pytest

from clickstream.config import Config, ConfigError, load_config

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
LONG = 100_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{'k' * 1000}: 1\n", f"unknown key '{'k' * 200}...'"),
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


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_command_line_overrides_are_validated_too(tmp_path):
    config = Config().with_overrides(data_dir=tmp_path, engine="spark")
    assert (config.paths.data_dir, config.engine) == (tmp_path, "spark")
    with pytest.raises(Exception, match="engine"):
        Config().with_overrides(engine="oracle")
