"""The compiled templates kept between runs: loaded when the source is the one they were compiled from, compiled
again otherwise, and never a reason for a run to fail."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import jinja2
import pytest

from clickstream.template_cache import SWITCH, _SavingOnly, bytecode_cache


def _environment(templates: Path, cache: jinja2.BytecodeCache | None) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(templates), bytecode_cache=cache)


@pytest.fixture()
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "model.sql").write_text("select {{ column }} from events\n")
    return folder


def _cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("clickstream-*.cache"))


def test_a_second_process_loads_the_compiled_template_instead_of_compiling_it(templates, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    first = _environment(templates, _SavingOnly(str(cache_dir), "clickstream-%s.cache"))
    assert first.get_template("model.sql").render(column="user_id") == "select user_id from events"
    assert len(_cache_files(cache_dir)) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("compiled again although the cache holds it")

    second = _environment(templates, _SavingOnly(str(cache_dir), "clickstream-%s.cache"))
    monkeypatch.setattr(second, "_compile", refuse)
    assert second.get_template("model.sql").render(column="event_ts") == "select event_ts from events"


def test_an_edited_template_is_compiled_again_never_served_stale(templates, tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    _environment(templates, _SavingOnly(str(cache_dir), "clickstream-%s.cache")).get_template("model.sql")
    (templates / "model.sql").write_text("select {{ column }}, 1 as edited from events\n")
    again = _environment(templates, _SavingOnly(str(cache_dir), "clickstream-%s.cache"))
    assert again.get_template("model.sql").render(column="x") == "select x, 1 as edited from events"


@pytest.mark.parametrize("damage", ["garbage", "cut in its code", "cut in its checksum", "empty"])
def test_a_damaged_cache_file_is_compiled_again(templates, tmp_path, damage):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    _environment(templates, _SavingOnly(str(cache_dir), "clickstream-%s.cache")).get_template("model.sql")
    [file] = _cache_files(cache_dir)
    whole = file.read_bytes()
    file.write_bytes({"garbage": b"\x00not a template" * 10, "cut in its code": whole[:len(whole) - 20],
                      "cut in its checksum": whole[:len(jinja2.bccache.bc_magic) + 3],
                      "empty": b""}[damage])
    again = _environment(templates, _SavingOnly(str(cache_dir), "clickstream-%s.cache"))
    assert again.get_template("model.sql").render(column="x") == "select x from events"


def test_a_cache_that_cannot_be_written_only_costs_the_compile(templates, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    environment = _environment(templates, _SavingOnly(str(not_a_folder), "clickstream-%s.cache"))
    assert environment.get_template("model.sql").render(column="x") == "select x from events"


@pytest.fixture()
def private_tmp(tmp_path, monkeypatch) -> Path:
    """A temporary directory of the test's own, where Jinja makes (or refuses) the cache's directory."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    bytecode_cache.cache_clear()
    yield tmp_path
    bytecode_cache.cache_clear()


def test_the_cache_lives_where_only_this_user_may_read_or_write(private_tmp, monkeypatch):
    monkeypatch.delenv(SWITCH, raising=False)
    cache = bytecode_cache()
    assert isinstance(cache, _SavingOnly)
    folder = Path(cache.directory)
    assert folder.parent == private_tmp
    assert (folder.stat().st_uid, folder.stat().st_mode & 0o777) == (os.getuid(), 0o700)


@pytest.mark.parametrize("unsafe", ["a link", "open to others"])
def test_a_cache_directory_another_could_write_to_turns_the_cache_off(private_tmp, monkeypatch, unsafe):
    monkeypatch.delenv(SWITCH, raising=False)
    folder = private_tmp / f"_jinja2-cache-{os.getuid()}"
    if unsafe == "a link":
        elsewhere = private_tmp / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        folder.symlink_to(elsewhere)
    else:
        folder.mkdir()
        os.chmod(folder, 0o777)
        # Jinja tightens a directory this user owns; one that stays open (here, owned by another) is refused
        monkeypatch.setattr(os, "chmod", lambda *args, **kwargs: None)
    assert bytecode_cache() is None


@pytest.mark.parametrize("value", ["off", "OFF", "0", "false", "no"])
def test_the_switch_turns_the_cache_off(private_tmp, monkeypatch, value):
    monkeypatch.setenv(SWITCH, value)
    assert bytecode_cache() is None
    assert not list(private_tmp.iterdir())


def test_the_sql_and_the_page_use_the_cache():
    from clickstream import sql
    from clickstream.report import html

    if bytecode_cache() is None:
        pytest.skip(f"the template cache is off here ({SWITCH} or no safe temporary directory)")
    assert isinstance(sql._environment().bytecode_cache, _SavingOnly)
    assert isinstance(html._environment().bytecode_cache, _SavingOnly)
