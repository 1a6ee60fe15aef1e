"""Vectors in Chroma: one collection for chunks (what search finds) and one for sentences (what
gets cited). Reads go through LangChain's Chroma vector store; batch writes carry our own vectors,
so Chroma never runs an embedding function of its own (its default one would try to download)."""

from __future__ import annotations

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


def where_filter(
    libraries: list[str], source: str | None = None, since: str | None = None,
    until: str | None = None, article_ids: list[str] | None = None,
) -> dict[str, Any]:
    conds: list[dict[str, Any]] = [
        {"library": {"$in": libraries}} if len(libraries) > 1 else {"library": libraries[0]}
    ]
    if source:
        conds.append({"source_key": source_key(source)})
    if since:
        conds.append({"published": {"$gte": date_key(since)}})
    if until:
        conds.append({"published": {"$lte": date_key(until)}})
    if article_ids is not None:
        conds.append({"article_id": {"$in": article_ids}})
    return conds[0] if len(conds) == 1 else {"$and": conds}


class VectorStore:
    def __init__(self, path: Path) -> None:
        try:
            import chromadb
            from chromadb.config import Settings as ChromaSettings
            from langchain_chroma import Chroma

            self.client = chromadb.PersistentClient(
                path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
            )
            self.chunks = Chroma(client=self.client, collection_name="chunks",
                                 collection_metadata={"hnsw:space": "cosine"})
            self.sentences = Chroma(client=self.client, collection_name="sentences",
                                    collection_metadata={"hnsw:space": "cosine"})
        except Exception as e:  # chromadb raises many types for a damaged store
            raise StoreError(f"cannot open the vector store {path}: {e}".split("\n")[0]) from None

    def add(
        self,
        library: str,
        batch: Iterable[tuple[Article, list[Sentence], list[Chunk], np.ndarray, np.ndarray]],
    ) -> None:
        """Upsert vectors of a batch of articles (ids are deterministic, so a retry never
        duplicates)."""
        rows: dict[str, list[tuple[str, np.ndarray, str, dict[str, Any]]]] = {
            "s": [], "c": []}
        for article, sentences, chunks, svecs, cvecs in batch:
            base = {"library": library, "article_id": article.id, "hash": article.content_hash(),
                    "source_key": source_key(article.source),
                    "published": date_key(article.published_iso)}
            for s, v in zip(sentences, svecs, strict=True):
                rows["s"].append((vector_id(library, article.id, "s", s.index), v, s.text,
                                  {**base, "idx": s.index}))
            for c, v in zip(chunks, cvecs, strict=True):
                rows["c"].append((vector_id(library, article.id, "c", c.index), v, c.text,
                                  {**base, "idx": c.index, "first": c.first_sentence,
                                   "last": c.last_sentence}))
        for kind, store in (("s", self.sentences), ("c", self.chunks)):
            items = rows[kind]
            for i in range(0, len(items), MAX_BATCH):
                part = items[i : i + MAX_BATCH]
                store._collection.upsert(
                    ids=[r[0] for r in part],
                    embeddings=np.stack([r[1] for r in part]),
                    documents=[r[2] for r in part],
                    metadatas=[r[3] for r in part],
                )

    def delete(self, library: str, article_ids: list[str]) -> None:
        if not article_ids:
            return
        where = where_filter([library], article_ids=article_ids)
        for store in (self.sentences, self.chunks):
            store.delete(where=where)

    def search_chunks(self, query: np.ndarray, n: int, where: dict[str, Any]) -> list[Hit]:
        found = self.chunks.similarity_search_by_vector_with_relevance_scores(
            query.tolist(), k=n, filter=where)
        return [Hit(d.metadata["library"], d.metadata["article_id"], int(d.metadata["idx"]),
                    d.metadata["hash"], float(dist)) for d, dist in found]

    def sentence_vectors(
        self, keys: list[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], np.ndarray]:
        if not keys:
            return {}
        got = self.sentences.get(ids=[vector_id(lib, a, "s", i) for lib, a, i in keys],
                                 include=["embeddings", "metadatas"])
        return {
            (m["library"], m["article_id"], int(m["idx"])): np.asarray(e, dtype=np.float32)
            for m, e in zip(got["metadatas"], got["embeddings"], strict=True)
        }

    def count(self) -> dict[str, int]:
        return {"chunks": self.chunks._collection.count(),
                "sentences": self.sentences._collection.count()}
