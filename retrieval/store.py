"""Vectors in Chroma: chunks (what search finds) and sentences (what gets cited). Collections
are opened, read by id and deleted from through LangChain's Chroma vector store; writes carry
our own vectors, so Chroma never runs an embedding function of its own (its default one would
try to download)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.catalog import date_key, source_key
from retrieval.errors import StoreError
from retrieval.models import Article, Chunk, Sentence

MAX_BATCH = 5000  # Chroma 1.5 refuses larger adds (5,461 measured)


def vector_id(library: str, article_id: str, kind: str, idx: int) -> str:
    return f"{library}|{article_id}|{kind}{idx}"


@dataclass(slots=True)
class Hit:
    library: str
    article_id: str
    idx: int
    hash: str
    distance: float


class VectorStore:
    """One pair of collections per library (``chunks-global``, ``sentences-global``, ...).
    Chroma answers an unfiltered query in ~10 ms but any metadata filter costs 300-800 ms at
    60k chunks, so libraries are collections, and source and date filters are applied to an
    over-fetched unfiltered result; the exact filtered query is only the fallback."""

    OVERFETCH = 4

    def __init__(self, path: Path) -> None:
        try:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            self.client = chromadb.PersistentClient(
                path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
            )
            self.client.heartbeat()
        except Exception as e:  # chromadb raises many types for a damaged store
            raise StoreError(f"cannot open the vector store {path}: {e}".split("\n")[0]) from None
        self._stores: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _store(self, kind: str, library: str):
        name = f"{kind}-{library}"
        with self._lock:
            if name not in self._stores:
                from langchain_chroma import Chroma

                try:
                    self._stores[name] = Chroma(client=self.client, collection_name=name,
                                                collection_metadata={"hnsw:space": "cosine"})
                except Exception as e:
                    raise StoreError(f"cannot open collection {name}: {e}".split("\n")[0]) \
                        from None
            return self._stores[name]

    def add(
        self,
        library: str,
        batch: Iterable[tuple[Article, list[Sentence], list[Chunk], np.ndarray, np.ndarray]],
    ) -> None:
        """Upsert vectors of a batch of articles (ids are deterministic, so a retry never
        duplicates)."""
        rows: dict[str, list[tuple[str, np.ndarray, str, dict[str, Any]]]] = {
            "sentences": [], "chunks": []}
        for article, sentences, chunks, svecs, cvecs in batch:
            base = {"library": library, "article_id": article.id, "hash": article.content_hash(),
                    "source_key": source_key(article.source),
                    "published": date_key(article.published_iso)}
            for s, v in zip(sentences, svecs, strict=True):
                rows["sentences"].append((vector_id(library, article.id, "s", s.index), v,
                                          s.text, {**base, "idx": s.index}))
            for c, v in zip(chunks, cvecs, strict=True):
                rows["chunks"].append((vector_id(library, article.id, "c", c.index), v, c.text,
                                       {**base, "idx": c.index, "first": c.first_sentence,
                                        "last": c.last_sentence}))
        for kind, items in rows.items():
            collection = self._store(kind, library)._collection
            for i in range(0, len(items), MAX_BATCH):
                part = items[i : i + MAX_BATCH]
                collection.upsert(
                    ids=[r[0] for r in part],
                    embeddings=np.stack([r[1] for r in part]),
                    documents=[r[2] for r in part],
                    metadatas=[r[3] for r in part],
                )

    def delete(self, library: str, article_ids: list[str]) -> None:
        if not article_ids:
            return
        for kind in ("sentences", "chunks"):
            self._store(kind, library).delete(where={"article_id": {"$in": article_ids}})

    def _query(self, library: str, query: np.ndarray, n: int,
               where: dict[str, Any] | None) -> list[tuple[dict[str, Any], float]]:
        # The raw collection, not LangChain's similarity search: that one always fetches the
        # documents too, and search needs only metadata (the text comes from the catalog).
        got = self._store("chunks", library)._collection.query(
            query_embeddings=[query], n_results=n, where=where,
            include=["metadatas", "distances"])
        return list(zip(got["metadatas"][0], got["distances"][0], strict=True))

    def search_chunks(
        self, query: np.ndarray, n: int, libraries: list[str], source: str | None = None,
        since: str | None = None, until: str | None = None,
    ) -> list[Hit]:
        skey = source_key(source) if source else None
        lo = date_key(since) if since else None
        hi = date_key(until) if until else None
        filtered = bool(skey or lo or hi)

        def passes(m: dict[str, Any]) -> bool:
            return ((skey is None or m["source_key"] == skey)
                    and (lo is None or m["published"] >= lo)
                    and (hi is None or m["published"] <= hi))

        hits: list[Hit] = []
        for library in libraries:
            fetch = n * self.OVERFETCH if filtered else n
            found = self._query(library, query, fetch, None)
            kept = [(m, dist) for m, dist in found if passes(m)]
            if len(kept) < n and len(found) == fetch:
                # The filter keeps too little of the neighbourhood: ask Chroma exactly.
                kept = self._query(library, query, n, _where(skey, lo, hi))
            hits += [Hit(library, m["article_id"], int(m["idx"]), m["hash"], float(dist))
                     for m, dist in kept]
        return sorted(hits, key=lambda h: h.distance)[:n]

    def sentence_vectors(
        self, keys: list[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], np.ndarray]:
        out: dict[tuple[str, str, int], np.ndarray] = {}
        for library in {lib for lib, _, _ in keys}:
            got = self._store("sentences", library).get(
                ids=[vector_id(lib, a, "s", i) for lib, a, i in keys if lib == library],
                include=["embeddings", "metadatas"])
            for m, e in zip(got["metadatas"], got["embeddings"], strict=True):
                out[(library, m["article_id"], int(m["idx"]))] = np.asarray(e, dtype=np.float32)
        return out

    def count(self, library: str | None = None, article_id: str | None = None) -> dict[str, int]:
        """Vectors stored, in all libraries, one library, or for one article."""
        libraries = [library] if library else sorted(
            {c.name.split("-", 1)[1] for c in self.client.list_collections()})
        out = {"sentences": 0, "chunks": 0}
        for lib in libraries:
            for kind in out:
                col = self._store(kind, lib)._collection
                out[kind] += (len(col.get(where={"article_id": article_id}, include=[])["ids"])
                              if article_id else col.count())
        return out


def _where(skey: str | None, lo: int | None, hi: int | None) -> dict[str, Any] | None:
    conds: list[dict[str, Any]] = []
    if skey:
        conds.append({"source_key": skey})
    if lo:
        conds.append({"published": {"$gte": lo}})
    if hi:
        conds.append({"published": {"$lte": hi}})
    if not conds:
        return None
    return conds[0] if len(conds) == 1 else {"$and": conds}
