"""BM25 over chunks, kept on disk as memory-mapped numpy arrays: a reader maps the index instead
of loading it, so the answering process stays small at millions of chunks, and a question
touches only its own terms' postings.

Scores are BM25 as Lucene computes it (idf log(1 + (N - df + .5)/(df + .5))), the same as the
bm25s package's; tests hold the two equal. k1 0.9 and b 0.5 were the best of ten pairs on the
RealTime QA dev questions (benchmarks/tune_citations.py; bm25s's default is 1.5 and 0.75).

**Segments.** An ingest never rebuilds the whole index: the articles that are new or changed
since the last build go into a small segment of their own, searched together with the others.
Segments keep term frequencies and chunk lengths, not weights, so document frequencies and the
average length are summed over all segments at query time, leaving out the rows of articles
removed or replaced since their segment was built: the scores are exactly a full rebuild's.
When the small segments grow past a share of the main one, they are merged into one full build
in a background thread.

On disk, under ``<data dir>/bm25/``: one folder per segment, and a ``CURRENT`` file naming the
live manifest (its segments, and their removed rows), replaced atomically, so readers in other
processes never see a half-written index.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
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

_FORMAT = 4
K1, B = 0.9, 0.5
_BLOCK = 200_000  # chunks whose (term, chunk) pairs are counted together while building
STALE_BUILD_S = 3600.0  # a crashed build's leftovers older than this are removed
UNUSED_SEGMENT_S = 60.0  # a segment no manifest names, older than this, is removed
_KEEP = 2  # manifests kept: the live one and the one before, which a reader may still open
_ARRAYS = ("indptr", "docs", "tf", "plen", "doc_len", "chunk_article", "chunk_index")
MAX_SEGMENTS = 8  # small segments searched beside the main one before they are merged
MERGE_SHARE = 0.25  # ... or once they (and removed rows) reach this share of the main one
SYNC_MERGE_DOCS = 50_000  # below this many chunks (~5k articles) a merge is quick: done at once
log = logging.getLogger("newsbot.bm25")


@dataclass
class _Segment:
    name: str
    indptr: np.ndarray  # term -> its postings' slice of docs/tf
    docs: np.ndarray  # chunk numbers (within the segment), ascending within each term
    tf: np.ndarray  # how often the term occurs in that chunk
    plen: np.ndarray  # that chunk's length, beside each posting: read in order, not looked up
    doc_len: np.ndarray  # per chunk, its number of terms
    chunk_article: np.ndarray  # chunk number -> row of the article lists below
    chunk_index: np.ndarray  # chunk number -> the chunk's idx in its article
    article_ids: list[str]
    libraries: np.ndarray  # per article
    sources: np.ndarray  # per article, source_key
    published: np.ndarray  # per article, date_key
    hashes: list[str]  # per article, its content hash when the segment was built
    dead_rows: tuple[int, ...] = ()  # articles removed or replaced since
    dead: np.ndarray | None = None  # per chunk, True for a chunk of a dead article

    def __post_init__(self) -> None:
        if self.dead_rows and self.dead is None:
            self.dead = np.isin(self.chunk_article, np.array(self.dead_rows, dtype=np.int64))

    @property
    def num_docs(self) -> int:
        return len(self.doc_len)

    @property
    def n_terms(self) -> int:
        return len(self.indptr) - 1

    def live(self) -> tuple[int, float]:
        """Live chunks, and their total length."""
        if self.dead is None:
            return self.num_docs, float(np.sum(self.doc_len, dtype=np.float64))
        alive = ~self.dead
        return int(alive.sum()), float(np.sum(self.doc_len[alive], dtype=np.float64))


@dataclass
class _Index:
    generation: int
    vocab: dict[str, int]
    segments: list[_Segment]
    local_terms: bool = False  # the main segment gave ids to terms the catalog does not have
    manifest: str = ""  # the manifest it was opened from ("" when it lives in memory only)
    # Per set of libraries, per segment, which articles are in them: kept with the index they
    # describe, so a newer index (a merge keeps the generation) never reads another's.
    library_masks: dict[tuple[str, ...], list[np.ndarray | None]] = dataclasses.field(
        default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        counts = [s.live() for s in self.segments]
        self.num_docs = sum(n for n, _ in counts)  # live chunks, over all segments
        self.avgdl = sum(t for _, t in counts) / max(1, self.num_docs)
        self.offsets = np.cumsum([0] + [s.num_docs for s in self.segments])

    def locate(self, chunk: int) -> tuple[_Segment, int]:
        """The segment of a chunk number as ``top_k`` gives it, and its number there."""
        si = int(np.searchsorted(self.offsets, chunk, side="right")) - 1
        return self.segments[si], chunk - int(self.offsets[si])


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
        pair_tf.append(np.minimum(counts, 65535).astype(np.uint16))
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
                "docs": np.zeros(0, dtype=np.int32), "tf": np.zeros(0, dtype=np.uint16),
                "plen": np.zeros(0, dtype=np.uint16), "doc_len": lengths}
    terms, docs, tf = (np.concatenate(a) for a in (pair_terms, pair_docs, pair_tf))
    for parts in (pair_terms, pair_docs, pair_tf):
        parts.clear()  # the blocks' copies; the concatenation holds them now
    # Blocks cover ascending chunk numbers, so a stable sort on the term keeps each term's
    # postings in chunk order.
    order = np.argsort(terms, kind="stable")
    terms, docs, tf = terms[order], docs[order], tf[order]
    del order
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(np.bincount(terms, minlength=n_terms), out=indptr[1:])
    # Counts and lengths as uint16 (a chunk is a few sentences): a posting reads 8 bytes, as
    # many as a precomputed float weight and its chunk number did.
    plen = np.minimum(lengths[docs], 65535).astype(np.uint16)
    return {"indptr": indptr, "docs": docs, "tf": tf, "plen": plen, "doc_len": lengths}


def memory_index(chunks: list[list[str]]) -> _Index:
    """An index of token lists held in memory (chunk i is article row i of library "")."""
    vocab: dict[str, int] = {}
    arrays = build_arrays([term_ids(c, vocab) for c in chunks], vocab)
    n = len(chunks)
    seg = _Segment("memory", **arrays, chunk_article=np.arange(n, dtype=np.int32),
                   chunk_index=np.zeros(n, dtype=np.int32), article_ids=[str(i) for i in range(n)],
                   libraries=np.array([""] * n, dtype=object),
                   sources=np.array([""] * n, dtype=object),
                   published=np.zeros(n, dtype=np.int64), hashes=[""] * n)
    return _Index(0, vocab, [seg])


def top_k(idx: _Index, query: list[str], k: int,
          article_ok: list[np.ndarray | None] | None = None) -> list[tuple[int, float]]:
    """(chunk number, score) of the ``k`` best live chunks with a positive score, best first
    (ties by chunk number); ``article_ok`` (per segment, per article) keeps only the allowed
    articles' chunks. Chunk numbers run on across segments (``_Index.locate``)."""
    ids = [idx.vocab[t] for t in query if t in idx.vocab]
    if not ids or k <= 0 or not idx.num_docs:
        return []
    n = idx.num_docs
    # BM25's length norm, k1 (1 - b + b len / avgdl), with the average over all segments.
    base, per_len = np.float32(K1 * (1 - B)), np.float32(K1 * B / max(idx.avgdl, 1e-9))
    # Each term's live postings in every segment, weighted with the df and length of all.
    weighted: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for t in set(ids):
        parts = []
        for si, seg in enumerate(idx.segments):
            if t >= seg.n_terms:
                continue
            a, b = int(seg.indptr[t]), int(seg.indptr[t + 1])
            if a == b:
                continue
            d = seg.docs[a:b]
            f, ln = seg.tf[a:b].astype(np.float32), seg.plen[a:b].astype(np.float32)
            if seg.dead is not None:
                keep = ~seg.dead[d]
                d, f, ln = d[keep], f[keep], ln[keep]
            if len(d):
                parts.append((si, d, f, ln))
        df = sum(len(d) for _, d, _, _ in parts)
        idf = np.float32(math.log1p((n - df + 0.5) / (df + 0.5)))
        weighted[t] = [(si, d, idf * f / (f + (base + per_len * ln)))
                       for si, d, f, ln in parts]
    found: list[tuple[np.ndarray, np.ndarray]] = []
    for si, seg in enumerate(idx.segments):
        mine = [(d, w) for t in ids for s, d, w in weighted[t] if s == si]
        if not mine:
            continue
        docs = np.concatenate([d for d, _ in mine])
        weights = np.concatenate([w for _, w in mine])
        if len(docs) * 8 < seg.num_docs:
            # Few postings: sum per distinct chunk without touching an array per chunk.
            chunks, inverse = np.unique(docs, return_inverse=True)
            scores = np.bincount(inverse, weights=weights)
        else:
            dense = np.bincount(docs, weights=weights, minlength=seg.num_docs)
            chunks = np.flatnonzero(dense)
            scores = dense[chunks]
        ok = article_ok[si] if article_ok is not None else None
        if ok is not None:
            keep = ok[seg.chunk_article[chunks]]
            chunks, scores = chunks[keep], scores[keep]
        if len(chunks) > k:
            part = np.argpartition(-scores, k - 1)[:k]
            # Every chunk scoring equal to the k-th best is kept, then cut after a stable
            # order, so ties fall the same way whatever argpartition picked.
            part = np.flatnonzero(scores >= scores[part].min())
            chunks, scores = chunks[part], scores[part]
        found.append((chunks.astype(np.int64) + int(idx.offsets[si]), scores))
    if not found:
        return []
    chunks = np.concatenate([c for c, _ in found])
    scores = np.concatenate([s for _, s in found])
    order = np.lexsort((chunks, -scores))[:k]
    return [(int(chunks[i]), float(scores[i])) for i in order if scores[i] > 0]


