"""Settings: one class, read from the environment and .env (documented: tests/test_docs.py)."""

from __future__ import annotations

import pytest

from newsbot.settings import load_settings
from retrieval.errors import NewsbotError


def test_dotenv_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("NEWSBOT_TOP_K=7\nNEWSBOT_LIBRARY=newsroom\n"
                                   "DISCORD_TOKEN=abc.def\n")
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(tmp_path))  # the data dir's .env
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
    # The admin role is an id: anyone with Manage Roles can name a role "newsbot-admins".
    monkeypatch.setenv("NEWSBOT_ADMIN_ROLE", "newsbot-admins")
    with pytest.raises(NewsbotError, match=r"invalid setting NEWSBOT_ADMIN_ROLE: .*numeric id"):
        load_settings()
    monkeypatch.setenv("NEWSBOT_ADMIN_ROLE", "123456789012345678")
    assert load_settings().admin_role == "123456789012345678"
    monkeypatch.delenv("NEWSBOT_ADMIN_ROLE")
    monkeypatch.setenv("DISCORD_TOKEN", "")
    assert load_settings().discord_token is None or not load_settings().discord_token


def test_default_data_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert load_settings().data_dir == tmp_path / "newsbot"


def test_dotenv_in_the_current_directory_is_not_read(tmp_path, monkeypatch):
    """Running newsbot in a folder someone else controls must not reconfigure it."""
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / ".env").write_text("NEWSBOT_ALLOW_PRIVATE_URLS=1\n"
                                           f"NEWSBOT_DATA_DIR={tmp_path / 'elsewhere'}\n"
                                           "CHROMA_HOST=attacker.example\n")
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(tmp_path / "data"))
    s = load_settings()
    assert (s.allow_private_urls, s.chroma_host) == (False, "")
    assert s.data_dir == tmp_path / "data"
    # Asked for explicitly, by variable or by --env-file, it is read.
    monkeypatch.setenv("NEWSBOT_ENV_FILE", str(tmp_path / "cwd" / ".env"))
    assert load_settings().allow_private_urls is True
    monkeypatch.delenv("NEWSBOT_ENV_FILE")
    assert load_settings(env=tmp_path / "cwd" / ".env").chroma_host == "attacker.example"
    with pytest.raises(NewsbotError, match="does not exist"):
        load_settings(env=tmp_path / "missing.env")
