"""The packaged model, offline, and query batching under concurrency."""

from __future__ import annotations

import threading

import numpy as np


def test_packaged_model_loads_offline_and_normalises(embedder):
    vecs = embedder.embed(["Wallace met Lambrecht.", "Gas prices rose."])
    assert vecs.shape == (2, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert embedder.device in ("cpu", "cuda:0")


def test_concurrent_queries_share_batches_and_match_single_encodes(embedder):
    questions = [f"question {i}: who did minister {i} meet in Berlin?" for i in range(16)]
    alone = [np.asarray(embedder.lc.embed_query(q), dtype=np.float32) for q in questions]
    got: list[np.ndarray | None] = [None] * len(questions)
    start = threading.Barrier(len(questions))

    def ask(i: int) -> None:
        start.wait()
        got[i] = embedder.embed_query(questions[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, got, strict=True):
        assert b is not None and np.allclose(a, b, atol=1e-5)
    assert embedder._pending == []
