"""BM25 over chunks (bm25s), rebuilt only when the catalog's generation moves, and cached on disk
so a cold `ask` does not re-tokenize the whole collection."""

from __future__ import annotations

import os
import pickle
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.catalog import Catalog, date_key, source_key
from retrieval.tokens import tokens

_FORMAT = 1


@dataclass
class _Index:
    generation: int
    retriever: object | None
    keys: list[tuple[str, str, int]]
    libraries: np.ndarray
    sources: np.ndarray
    published: np.ndarray


class LexicalIndex:
    def __init__(self, catalog: Catalog, cache_path: Path) -> None:
        self.catalog = catalog
        self.cache_path = cache_path
        self._index: _Index | None = None
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._masks: dict[tuple[int, int, tuple[str, ...]], np.ndarray | None] = {}

    def _build(self, generation: int) -> _Index:
        import bm25s

        keys, libs, skeys, pubs, corpus = [], [], [], [], []
        for lib, aid, idx, text, skey, pub in self.catalog.iter_ready_chunks():
            keys.append((lib, aid, idx))
            libs.append(lib)
            skeys.append(skey)
            pubs.append(date_key(pub))
            corpus.append(tokens(text))
        retriever = None
        if keys:
            retriever = bm25s.BM25()
            retriever.index(corpus, show_progress=False)
        return _Index(generation, retriever, keys, np.array(libs, dtype=object),
                      np.array(skeys, dtype=object), np.array(pubs, dtype=np.int64))

    def _load(self, generation: int, exact: bool) -> _Index | None:
        try:
            with open(self.cache_path, "rb") as f:
                fmt, index = pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError, ValueError, AttributeError,
                ImportError, TypeError):
            return None
        if fmt != _FORMAT or (exact and index.generation != generation):
            return None
        return index

    def _save(self, index: _Index) -> None:
        tmp = self.cache_path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as f:
                pickle.dump((_FORMAT, index), f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.cache_path)
        except OSError:
            pass  # a cache only; the next start rebuilds it

    def refresh(self) -> _Index:
        """Bring the index up to date now (writers call this once they are done)."""
        with self._build_lock:
            generation = self.catalog.generation()
            current = self._index
            if current is None or current.generation != generation:
                current = self._load(generation, exact=True) or self._build(generation)
                self._save(current)
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
                current = self._index = self._load(generation, exact=False)
        if current is None:
            return self.refresh()
        if current.generation != generation and not self._build_lock.locked():
            threading.Thread(target=self.refresh, name="bm25-refresh", daemon=True).start()
        return current

    def _library_mask(self, idx: _Index, libraries: list[str]) -> np.ndarray | None:
        """Which chunks are in ``libraries`` (None: all of them), cached per index: comparing
        every chunk's library name costs ~20 ms at 600k chunks."""
        key = (idx.generation, len(idx.keys), tuple(sorted(libraries)))
        mask = self._masks.get(key, False)
        if mask is False:
            mask = np.isin(idx.libraries, libraries)
            mask = None if mask.all() else mask
            # Only the current index's masks are kept (one generation at a time).
            self._masks = {k: v for k, v in self._masks.items() if k[:2] == key[:2]}
            self._masks[key] = mask
        return mask

    def search(
        self, question: str, n: int, libraries: list[str], source: str | None = None,
        since: str | None = None, until: str | None = None,
    ) -> list[tuple[tuple[str, str, int], float]]:
        idx = self.index()
        q = tokens(question)
        if idx.retriever is None or not q:
            return []
        mask = self._library_mask(idx, libraries)
        if source or since or until:
            mask = np.ones(len(idx.keys), dtype=bool) if mask is None else mask.copy()
            if source:
                mask &= idx.sources == source_key(source)
            if since:
                mask &= idx.published >= date_key(since)
            if until:
                mask &= idx.published <= date_key(until)
        if mask is not None and not mask.any():
            return []
        k = min(n, len(idx.keys))
        docs, scores = idx.retriever.retrieve(
            [q], k=k, weight_mask=None if mask is None else mask.astype(np.float32),
            show_progress=False, n_threads=1)
        return [(idx.keys[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True)
                if s > 0]
