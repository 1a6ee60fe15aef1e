"""Chroma server mode under faults: a server that is down at start, and one that goes away in
the middle of an ingest. Nothing may be lost, duplicated or half visible."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from retrieval.errors import StoreError
from tests.conftest import (
    LAMBRECHT,
    REFERENCE_QUESTION,
    SAMPLES,
    ChromaProcess,
    server_settings,
    write,
)


def test_vectors_live_on_the_server_in_server_mode(make_bot, chroma_server, tmp_path):
    data = tmp_path / "data"
    nb = make_bot(data, **server_settings(chroma_server, data))
    nb.ingest([SAMPLES])
    assert not (data / "chroma").exists()  # only the catalog is local
    names = {c.name for c in nb.vectors.client.list_collections()}
    prefix = nb.settings.chroma_prefix
    assert f"{prefix}chunks-global" in names
    assert f"{prefix}sentences-global" not in names  # sentence vectors stay out of HNSW
    assert LAMBRECHT in nb.ask(REFERENCE_QUESTION).citations[0].quote


def test_server_down_at_start_is_a_clear_error_after_retrying(make_bot, tmp_path, caplog):
    down = ChromaProcess(tmp_path / "never")  # a free port nobody listens on
    nb = make_bot(chroma_host="127.0.0.1", chroma_port=down.port, chroma_retry_s=1.5)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "newsbot.store"), \
            pytest.raises(StoreError) as e:
        _ = nb.vectors
    assert 1.0 <= time.monotonic() - started < 6
    assert f"the Chroma server at http://127.0.0.1:{down.port} is not answering" in str(e.value)
    assert "gave up after 1.5 s" in str(e.value) and "CHROMA_HOST" in str(e.value)
    assert any("retrying in" in r.getMessage() for r in caplog.records)


def test_server_that_comes_up_late_is_waited_for(make_bot, tmp_path):
    server = ChromaProcess(tmp_path / "late")
    timer = threading.Timer(1.5, server.start, kwargs={"wait": False})
    timer.start()
    try:
        data = tmp_path / "data"
        nb = make_bot(data, **server_settings(server, data))
        assert nb.ingest([SAMPLES]).added == 8
    finally:
        timer.join()
        server.stop()


def _copies(dest, n: int):
    """n distinct articles (samples under new ids), so an ingest takes several batches."""
    texts = sorted(p for p in SAMPLES.iterdir() if p.suffix == ".txt")
    for i in range(n):
        src = texts[i % len(texts)]
        write(dest / f"copy{i:02d}-{src.name}", src.read_text("utf-8") +
              f"\nThis is copy {i} of the story.\n")
    return dest


def test_server_gone_mid_ingest_resumes_without_duplicates(make_bot, tmp_path):
    articles = _copies(tmp_path / "articles", 24)
    clean = make_bot(tmp_path / "clean")
    expected = clean.ingest([articles])
    assert expected.added == 24

    server = ChromaProcess(tmp_path / "srv").start()
    restarted = threading.Event()

    def outage(done: int) -> None:
        # After the first batch is stored, the server dies; it comes back 2 s later.
        if done and not restarted.is_set():
            server.stop()
            restarted.set()
            threading.Timer(2.0, server.start, kwargs={"wait": False}).start()

    try:
        data = tmp_path / "data"
        nb = make_bot(data, ingest_batch=4, **server_settings(server, data))
        report = nb.ingest([articles], progress=outage)
        assert restarted.is_set()
        assert (report.added, report.failed) == (24, [])
        assert nb.catalog.unfinished() == []
        assert nb.catalog.counts(["global"]) == clean.catalog.counts(["global"])
        assert nb.vector_counts() == clean.vector_counts() == {
            "sentences": expected.sentences, "chunks": expected.chunks}
        answer = nb.ask(REFERENCE_QUESTION)
        assert LAMBRECHT in answer.citations[0].quote
    finally:
        server.stop()


def test_ingest_that_gives_up_is_completed_by_the_next_one(make_bot, tmp_path):
    articles = _copies(tmp_path / "articles", 12)
    server = ChromaProcess(tmp_path / "srv").start()

    def die(done: int) -> None:
        if done:
            server.stop()

    try:
        data = tmp_path / "data"
        nb = make_bot(data, ingest_batch=4, **{**server_settings(server, data),
                                              "chroma_retry_s": 1})
        with pytest.raises(StoreError, match="not answering"):
            nb.ingest([articles], progress=die)
        # What was written is either whole and ready, or pending and never shown.
        ready = nb.catalog.counts(["global"])["articles"]
        assert 0 < ready < 12 and nb.catalog.unfinished()
        server.start()
        report = nb.ingest([articles])
        assert report.failed == [] and nb.catalog.unfinished() == []
        assert nb.catalog.counts(["global"])["articles"] == 12
        counts = nb.catalog.counts(["global"])
        assert nb.vector_counts()["sentences"] == counts["sentences"]
    finally:
        server.stop()
