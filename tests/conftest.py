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


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One int8 export for the whole run (each data dir would otherwise make its own, ~15 s);
    CLI subprocesses find it through NEWSBOT_MODEL_CACHE."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory, model_cache):
    # A developer's own .env or NEWSBOT_* must never leak into a test.
    for key in list(os.environ):
        if key.startswith("NEWSBOT_") or key.startswith("DISCORD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("NEWSBOT_MODEL_CACHE", str(model_cache))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def loopback_is_public(monkeypatch):
    """127.0.0.0/8 counts as a public address, standing in for a host on the internet (no
    test may reach one): feed item links, which are always held to public addresses, can
    then point at the local web stub. ::1 and every other private range stay private."""
    import ipaddress

    from retrieval import fetch

    real = fetch.is_public
    loopback = ipaddress.ip_network("127.0.0.0/8")
    monkeypatch.setattr(fetch, "is_public", lambda address: (
        ipaddress.ip_address(address.split("%")[0]) in loopback or real(address)))


@pytest.fixture(scope="session")
def embedder(model_cache):
    """The embedding model as newsbot runs it by default on this machine (NEWSBOT_PRECISION
    auto: int8 on CPUs without native bf16)."""
    from retrieval.embed import Embedder

    return Embedder(precision="auto", cache_dir=model_cache).load()


@pytest.fixture(scope="session")
def shipped_reader(model_cache):
    """The reader newsbot uses by default (NEWSBOT_READER empty: the shipped one), loaded once
    for the run as the embedder is; None when no weights ship."""
    from retrieval.read import SHIPPED, WEIGHTS_FILE, load_reader

    if not (SHIPPED / WEIGHTS_FILE).is_file():
        return None
    return load_reader("", cache_dir=model_cache)


def share_models(nb, embedder, shipped_reader) -> None:
    """Give a Newsbot the run's loaded models where its settings ask for those."""
    nb.__dict__["embedder"] = embedder
    s = nb.settings
    if shipped_reader is not None and not s.reader.strip() and s.reader_precision == "auto":
        nb.__dict__["reader"] = shipped_reader


@pytest.fixture
def make_bot(tmp_path, embedder, shipped_reader):
    """A Newsbot on a fresh store in a temp dir, sharing the one loaded model."""
    from newsbot.settings import Settings
    from retrieval.service import Newsbot

    made = []

    def make(data_dir: Path | None = None, **overrides):
        nb = Newsbot(Settings(data_dir=data_dir or tmp_path / "data", **overrides))
        share_models(nb, embedder, shipped_reader)
        made.append(nb)
        return nb

    yield make
    for nb in made:
        nb.close()


@pytest.fixture(scope="session")
def sample_bot(tmp_path_factory, embedder, shipped_reader):
    """The bundled samples, ingested once, for tests that only read."""
    from newsbot.settings import Settings
    from retrieval.service import Newsbot

    nb = Newsbot(Settings(data_dir=tmp_path_factory.mktemp("samples-store")))
    share_models(nb, embedder, shipped_reader)
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


class ChromaProcess:
    """`chroma run` on 127.0.0.1, stopped by its pid; restartable on the same port and path."""

    def __init__(self, path: Path) -> None:
        import socket

        self.path = path
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = None

    def start(self, wait: bool = True) -> ChromaProcess:
        import subprocess
        import sys
        import time
        import urllib.request

        chroma = Path(sys.executable).parent / "chroma"
        self.proc = subprocess.Popen(
            [str(chroma), "run", "--path", str(self.path), "--host", "127.0.0.1",
             "--port", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while wait:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=1)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("chroma run did not start") from None
                time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    server = ChromaProcess(tmp_path_factory.mktemp("chroma-server")).start()
    yield server
    server.stop()


def server_settings(server: ChromaProcess, data_dir: Path) -> dict:
    """Settings for a store on the test Chroma server; the prefix keeps each data dir's
    collections apart, as two installs sharing one server would be."""
    import hashlib

    prefix = "t" + hashlib.sha256(str(data_dir).encode()).hexdigest()[:10] + "-"
    return {"chroma_host": "127.0.0.1", "chroma_port": server.port, "chroma_prefix": prefix,
            "chroma_retry_s": 20}
