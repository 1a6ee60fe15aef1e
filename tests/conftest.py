"""Shared fixtures: the real model (loaded once per run) and real Chroma stores in temp dirs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SHARED_DATA = ROOT.parent / "shared" / "data"
REFERENCE_QUESTION = "who did Wallace meet in Germany?"
LAMBRECHT = "during a meeting with his German counterpart Christina Lambrecht"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    # A developer's own .env or NEWSBOT_* must never leak into a test.
    for key in list(os.environ):
        if key.startswith("NEWSBOT_") or key.startswith("DISCORD_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def embedder():
    from retrieval.embed import Embedder

    return Embedder().load()


@pytest.fixture
def make_bot(tmp_path, embedder):
    """A Newsbot on a fresh store in a temp dir, sharing the one loaded model."""
    from newsbot.settings import Settings
    from retrieval.service import Newsbot

    made = []

    def make(data_dir: Path | None = None, **overrides):
        nb = Newsbot(Settings(data_dir=data_dir or tmp_path / "data", **overrides))
        nb.__dict__["embedder"] = embedder
        made.append(nb)
        return nb

    yield make
    for nb in made:
        nb.close()


@pytest.fixture(scope="session")
def sample_bot(tmp_path_factory, embedder):
    """The bundled samples, ingested once, for tests that only read."""
    from newsbot.settings import Settings
    from retrieval.service import Newsbot

    nb = Newsbot(Settings(data_dir=tmp_path_factory.mktemp("samples-store")))
    nb.__dict__["embedder"] = embedder
    report = nb.ingest([SAMPLES])
    assert not report.failed, report.summary()
    yield nb
    nb.close()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present (it exists only on developer and CI machines)")
    return SHARED_DATA


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def copy_samples(dest: Path) -> Path:
    shutil.copytree(SAMPLES, dest)
    return dest