def _read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


class LexicalIndex:
    def __init__(self, catalog: Catalog, root: Path) -> None:
        self.catalog = catalog
        self.root = root
        self._index: _Index | None = None
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._merging = threading.Lock()

    # -- building
    def _segment_arrays(self, articles: Iterator[tuple], vocab: dict[str, int],
                        ready: dict[tuple[str, str], str]) -> dict:
        """A segment's parts from (library, id, source key, published, spans) of articles."""
        article_ids, libs, skeys, pubs, hashes = [], [], [], [], []
        chunk_article, chunk_index = array("i"), array("i")

        def chunk_terms() -> Iterator[np.ndarray]:
            for lib, aid, skey, pub, spans in articles:
                row = len(article_ids)
                article_ids.append(aid)
                libs.append(lib)
                skeys.append(skey)
                pubs.append(date_key(pub))
                hashes.append(ready[(lib, aid)])
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
        return {"arrays": arrays, "articles": [article_ids, libs, skeys, pubs, hashes]}

    def _build(self) -> dict:
        """A full build: one segment of every visible article."""
        with self.catalog.snapshot():  # vocabulary, chunks and generation of one moment
            generation = self.catalog.generation()
            vocab = self.catalog.vocabulary()
            known = len(vocab)
            ready = self.catalog.ready_hash_map()
            seg = self._segment_arrays(self.catalog.iter_ready_articles(), vocab, ready)
        seg.update(name=f"s-{uuid.uuid4().hex[:12]}", terms=vocab, first_term=0)
        return {"generation": generation, "local_terms": len(vocab) > known, "vocab": vocab,
                "segments": [seg], "dead": [[]]}

    def _update(self, current: _Index) -> dict | None:
        """The current segments with the rows of removed and replaced articles marked dead,
        plus one new segment of the articles stored since; None when a full build is due."""
        main = current.segments[0]
        with self.catalog.snapshot():
            generation = self.catalog.generation()
            ready = self.catalog.ready_hash_map()
            covered: set[tuple[str, str]] = set()
            dead: list[list[int]] = []
            for seg in current.segments:
                gone = set(seg.dead_rows)
                for row, (lib, aid, h) in enumerate(zip(seg.libraries, seg.article_ids,
                                                        seg.hashes, strict=True)):
                    if row in gone:
                        continue
                    if ready.get((lib, aid)) != h or (lib, aid) in covered:
                        gone.add(row)
                    else:
                        covered.add((lib, aid))
                dead.append(sorted(gone))
            new = sorted(k for k in ready if k not in covered)
            segments: list[dict | _Segment] = list(current.segments)
            first = main.n_terms
            vocab = {**current.vocab, **self.catalog.vocabulary(first)}
            if new:
                known = len(vocab)
                seg = self._segment_arrays(self.catalog.iter_articles(new), vocab, ready)
                if len(vocab) > known:
                    return None  # chunks without stored term ids: only a full build reads them
                seg.update(name=f"s-{uuid.uuid4().hex[:12]}",
                           terms={t: i for t, i in vocab.items() if i >= first},
                           first_term=first)
                segments.append(seg)
                dead.append([])
        return {"generation": generation, "local_terms": current.local_terms, "vocab": vocab,
                "segments": segments, "dead": dead}

    def _needs_merge(self, idx: _Index) -> bool:
        main = idx.segments[0]
        small = sum(s.num_docs for s in idx.segments[1:])
        gone = sum(int(s.dead.sum()) for s in idx.segments if s.dead is not None)
        return len(idx.segments) > MAX_SEGMENTS or small + gone > MERGE_SHARE * max(
            1, main.num_docs)

    # -- saving and loading
    def _save_segment(self, seg: dict) -> bool:
        tmp = self.root / f".tmp-{seg['name']}"
        try:
            tmp.mkdir(parents=True)
            for key, arr in seg["arrays"].items():
                np.save(tmp / f"{key}.npy", arr)
            (tmp / "terms.json").write_text(json.dumps(seg["terms"]), encoding="utf-8")
            (tmp / "articles.json").write_text(json.dumps(seg["articles"]), encoding="utf-8")
            # meta last: a folder without it is an unfinished build.
            (tmp / "meta.json").write_text(json.dumps(
                {"format": _FORMAT, "first_term": seg["first_term"]}), encoding="utf-8")
            os.replace(tmp, self.root / seg["name"])
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        return True

    def _publish(self, built: dict) -> str | None:
        """Save the build's new segments and make its manifest the live one."""
        for seg in built["segments"]:
            if isinstance(seg, dict) and not self._save_segment(seg):
                return None  # a cache only; the next start rebuilds it
        names = [s["name"] if isinstance(s, dict) else s.name for s in built["segments"]]
        manifest = {"format": _FORMAT, "k1": K1, "b": B, "generation": built["generation"],
                    "local_terms": built["local_terms"],
                    "segments": [{"name": n, "dead": d} for n, d in zip(names, built["dead"],
                                                                       strict=True)]}
        name = f"m-g{built['generation']}-{uuid.uuid4().hex[:8]}.json"
        try:
            (self.root / name).write_text(json.dumps(manifest), encoding="utf-8")
            pointer = self.root / f".CURRENT-{name}"
            pointer.write_text(name, encoding="utf-8")
            os.replace(pointer, self.root / "CURRENT")
        except OSError:
            return None
        self._prune(name)
        return name

    def _prune(self, current: str) -> None:
        manifests = sorted((p for p in self.root.iterdir() if p.name.startswith("m-")),
                           key=lambda p: p.stat().st_mtime, reverse=True)
        kept = [current, *[p.name for p in manifests if p.name != current][:_KEEP - 1]]
        for old in manifests:
            if old.name not in kept:
                old.unlink(missing_ok=True)
        named = set()
        for m in kept:
            with contextlib.suppress(OSError, ValueError, KeyError):
                named |= {s["name"] for s in _read_json(self.root / m)["segments"]}
        # Segments no kept manifest names (merged away, or from an earlier format), once old
        # enough that no build still running is about to name them; and what a build that
        # died mid-save left (up to ~0.85 GB at 100k articles).
        now = time.time()
        for left in self.root.iterdir():
            age = now - left.stat().st_mtime
            if left.is_dir() and not left.name.startswith(".") and left.name not in named \
                    and age > UNUSED_SEGMENT_S:
                shutil.rmtree(left, ignore_errors=True)  # mapped files stay readable
            elif left.name.startswith((".tmp-", ".CURRENT-")) and age > STALE_BUILD_S:
                if left.is_dir():
                    shutil.rmtree(left, ignore_errors=True)
                else:
                    left.unlink(missing_ok=True)
        legacy = self.root.parent / "bm25.pkl"  # the single-pickle index of earlier versions
        legacy.unlink(missing_ok=True)

    @staticmethod
    def _segment(name: str, arrays: dict, articles: list, dead: list[int]) -> _Segment:
        article_ids, libs, skeys, pubs, hashes = articles
        return _Segment(name, **{k: arrays[k] for k in _ARRAYS}, article_ids=article_ids,
                        libraries=np.array(libs, dtype=object),
                        sources=np.array(skeys, dtype=object),
                        published=np.array(pubs, dtype=np.int64), hashes=hashes,
                        dead_rows=tuple(dead))

    def _assemble(self, built: dict) -> _Index:
        """An index from a build (new segments in memory, kept ones as they were)."""
        segments = [
            self._segment(seg["name"], seg["arrays"], seg["articles"], dead)
            if isinstance(seg, dict) else dataclasses.replace(seg, dead_rows=tuple(dead),
                                                              dead=None)
            for seg, dead in zip(built["segments"], built["dead"], strict=True)]
        return _Index(built["generation"], built["vocab"], segments, built["local_terms"])

    def _open_segment(self, name: str, read_terms: bool = True
                      ) -> tuple[dict, dict, list] | None:
        folder = self.root / name
        try:
            meta = _read_json(folder / "meta.json")
            if meta.get("format") != _FORMAT:
                return None
            terms = _read_json(folder / "terms.json") if read_terms else {}
            articles = _read_json(folder / "articles.json")
            arrays = {k: np.load(folder / f"{k}.npy", mmap_mode="r") for k in _ARRAYS}
        except (OSError, ValueError):
            return None
        return terms, arrays, articles

    def _open(self, manifest_name: str, kept: dict[str, _Segment] | None = None,
              vocab: dict[str, int] | None = None) -> _Index | None:
        """The index a manifest names. A writer that just built it passes the segments it
        already has open (``kept``) and the vocabulary, so only new segments are read."""
        try:
            manifest = _read_json(self.root / manifest_name)
            if (manifest.get("format"), manifest.get("k1"), manifest.get("b")) != \
                    (_FORMAT, K1, B):
                return None  # another layout, or weights from other constants: rebuild
            terms_all: dict[str, int] = {}
            segments = []
            for entry in manifest["segments"]:
                if kept and entry["name"] in kept:
                    segments.append(dataclasses.replace(kept[entry["name"]], dead=None,
                                                        dead_rows=tuple(entry["dead"])))
                    continue
                opened = self._open_segment(entry["name"], read_terms=vocab is None)
                if opened is None:
                    return None
                terms, arrays, articles = opened
                terms_all.update(terms)
                segments.append(self._segment(entry["name"], arrays, articles, entry["dead"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return _Index(manifest["generation"], vocab if vocab is not None else terms_all,
                      segments, manifest["local_terms"], manifest_name)

    def _current_name(self) -> str:
        try:
            return (self.root / "CURRENT").read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def _load(self) -> _Index | None:
        # Twice: a writer in another process may replace CURRENT and prune between our
        # reading the name and opening the manifest.
        for _ in range(2):
            if not (name := self._current_name()):
                return None
            if (found := self._open(name)) is not None:
                return found
        return None

    def _install(self, built: dict) -> _Index:
        name = self._publish(built)
        kept = {s.name: s for s in built["segments"] if isinstance(s, _Segment)}
        # Without a writable data dir, the build serves from memory.
        current = (self._open(name, kept, built["vocab"]) if name else None) or \
            self._assemble(built)
        with self._lock:
            self._index = current
        return current

    def refresh(self) -> _Index:
        """Bring the index up to date now (writers call this once they are done): a small
        segment of what is new, or a full build when there is no index yet."""
        with self._build_lock:
            generation = self.catalog.generation()
            current = self._index
            if current is None or current.generation != generation:
                # From disk only when another process published since: the index held here
                # is otherwise the latest, and reading it again costs its whole vocabulary.
                if current is None or self._current_name() != current.manifest:
                    current = self._load() or current
                if current is None or current.generation != generation:
                    built = None
                    if current is not None and not current.local_terms and \
                            len(current.segments) < 2 * MAX_SEGMENTS:
                        built = self._update(current)
                    current = self._install(built or self._build())
                else:
                    with self._lock:
                        self._index = current
            if self._needs_merge(current):
                if current.segments[0].num_docs < SYNC_MERGE_DOCS:
                    current = self._install(self._build())
                elif not self._merging.locked():
                    threading.Thread(target=self._merge, name="bm25-merge",
                                     daemon=True).start()
            return current

    def _merge(self) -> None:
        """One full build in place of the segments. If the catalog moved during the build, it
        is built again (an ingest that came meanwhile saw this merge running and left it to
        it); past a few tries, the next refresh starts another."""
        if not self._merging.acquire(blocking=False):
            return
        try:
            for _ in range(3):
                built = self._build()
                with self._build_lock:
                    if built["generation"] == self.catalog.generation():
                        self._install(built)
                        return
        except Exception:
            log.exception("merging the BM25 segments failed; the segments keep serving")
        finally:
            self._merging.release()

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
    @staticmethod
    def _library_masks(idx: _Index, libraries: list[str]) -> list[np.ndarray | None]:
        """Per segment, which articles are in ``libraries`` (None: all), cached per index."""
        key = tuple(sorted(libraries))
        masks = idx.library_masks.get(key)
        if masks is None:
            masks = []
            for seg in idx.segments:
                mask = np.isin(seg.libraries, libraries)
                masks.append(None if mask.all() else mask)
            idx.library_masks[key] = masks
        return masks

    def search(
        self, question: str, n: int, libraries: list[str], source: str | None = None,
        since: str | None = None, until: str | None = None,
    ) -> list[tuple[tuple[str, str, int], float]]:
        idx = self.index()
        q = tokens(question)
        if not idx.num_docs or not q:
            return []
        masks = self._library_masks(idx, libraries)
        if source or since or until:
            masks = [m.copy() if m is not None else np.ones(len(seg.article_ids), dtype=bool)
                     for m, seg in zip(masks, idx.segments, strict=True)]
            for m, seg in zip(masks, idx.segments, strict=True):
                if source:
                    m &= seg.sources == source_key(source)
                if since:
                    m &= seg.published >= date_key(since)
                if until:
                    m &= seg.published <= date_key(until)
        if all(m is not None and not m.any() for m in masks):
            return []
        out = []
        for chunk, score in top_k(idx, q, n, masks):
            seg, doc = idx.locate(chunk)
            row = int(seg.chunk_article[doc])
            out.append(((seg.libraries[row], seg.article_ids[row], int(seg.chunk_index[doc])),
                        score))
        return out
