"""Settings: one class, read from the environment and .env, every one documented."""

from __future__ import annotations

import re

import pytest

from newsbot.settings import Settings, load_settings
from retrieval.errors import NewsbotError
from tests.conftest import ROOT


def env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return alias.choices[0] if alias is not None else f"NEWSBOT_{field.upper()}"


def test_every_setting_is_documented_in_env_example():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(),
                                re.MULTILINE))
    assert {env_name(f) for f in Settings.model_fields} <= documented


def test_dotenv_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("NEWSBOT_TOP_K=7\nNEWSBOT_LIBRARY=newsroom\n"
                                   "DISCORD_TOKEN=abc.def\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSBOT_TOP_K", "9")
    s = load_settings()
    assert (s.top_k, s.library) == (9, "newsroom")
    assert s.discord_token.get_secret_value() == "abc.def"
    assert "abc.def" not in repr(s) and "abc.def" not in str(s.model_dump())


def test_invalid_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("NEWSBOT_CHUNK_SENTENCES", "3")
    monkeypatch.setenv("NEWSBOT_CHUNK_OVERLAP", "3")
    with pytest.raises(NewsbotError, match=r"invalid setting NEWSBOT_CHUNK_OVERLAP: .*smaller"):
        load_settings()
    monkeypatch.delenv("NEWSBOT_CHUNK_OVERLAP")
    monkeypatch.setenv("NEWSBOT_LIBRARY", "no spaces allowed")
    with pytest.raises(NewsbotError, match=r"invalid setting NEWSBOT_LIBRARY: .*invalid library"):
        load_settings()
    monkeypatch.delenv("NEWSBOT_LIBRARY")
    monkeypatch.setenv("DISCORD_TOKEN", "")
    assert load_settings().discord_token is None or not load_settings().discord_token


def test_default_data_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert load_settings().data_dir == tmp_path / "newsbot"
