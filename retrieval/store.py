"""Vectors in Chroma: chunks (what search finds) and sentences (what gets cited). Collections
are opened, read by id and deleted from through LangChain's Chroma vector store; writes carry
our own vectors, so Chroma never runs an embedding function of its own (its default one would
try to download)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from retrieval.catalog import date_key, source_key
from retrieval.errors import StoreError, first_line
from retrieval.models import Article, Chunk

log = logging.getLogger("newsbot.store")
T = TypeVar("T")
MAX_BATCH = 5000  # Chroma 1.5 refuses larger adds (5,461 measured)


def vector_id(library: str, article_id: str, kind: str, idx: int, version: str = "") -> str:
    """A vector's id. Chunk vectors carry their article's content hash (``version``), so a new
    version's vectors are stored beside the old one's, which stay searchable until the catalog
    swaps the versions."""
    return f"{library}|{article_id}|{kind}{idx}" + (f"|{version}" if version else "")


@dataclass(slots=True)
class ChromaServer:
    host: str
    port: int = 8000
    ssl: bool = False
    token: str = ""
    retry_s: float = 60.0

    @property
    def address(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}"


def _unreachable(e: BaseException) -> bool:
    """The server is down or went away (as opposed to a request it refused)."""
    import httpx

    return isinstance(e, httpx.TransportError) or (
        isinstance(e, ValueError) and "Could not connect to a Chroma server" in str(e))


@dataclass(slots=True)
class Hit:
    library: str
    article_id: str
    idx: int
    hash: str
    distance: float


class VectorStore:
    """One collection of chunk vectors per library (``chunks-global``, ...).
    Chroma answers an unfiltered query in ~10 ms but any metadata filter costs 300-800 ms at
    60k chunks, so libraries are collections, and source and date filters are applied to an
    over-fetched unfiltered result; the exact filtered query is only the fallback."""

    OVERFETCH = 4

    def __init__(self, path: Path, server: ChromaServer | None = None, prefix: str = "") -> None:
        """Embedded Chroma under ``path``, or the Chroma server ``server`` (the catalog stays
        local either way). ``prefix`` keeps several newsbot installs apart on one server."""
        self.server = server
        self.path = path
        self.prefix = prefix
        self._stores: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._legacy_names: set[str] | None = None  # read once, on first need
        try:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            settings = ChromaSettings(anonymized_telemetry=False)
            if server is None:
                self.client = chromadb.PersistentClient(path=str(path), settings=settings)
                self.client.heartbeat()
            else:
                headers = {"Authorization": f"Bearer {server.token}"} if server.token else {}
                self.client = self._retry(lambda: chromadb.HttpClient(
                    host=server.host, port=server.port, ssl=server.ssl, headers=headers,
                    settings=settings), "connecting")
        except StoreError:
            raise
        except Exception as e:  # chromadb raises many types for a damaged store
            where = server.address if server else path
            raise StoreError(f"cannot open the vector store {where}: {first_line(e)}") \
                from None

    def _retry(self, call: Callable[[], T], what: str) -> T:
        """Run ``call``; while the Chroma server is unreachable, retry with backoff for up to
        ``server.retry_s``, then give up with a clear error. Writes are idempotent (upserts of
        deterministic ids, deletes by article), so a retried call never duplicates."""
        if self.server is None:
            return call()
        deadline = time.monotonic() + self.server.retry_s
        wait = 0.5
        while True:
            try:
                return call()
            except Exception as e:
                if not _unreachable(e):
                    raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreError(
                        f"the Chroma server at {self.server.address} is not answering "
                        f"({what}); gave up after {self.server.retry_s:g} s. Start it, or "
                        "check CHROMA_HOST and CHROMA_PORT") from None
                pause = min(wait, remaining)
                log.warning("the Chroma server at %s is not answering (%s); retrying in "
                            "%.1f s", self.server.address, what, pause)
                time.sleep(pause)
                wait = min(wait * 2, 10.0)

    def _store(self, kind: str, library: str):
        name = f"{self.prefix}{kind}-{library}"
        with self._lock:
            if name not in self._stores:
                from langchain_chroma import Chroma

                try:
                    self._stores[name] = self._retry(lambda: Chroma(
                        client=self.client, collection_name=name,
                        collection_metadata={"hnsw:space": "cosine"}), "opening " + name)
                except StoreError:
                    raise
                except Exception as e:
                    raise StoreError(f"cannot open collection {name}: {first_line(e)}") \
                        from None
            return self._stores[name]

    def add(self, library: str,
            batch: Iterable[tuple[Article, str, list[Chunk], np.ndarray]]) -> None:
        """Upsert the chunk vectors of a batch of (article, the catalog's hash of that
        version, chunks, vectors); ids are deterministic, so a retry never duplicates. The
        hash is the catalog's, not recomputed: an article stored under an older
        SPLITTER_VERSION keeps its hash until it is re-split, and search shows only vectors
        whose hash the catalog holds. Sentence vectors live in the catalog, outside HNSW."""
        rows: list[tuple[str, np.ndarray, str, dict[str, Any]]] = []
        for article, version, chunks, cvecs in batch:
            base = {"library": library, "article_id": article.id, "hash": version,
                    "source_key": source_key(article.source),
                    "published": date_key(article.published_iso)}
            for c, v in zip(chunks, cvecs, strict=True):
                rows.append((vector_id(library, article.id, "c", c.index, base["hash"]), v,
                             c.text,
                             {**base, "idx": c.index, "first": c.first_sentence,
                              "last": c.last_sentence}))
        collection = self._store("chunks", library)._collection
        for i in range(0, len(rows), MAX_BATCH):
            part = rows[i : i + MAX_BATCH]
            self._retry(lambda part=part: collection.upsert(
                ids=[r[0] for r in part],
                embeddings=np.stack([r[1] for r in part]),
                documents=[r[2] for r in part],
                metadatas=[r[3] for r in part],
            ), "writing vectors")

    def delete(self, library: str, article_ids: list[str]) -> None:
        if not article_ids:
            return
        for kind in ("sentences", "chunks") if self._legacy(library) else ("chunks",):
            store = self._store(kind, library)
            self._retry(lambda store=store: store.delete(
                where={"article_id": {"$in": article_ids}}), "deleting vectors")

    def delete_stale(self, library: str, article_id: str, keep: str) -> None:
        """Delete an article's vectors whose content hash is not ``keep`` (all if '')."""
        if not keep:
            self.delete(library, [article_id])
            return
        where = {"$and": [{"article_id": article_id}, {"hash": {"$ne": keep}}]}
        for kind in ("sentences", "chunks") if self._legacy(library) else ("chunks",):
            store = self._store(kind, library)
            self._retry(lambda store=store: store.delete(where=where), "deleting vectors")

    def chunk_keys(self, library: str, page: int = MAX_BATCH
                   ) -> Iterator[tuple[str, str, str, int]]:
        """(vector id, article id, hash, chunk idx) of every chunk vector of a library."""
        collection = self._store("chunks", library)._collection
        offset = 0
        while True:
            got = self._retry(lambda offset=offset: collection.get(
                include=["metadatas"], limit=page, offset=offset), "reading vectors")
            for vid, m in zip(got["ids"], got["metadatas"], strict=True):
                yield vid, str(m.get("article_id")), str(m.get("hash")), int(m.get("idx", -1))
            if len(got["ids"]) < page:
                return
            offset += page

    def delete_ids(self, library: str, ids: list[str]) -> None:
        collection = self._store("chunks", library)._collection
        for i in range(0, len(ids), MAX_BATCH):
            part = ids[i : i + MAX_BATCH]
            self._retry(lambda part=part: collection.delete(ids=part), "deleting vectors")

    @property
    def where(self) -> str:
        return self.server.address if self.server else str(self.path)

    def _query(self, library: str, query: np.ndarray, n: int,
               where: dict[str, Any] | None) -> list[tuple[dict[str, Any], float]]:
        # The raw collection, not LangChain's similarity search: that one always fetches the
        # documents too, and search needs only metadata (the text comes from the catalog).
        collection = self._store("chunks", library)._collection
        got = self._retry(lambda: collection.query(
            query_embeddings=[query], n_results=n, where=where,
            include=["metadatas", "distances"]), "searching")
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

    def _legacy(self, library: str) -> bool:
        """Stores written before sentence vectors moved to the catalog keep them in a
        ``sentences-LIBRARY`` collection; they are still read (and deleted) there."""
        with self._lock:
            if self._legacy_names is None:
                self._legacy_names = {c.name for c in self._retry(
                    self.client.list_collections, "listing collections")
                    if c.name.startswith(f"{self.prefix}sentences-")}
        return f"{self.prefix}sentences-{library}" in self._legacy_names

    def legacy_sentence_vectors(
        self, keys: list[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], np.ndarray]:
        out: dict[tuple[str, str, int], np.ndarray] = {}
        for library in {lib for lib, _, _ in keys}:
            if not self._legacy(library):
                continue
            store = self._store("sentences", library)
            ids = [vector_id(lib, a, "s", i) for lib, a, i in keys if lib == library]
            got = self._retry(lambda store=store, ids=ids: store.get(
                ids=ids, include=["embeddings", "metadatas"]), "reading vectors")
            for m, e in zip(got["metadatas"], got["embeddings"], strict=True):
                out[(library, m["article_id"], int(m["idx"]))] = np.asarray(e, dtype=np.float32)
        return out

    def libraries(self) -> list[str]:
        """The libraries that have a chunk collection."""
        head = f"{self.prefix}chunks-"
        return sorted({c.name.removeprefix(head)
                       for c in self._retry(self.client.list_collections, "listing collections")
                       if c.name.startswith(head)})

    def count(self, library: str | None = None, article_id: str | None = None) -> int:
        """Chunk vectors stored, in all libraries, one library, or for one article."""
        libraries = [library] if library else self.libraries()
        total = 0
        for lib in libraries:
            col = self._store("chunks", lib)._collection
            total += self._retry(lambda col=col: len(col.get(
                where={"article_id": article_id}, include=[])["ids"]) if article_id
                else col.count(), "counting")
        return total


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
