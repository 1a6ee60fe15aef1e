"""Hybrid retrieval: dense chunk vectors from Chroma plus BM25, fused by reciprocal rank."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from retrieval.catalog import Catalog
from retrieval.lexical import LexicalIndex
from retrieval.models import Passage
from retrieval.store import VectorStore

MODES = ("hybrid", "dense", "bm25")
RRF_K = 60  # the constant from Cormack et al.; flattens the head so both lists get a say
# Passages from articles published shortly before the question's date (today, by default) move
# up: news questions are about the news of their day. 1/(RRF_K+1) - 1/(RRF_K+10) is ~0.0024,
# so this moves a recent passage up a few places, not past a much better match.
RECENCY_BOOST = 0.01
RECENCY_DAYS = 7.0
DENSE_SHARE = 0.3  # the dense ranking's weight in the fusion (BM25's is 1); tuned on dev


@dataclass(slots=True)
class Filters:
    libraries: list[str]
    source: str | None = None
    since: str | None = None  # YYYY-MM-DD, inclusive
    until: str | None = None


def freshness(published: str, ref: dt.date, days: float) -> float:
    """1 for an article published on ``ref``, fading with age; 0 when undated."""
    if not published:
        return 0.0
    return math.exp(-max(0, (ref - dt.date.fromisoformat(published)).days) / days)


def rrf(*ranked: list[tuple[str, str, int]], weights: tuple[float, ...] | None = None
        ) -> list[tuple[tuple[str, str, int], float]]:
    scores: dict[tuple[str, str, int], float] = {}
    for i, ranking in enumerate(ranked):
        w = weights[i] if weights else 1.0
        for rank, key in enumerate(ranking):
            scores[key] = scores.get(key, 0.0) + w / (RRF_K + rank + 1)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def hybrid_search(
    question: str, qvec: np.ndarray, k: int, filters: Filters, catalog: Catalog,
    vectors: VectorStore, lexical: LexicalIndex, timings: dict[str, float],
    depth: int = 40, mode: str = "hybrid", ref_date: dt.date | None = None,
) -> list[Passage]:
    """``mode`` is hybrid (the default), dense or bm25: the last two exist to be compared."""
    import time

    if mode not in MODES:
        raise ValueError(f"unknown retrieval mode {mode!r}")
    depth = max(depth, k)
    dense_hits, lex_hits = [], []
    t = time.perf_counter()
    if mode != "bm25":
        dense_hits = vectors.search_chunks(qvec, depth, filters.libraries, filters.source,
                                           filters.since, filters.until)
    timings["dense_ms"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    if mode != "dense":
        lex_hits = lexical.search(question, depth, filters.libraries, filters.source,
                                  filters.since, filters.until)
    timings["lexical_ms"] = (time.perf_counter() - t) * 1000

    # A vector whose article is not ready (mid-ingest, or replaced) is never shown.
    ready = catalog.ready_hashes((h.library, h.article_id) for h in dense_hits)
    dense = [(h.library, h.article_id, h.idx) for h in dense_hits
             if ready.get((h.library, h.article_id)) == h.hash]
    fused = rrf(dense, [key for key, _ in lex_hits], weights=(DENSE_SHARE, 1.0))
    if ref_date and RECENCY_BOOST:
        dates = catalog.published((lib, aid) for lib, aid, _ in (key for key, _ in fused))
        fused = sorted(((key, score + RECENCY_BOOST * freshness(dates.get(key[:2], ""),
                                                                 ref_date, RECENCY_DAYS))
                        for key, score in fused), key=lambda kv: (-kv[1], kv[0]))
    meta = catalog.chunk_meta(key for key, _ in fused[: k + 10])
    passages = []
    for key, score in fused:
        row = meta.get(key)
        if row is None:
            continue
        start, end, first, last, title, source, published, url, text, place = row  # chunk text
        passages.append(Passage(
            article_id=key[1], library=key[0], chunk_index=key[2], start=start, end=end,
            first_sentence=first, last_sentence=last, text=text, title=title,
            source=source, published=published, url=url, score=score, place=place))
        if len(passages) == k:
            break
    return passages
