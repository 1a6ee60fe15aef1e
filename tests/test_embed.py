"""The packaged model, offline, and query batching under concurrency."""

from __future__ import annotations

import threading

import numpy as np
import pytest


def test_packaged_model_loads_offline_and_normalises(embedder):
    vecs = embedder.embed(["Wallace met Lambrecht.", "Gas prices rose."])
    assert vecs.shape == (2, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert embedder.device in ("cpu", "cuda:0")


@pytest.fixture(scope="module", params=["fp32", "int8"])
def each_precision(request, model_cache):
    """Every embedding precision: both run on any x86-64 CPU."""
    from retrieval.embed import Embedder

    return Embedder(precision=request.param, device="cpu", cache_dir=model_cache).load()


def test_langchain_embeddings_give_exactly_embed_querys_vector(each_precision):
    """Chroma or anything else handed ``embedder.lc`` gets the vector the core searches with."""
    q = "who did Wallace meet in Germany?"
    vec = each_precision.embed_query(q)
    assert np.array_equal(np.asarray(each_precision.lc.embed_query(q), dtype=np.float32), vec)
    docs = ["Wallace met Lambrecht.", "Gas prices rose."]
    assert np.array_equal(np.asarray(each_precision.lc.embed_documents(docs), dtype=np.float32),
                          each_precision.embed(docs))


def test_concurrent_queries_share_batches_and_match_single_encodes(each_precision):
    embedder = each_precision
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
