"""BM25 over chunks, rebuilt only when the catalog's generation moves and kept on disk as
memory-mapped numpy arrays: a reader maps the index instead of loading it, so the answering
process stays small at millions of chunks, and a question touches only its own terms' postings.

Scores are BM25 as Lucene computes it (idf log(1 + (N - df + .5)/(df + .5))), the same as the
bm25s package's; tests hold the two equal. k1 0.9 and b 0.5 were the best of ten pairs on the
RealTime QA dev questions (benchmarks/tune_citations.py; bm25s's default is 1.5 and 0.75).

On disk, under ``<data dir>/bm25/``: one folder per build and a ``CURRENT`` file naming the live
one, replaced atomically, so readers in other processes never see a half-written index.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.catalog import Catalog, date_key, source_key
from retrieval.tokens import tokens

_FORMAT = 2
K1, B = 0.9, 0.5
_BLOCK = 200_000  # chunks whose (term, chunk) pairs are counted together while building
STALE_BUILD_S = 3600.0  # a crashed build's leftovers older than this are removed
_KEEP = 2  # builds kept: the live one and the one before, which a reader may still be opening
_ARRAYS = ("indptr", "docs", "weights", "chunk_article", "chunk_index")


@dataclass
class _Index:
    generation: int
    num_docs: int
    vocab: dict[str, int]
    indptr: np.ndarray  # term -> its postings' slice of docs/weights
    docs: np.ndarray  # chunk numbers, ascending within each term
    weights: np.ndarray  # BM25 weight of the term in that chunk
    chunk_article: np.ndarray  # chunk number -> row of the article tables below
    chunk_index: np.ndarray  # chunk number -> the chunk's idx in its article
    article_ids: list[str]
    libraries: np.ndarray  # per article
    sources: np.ndarray  # per article, source_key
    published: np.ndarray  # per article, date_key


def _weights(terms: np.ndarray, docs: np.ndarray, tf: np.ndarray, df: np.ndarray,
             doc_len: np.ndarray) -> np.ndarray:
    n = len(doc_len)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    norm = K1 * (1 - B + B * doc_len / max(float(doc_len.mean()), 1e-9))
    return (idf[terms] * tf / (tf + norm[docs])).astype(np.float32)


def term_ids(toks: list[str], vocab: dict[str, int]) -> np.ndarray:
    """Ids of ``toks``, adding unknown terms to ``vocab``."""
    return np.array([vocab.setdefault(t, len(vocab)) for t in toks], dtype=np.int32)


def build_arrays(chunk_terms: Iterable[np.ndarray], vocab: dict[str, int]
                 ) -> dict[str, np.ndarray]:
    """Postings of an iterable of term-id arrays (one per chunk, in chunk-number order; ids
    index ``vocab``): the (term, chunk) pairs are counted a block at a time, so memory follows
    the distinct pairs, not every token."""
    pair_terms, pair_docs, pair_tf = [], [], []
    doc_len = array("i")
    block: list[np.ndarray] = []

    def flush() -> None:
        if not block:
            return
        first = len(doc_len) - len(block)
        docs = np.repeat(np.arange(first, len(doc_len), dtype=np.int64),
                         np.array(doc_len[first:], dtype=np.int64))
        key = (np.concatenate(block).astype(np.int64) << 32) | docs
        unique, counts = np.unique(key, return_counts=True)
        pair_terms.append((unique >> 32).astype(np.int32))
        pair_docs.append((unique & 0xFFFFFFFF).astype(np.int32))
        pair_tf.append(counts.astype(np.float32))
        block.clear()

    for ids in chunk_terms:
        block.append(ids)
        doc_len.append(len(ids))
        if len(block) == _BLOCK:
            flush()
    flush()
    n_terms = len(vocab)
    lengths = np.array(doc_len, dtype=np.float32)
    if not pair_terms:
        return {"indptr": np.zeros(n_terms + 1, dtype=np.int64),
                "docs": np.zeros(0, dtype=np.int32), "weights": np.zeros(0, dtype=np.float32)}
    terms, docs, tf = (np.concatenate(a) for a in (pair_terms, pair_docs, pair_tf))
    for parts in (pair_terms, pair_docs, pair_tf):
        parts.clear()  # the blocks' copies; the concatenation holds them now
    # Blocks cover ascending chunk numbers, so a stable sort on the term keeps each term's
    # postings in chunk order.
    order = np.argsort(terms, kind="stable")
    terms, docs, tf = terms[order], docs[order], tf[order]
    del order
    df = np.bincount(terms, minlength=n_terms)
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    return {"indptr": indptr, "docs": docs,
            "weights": _weights(terms, docs, tf, df.astype(np.float64), lengths)}


def top_k(idx: _Index, query: list[str], k: int, article_ok: np.ndarray | None
          ) -> list[tuple[int, float]]:
    """(chunk number, score) of the ``k`` best chunks with a positive score, best first (ties
    by chunk number); ``article_ok`` (per article) keeps only chunks of the allowed ones."""
    ids = [idx.vocab[t] for t in query if t in idx.vocab]
    if not ids or k <= 0:
        return []
    spans = [(int(idx.indptr[t]), int(idx.indptr[t + 1])) for t in ids]
    docs = np.concatenate([idx.docs[a:b] for a, b in spans])
    weights = np.concatenate([idx.weights[a:b] for a, b in spans])
    if not len(docs):
        return []
    if len(docs) * 8 < idx.num_docs:
        # Few postings: sum per distinct chunk without touching an array per chunk.
        chunks, inverse = np.unique(docs, return_inverse=True)
        scores = np.bincount(inverse, weights=weights)
    else:
        dense = np.bincount(docs, weights=weights, minlength=idx.num_docs)
        chunks = np.flatnonzero(dense)
        scores = dense[chunks]
    if article_ok is not None:
        keep = article_ok[idx.chunk_article[chunks]]
        chunks, scores = chunks[keep], scores[keep]
    if len(chunks) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        # Every chunk scoring equal to the k-th best is kept, then cut after a stable order,
        # so ties fall the same way whatever argpartition picked.
        part = np.flatnonzero(scores >= scores[part].min())
        chunks, scores = chunks[part], scores[part]
    order = np.lexsort((chunks, -scores))[:k]
    return [(int(chunks[i]), float(scores[i])) for i in order if scores[i] > 0]


class LexicalIndex:
    def __init__(self, catalog: Catalog, root: Path) -> None:
        self.catalog = catalog
        self.root = root
        self._index: _Index | None = None
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._masks: dict[tuple[int, int, tuple[str, ...]], np.ndarray | None] = {}

    # -- building and saving
    def _build(self) -> dict:
        article_ids, libs, skeys, pubs = [], [], [], []
        chunk_article, chunk_index = array("i"), array("i")
        with self.catalog.snapshot():  # vocabulary, chunks and generation of one moment
            generation = self.catalog.generation()
            vocab = self.catalog.vocabulary()

            def chunk_terms() -> Iterator[np.ndarray]:
                for lib, aid, skey, pub, spans in self.catalog.iter_ready_articles():
                    row = len(article_ids)
                    article_ids.append(aid)
                    libs.append(lib)
                    skeys.append(skey)
                    pubs.append(date_key(pub))
                    text = None
                    for idx, start, end, stored in spans:
                        chunk_article.append(row)
                        chunk_index.append(idx)
                        if stored is not None:
                            yield np.frombuffer(stored, dtype=np.int32)
                            continue
                        # Stored before term ids were kept: tokenized here, new terms getting
                        # ids past the catalog's, in this build only.
                        text = self.catalog.text_of(lib, aid) if text is None else text
                        yield term_ids(tokens(text[start:end]), vocab)

            arrays = build_arrays(chunk_terms(), vocab)
        arrays["chunk_article"] = np.array(chunk_article, dtype=np.int32)
        arrays["chunk_index"] = np.array(chunk_index, dtype=np.int32)
        meta = {"format": _FORMAT, "k1": K1, "b": B, "generation": generation,
                "num_docs": len(chunk_index),
                "articles": [article_ids, libs, skeys, pubs]}
        return {"meta": meta, "vocab": vocab, "arrays": arrays}

    def _save(self, built: dict) -> Path | None:
        name = f"g{built['meta']['generation']}-{uuid.uuid4().hex[:8]}"
        tmp = self.root / f".tmp-{name}"
        try:
            tmp.mkdir(parents=True)
            for key, arr in built["arrays"].items():
                np.save(tmp / f"{key}.npy", arr)
            (tmp / "vocab.json").write_text(json.dumps(built["vocab"]), encoding="utf-8")
            # meta last: a folder without it is an unfinished build.
            (tmp / "meta.json").write_text(json.dumps(built["meta"]), encoding="utf-8")
            os.replace(tmp, self.root / name)
            pointer = self.root / f".CURRENT-{name}"
            pointer.write_text(name, encoding="utf-8")
            os.replace(pointer, self.root / "CURRENT")
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            return None  # a cache only; the next start rebuilds it
        self._prune(name)
        return self.root / name

    def _prune(self, current: str) -> None:
        builds = sorted((p for p in self.root.iterdir() if p.is_dir() and p.name[0] == "g"),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        for old in [p for p in builds if p.name != current][_KEEP - 1:]:
            shutil.rmtree(old, ignore_errors=True)  # mapped files stay readable until unmapped
        # What a build that died mid-save left (up to ~0.85 GB at 100k articles). A build takes
        # under a minute even at 100k, so anything this old belongs to no running build.
        stale = time.time() - STALE_BUILD_S
        for left in self.root.iterdir():
            if left.name.startswith((".tmp-", ".CURRENT-")) and left.stat().st_mtime < stale:
                if left.is_dir():
                    shutil.rmtree(left, ignore_errors=True)
                else:
                    left.unlink(missing_ok=True)
        legacy = self.root.parent / "bm25.pkl"  # the single-pickle index of earlier versions
        legacy.unlink(missing_ok=True)

    @staticmethod
    def _assemble(built: dict) -> _Index:
        """An index from a build's parts ({"meta", "vocab", "arrays"}), in memory or mapped."""
        meta, arrays = built["meta"], built["arrays"]
        article_ids, libs, skeys, pubs = meta["articles"]
        return _Index(
            generation=meta["generation"], num_docs=meta["num_docs"], vocab=built["vocab"],
            **{k: arrays[k] for k in _ARRAYS}, article_ids=article_ids,
            libraries=np.array(libs, dtype=object), sources=np.array(skeys, dtype=object),
            published=np.array(pubs, dtype=np.int64))

    def _open(self, folder: Path) -> _Index | None:
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            if (meta.get("format"), meta.get("k1"), meta.get("b")) != (_FORMAT, K1, B):
                return None  # weights computed with other constants: rebuild
            vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
            arrays = {k: np.load(folder / f"{k}.npy", mmap_mode="r") for k in _ARRAYS}
        except (OSError, ValueError):
            return None
        return self._assemble({"meta": meta, "vocab": vocab, "arrays": arrays})

    def _load(self) -> _Index | None:
        # Twice: a writer in another process may replace CURRENT and prune between our
        # reading the name and opening the folder.
        for _ in range(2):
            try:
                name = (self.root / "CURRENT").read_text(encoding="utf-8").strip()
            except OSError:
                return None
            if (found := self._open(self.root / name)) is not None:
                return found
        return None

    def refresh(self) -> _Index:
        """Bring the index up to date now (writers call this once they are done)."""
        with self._build_lock:
            generation = self.catalog.generation()
            current = self._index
            if current is None or current.generation != generation:
                current = self._load()
                if current is None or current.generation != generation:
                    built = self._build()
                    folder = self._save(built)
                    # Without a writable data dir, the build serves from memory.
                    current = (self._open(folder) if folder else None) or \
                        self._assemble(built)
                with self._lock:
                    self._index = current
            return current

    def index(self) -> _Index:
        """The current index. A stale one keeps serving while a rebuild runs in the background:
        safe, because passages are read back from the catalog, which is always current."""
        generation = self.catalog.generation()
        with self._lock:
            current = self._index
            if current is None:
                current = self._index = self._load()
        if current is None:
            return self.refresh()
        if current.generation != generation and not self._build_lock.locked():
            threading.Thread(target=self.refresh, name="bm25-refresh", daemon=True).start()
        return current

    # -- searching
    def _library_mask(self, idx: _Index, libraries: list[str]) -> np.ndarray | None:
        """Which articles are in ``libraries`` (None: all of them), cached per index."""
        key = (idx.generation, idx.num_docs, tuple(sorted(libraries)))
        mask = self._masks.get(key, False)
        if mask is False:
            mask = np.isin(idx.libraries, libraries)
            mask = None if mask.all() else mask
            # Only the current index's masks are kept.
            self._masks = {k: v for k, v in self._masks.items() if k[:2] == key[:2]}
            self._masks[key] = mask
        return mask

    def search(
        self, question: str, n: int, libraries: list[str], source: str | None = None,
        since: str | None = None, until: str | None = None,
    ) -> list[tuple[tuple[str, str, int], float]]:
        idx = self.index()
        q = tokens(question)
        if not idx.num_docs or not q:
            return []
        mask = self._library_mask(idx, libraries)
        if source or since or until:
            mask = np.ones(len(idx.article_ids), dtype=bool) if mask is None else mask.copy()
            if source:
                mask &= idx.sources == source_key(source)
            if since:
                mask &= idx.published >= date_key(since)
            if until:
                mask &= idx.published <= date_key(until)
        if mask is not None and not mask.any():
            return []
        hits = top_k(idx, q, n, mask)
        return [((idx.libraries[row], idx.article_ids[row], int(idx.chunk_index[doc])), score)
                for doc, score in hits for row in (int(idx.chunk_article[doc]),)]
