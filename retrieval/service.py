"""The one core object the CLI, the bot, the eval and the benchmarks all build from settings:
``ingest(paths or articles) -> IngestReport`` and ``ask(question, filters) -> Answer``."""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval.catalog import Catalog
from retrieval.errors import BusyError, NewsbotError, QuestionError, StoreError
from retrieval.ingest import is_url, iter_articles
from retrieval.libraries import GLOBAL, check_library
from retrieval.models import (
    Answer,
    Article,
    Chunk,
    IngestFailure,
    IngestReport,
    Passage,
    Sentence,
)

if TYPE_CHECKING:
    from concurrent.futures import Future

    import numpy as np

    from newsbot.settings import Settings
    from retrieval.cite import Candidate
    from retrieval.embed import Embedder
    from retrieval.followup import Turn
    from retrieval.lexical import LexicalIndex
    from retrieval.pipeline import Split, SplitKey
    from retrieval.read import Reader
    from retrieval.store import VectorStore

Progress = Callable[[int], None]
log = logging.getLogger("newsbot")


def check_date(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        shown = value if len(value) <= 40 else value[:40] + "\u2026"
        raise QuestionError(f"{name} must be a date like 2022-01-27, not {shown!r}") from None


class Newsbot:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = Path(settings.data_dir).expanduser()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"cannot create the data directory {self.data_dir}: {e.strerror or e}") from None
        if not os.access(self.data_dir, os.W_OK):
            raise StoreError(f"the data directory {self.data_dir} is not writable")
        self.catalog = Catalog(self.data_dir / "catalog.sqlite3")
        self._write_lock = threading.Lock()
        # Called with the library after an ingest stored new or changed articles, from the
        # ingesting thread (the bot checks its standing questions at once).
        self.on_ingest: list[Callable[[str], None]] = []

    # -- parts loaded on first use, so commands that need no model stay fast
    @cached_property
    def vectors(self) -> VectorStore:
        """The vector store, checked against the catalog as it opens: a lost or damaged one
        is an error naming `newsbot repair`, never answers from BM25 alone."""
        store = self._open_vectors()
        self._check_vectors(store)
        self._check_model()
        return store

    @property
    def model_label(self) -> str:
        """The embedding model by a name that stays the same across installs."""
        from retrieval.embed import default_model_path

        model = self.settings.embedding_model
        if not model or Path(model).expanduser().resolve() == Path(default_model_path()).resolve():
            return "all-MiniLM-L6-v2 (packaged)"
        return Path(model).name

    def _check_model(self) -> None:
        """Vectors of two models never meet in one store: ingesting again after a change of
        model would skip every unchanged article and search old vectors with new queries."""
        made_by, model = self.catalog.get_meta("embedding_model"), self.model_label
        if made_by is not None and made_by != model:
            raise StoreError(
                f"the vectors in {self.data_dir} were made by the embedding model {made_by}, "
                f"but NEWSBOT_EMBEDDING_MODEL is {model}: set it back, or use a new "
                "NEWSBOT_DATA_DIR for this model")

    def _open_vectors(self) -> VectorStore:
        from retrieval.store import ChromaServer, VectorStore

        s = self.settings
        server = None
        if s.chroma_host:
            server = ChromaServer(s.chroma_host, s.chroma_port, s.chroma_ssl,
                                  s.chroma_auth_token.get_secret_value()
                                  if s.chroma_auth_token else "", s.chroma_retry_s)
        return VectorStore(self.data_dir / "chroma", server, s.chroma_prefix)

    def _check_vectors(self, store: VectorStore) -> None:
        """Every library's ready chunks must have their vectors. Chroma is counted before the
        catalog (a write in between only adds vectors first), and a count that a concurrent
        write may have skewed is taken again."""
        for _ in range(3):
            generation = self.catalog.generation()
            held = {lib: store.count(lib) for lib in store.libraries()}
            short = [(lib, held.get(lib, 0), want) for lib, want in
                     sorted(self.catalog.chunks_by_library().items()) if held.get(lib, 0) < want]
            if not short or self.catalog.generation() == generation:
                break
        if short:
            lib, have, want = short[0]
            more = f" (and {len(short) - 1} more libraries)" if len(short) > 1 else ""
            raise StoreError(
                f"the vector store {store.where} holds {have:,} chunk vectors for library "
                f"{lib}, but the catalog has {want:,} chunks{more}: it was lost or damaged. "
                "Run `newsbot repair` to store the missing vectors again")

    @cached_property
    def embedder(self) -> Embedder:
        from retrieval.embed import Embedder

        s = self.settings
        return Embedder(s.embedding_model, s.device, s.embed_batch_size, s.precision,
                        self.model_cache).load()

    @property
    def model_cache(self) -> Path:
        """Where int8 exports (the embedder's, the reader's) are cached: NEWSBOT_MODEL_CACHE,
        or the data dir's models/."""
        return self.settings.model_cache or self.data_dir / "models"

    @property
    def abstain_below(self) -> float:
        """NEWSBOT_ABSTAIN_BELOW, or the threshold calibrated for the embedder's precision."""
        from retrieval.cite import ABSTAIN_BELOW

        s = self.settings.abstain_below
        return s if s is not None else ABSTAIN_BELOW[self.embedder.precision]

    @cached_property
    def lexical(self) -> LexicalIndex:
        from retrieval.lexical import LexicalIndex

        return LexicalIndex(self.catalog, self.data_dir / "bm25")

    def reader_floor(self, rd: Reader) -> float:
        """NEWSBOT_READER_ABSTAIN_BELOW, or the floor the reader was calibrated with."""
        s = self.settings.reader_abstain_below
        if s is not None:
            return s
        return rd.abstain_below if rd.abstain_below is not None else 0.0

    @cached_property
    def reader(self) -> Reader | None:
        """The trained reader (NEWSBOT_READER), or None for the heuristic scorer alone."""
        from retrieval.read import load_reader

        s = self.settings
        return load_reader(s.reader, s.device, s.reader_precision, self.model_cache)

    @cached_property
    def chat_model(self) -> Any:
        """The configured LLM (a LangChain chat model), or None: extractive answers only."""
        from retrieval.llm import make_chat_model

        return make_chat_model(self.settings)

    def warm(self) -> None:
        """Load the model, open the store and build BM25 now rather than on the first question."""
        _ = self.embedder, self.vectors, self.chat_model, self.reader
        self.lexical.index()

    def close(self) -> None:
        self.catalog.close()

    # -- writing
    @contextmanager
    def _writer(self) -> Iterator[None]:
        """One writer per data dir: a second ingest (another process too) is refused."""
        with self._write_lock:
            lock = open(self.data_dir / "write.lock", "w")  # noqa: SIM115
            try:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    # No path: this reaches Discord users when the bot meets a CLI ingest.
                    raise BusyError("another ingest or remove is running on this store; "
                                    "try again when it has finished") from None
                self._finish_unfinished()
                yield
            finally:
                lock.close()

    def _finish_unfinished(self) -> None:
        """Complete what a crashed run left: re-embed pending articles (a staged new version
        goes on replacing its old one, which stayed visible), drop half-removed ones, delete
        vectors left stale. Chunks from before BM25 term ids were kept get them, once."""
        self.catalog.backfill_terms()
        for library, article_id, status in self.catalog.unfinished():
            if status == "removing":
                self.vectors.delete(library, [article_id])
                self.catalog.delete(library, [article_id])
                continue
            staged = status == "staged"
            if not staged:  # nothing of it is visible: its vectors are written again
                self.vectors.delete(library, [article_id])
            loaded = self.catalog.load(library, article_id, staged)
            if loaded:
                article, sentences = loaded
                chunks = self.catalog.chunks_of(library, article_id, staged)
                version = self.catalog.version_of(library, article_id, staged)
                vecs = self._embed_and_store(library, [(article, sentences, chunks)],
                                             {article_id: version})
                replaced = self.catalog.others_with_url(library, article.url, article_id)
                self.catalog.mark_ready(library, [article_id], vecs, replaced)
        self._drop_stale()

    def _drop_stale(self) -> None:
        """Delete the vectors the catalog no longer shows (a replaced version's, a replaced
        article's), as noted in the transaction that replaced them."""
        for library, article_id, keep in self.catalog.stale_vectors():
            self.vectors.delete_stale(library, article_id, keep)
            self.catalog.stale_done(library, article_id, keep)

    def _embed_and_store(
        self, library: str, items: list[tuple[Article, list[Sentence], list[Chunk]]],
        versions: dict[str, str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Embed the sentences, store the chunk vectors in Chroma, and return each article's
        sentence vectors, which the catalog stores as the articles become ready.
        ``versions``: the catalog's hash of each article, where it is not the one this
        splitter would give (a version written before a crash)."""
        import numpy as np

        texts = [s.text for _, sentences, _ in items for s in sentences]
        # A new version (or a re-split) of a stored article embeds only the sentences its
        # stored version lacks: an upgrade's re-ingest or an edit costs what changed.
        kept = self._stored_sentence_vectors(library, [a.id for a, _, _ in items])
        todo = list(dict.fromkeys(t for t in texts if t not in kept))
        if todo:
            kept.update(zip(todo, self.embedder.embed(todo), strict=True))
        vecs = (np.stack([kept[t] for t in texts]) if texts
                else np.zeros((0, self.embedder.dim), np.float32))
        batch, by_article, at = [], {}, 0
        for article, sentences, chunks in items:
            svecs = vecs[at : at + len(sentences)]
            at += len(sentences)
            by_article[article.id] = svecs
            version = (versions or {}).get(article.id) or article.content_hash()
            batch.append((article, version, chunks, _chunk_vectors(svecs, chunks, np)))
        self.vectors.add(library, batch)
        return by_article

    def _stored_sentence_vectors(self, library: str, article_ids: list[str]
                                 ) -> dict[str, np.ndarray]:
        """Sentence text -> vector of the ready stored versions of these articles (none of
        another size: vectors of another model are never mixed in)."""
        kept: dict[str, np.ndarray] = {}
        for aid in article_ids:
            state = self.catalog.state(library, aid)
            if state is None or state[1] != "ready":
                continue
            loaded, svecs = self.catalog.load(library, aid), self.catalog.vectors_of(library, aid)
            if (loaded and svecs is not None and len(svecs) == len(loaded[1])
                    and svecs.shape[1] == self.embedder.dim):
                kept.update(zip((x.text for x in loaded[1]), svecs, strict=True))
        return kept

    def _needs_writing(self, library: str, article: Article) -> bool:
        return self.catalog.state(library, article.id) != (article.content_hash(), "ready")

    def _write_batch(self, library: str, batch: list[Article], report: IngestReport,
                     claimed: dict[str, str], splits: dict[SplitKey, Split] | None = None,
                     budget: int | None = None) -> None:
        """Write one batch. Every check that can refuse an article runs before anything is
        written, so a refused new version leaves the stored one as it was. ``claimed`` maps
        the URLs of this ingest run to the article that claimed each first; ``splits`` holds
        sentences and chunks split ahead by the pipeline's worker; ``budget`` caps the
        sentences the whole run may embed (the bot's per-server write budget)."""
        from retrieval.ingest import host_of, is_url
        from retrieval.pipeline import split_article

        s = self.settings
        splits = splits or {}
        by_id = {a.id: a for a in batch}  # a later record with the same id wins
        items, replaced = [], []
        for a in by_id.values():
            where = a.origin or a.id
            key = (a.id, a.content_hash())
            state = self.catalog.state(library, a.id)
            if state == (key[1], "ready"):
                report.unchanged += 1
                continue
            first = claimed.setdefault(a.url, a.id) if a.url else a.id
            # Stored under this URL with another id, and not itself rewritten in this batch.
            same_url = self.catalog.id_for_url(library, a.url)
            if same_url in (a.id, *by_id):
                same_url = None
            kept = "; kept the previous version" if state or same_url else ""
            if first != a.id:
                report.failed.append(IngestFailure(
                    where, f"same URL as article {first} in this ingest; kept {first}"))
                continue
            # An article fetched from one web host is never replaced from another.
            origins = {old: self.catalog.origin_of(library, old)
                       for old in (a.id if state else None, same_url) if old}
            foreign = [(old, host_of(o)) for old, o in origins.items()
                       if is_url(o) and is_url(a.origin) and host_of(o) != host_of(a.origin)]
            if foreign:
                report.failed.append(IngestFailure(
                    where, f"would replace article {foreign[0][0]}, which came from "
                    f"{foreign[0][1]}; a page never replaces another site's article{kept}"))
                continue
            sentences, chunks, capped = splits[key] if key in splits else split_article(
                a.id, a.text, a.body_start, s.max_sentence_chars, s.chunk_sentences,
                s.chunk_overlap, s.max_article_sentences, s.max_article_chunks)
            if not sentences:
                report.failed.append(IngestFailure(where, f"no sentences found{kept}"))
                continue
            if budget is not None and report.sentences + len(sentences) > budget:
                report.failed.append(IngestFailure(
                    where, f"not stored: this ingest reached its budget of {budget:,} "
                    f"sentences; send the rest in another one{kept}"))
                continue
            if capped:
                report.notes.append(IngestFailure(
                    where, f"only its first {len(sentences):,} sentences ({len(chunks):,} "
                    f"passages) are searchable: the limit per article is "
                    f"{s.max_article_sentences:,} sentences and {s.max_article_chunks:,} "
                    "passages"))
            items.append((a, sentences, chunks))
            if same_url:
                replaced.append(same_url)
            if state or same_url:
                report.updated += 1
            else:
                report.added += 1
            report.sentences += len(sentences)
            report.chunks += len(chunks)
        if not items:
            return
        ids = [a.id for a, _, _ in items]
        # A new version of a stored article is staged: the old one stays visible, and its
        # vectors stay beside the new ones (vector ids carry the content hash), until the
        # one transaction of mark_ready swaps them.
        self.catalog.write_pending(library, items)
        vecs = self._embed_and_store(library, items)
        self.catalog.mark_ready(library, ids, vecs, replaced)
        # Only now are the old versions gone from the catalog; their vectors follow (a crash
        # in between leaves vectors that no search shows, noted for the next writer).
        self._drop_stale()

    def ingest_articles(
        self, articles: Iterable[Article | IngestFailure], library: str = GLOBAL,
        progress: Progress | None = None, max_sentences: int | None = None,
    ) -> IngestReport:
        """Store articles; ``max_sentences`` caps what the whole run may embed (past it, the
        rest are reported, not stored), so one caller can't hold the writer for long."""
        library = check_library(library)
        report = IngestReport()
        started = time.perf_counter()
        claimed: dict[str, str] = {}
        # A model that can't load, or a vector store that lost vectors, is refused before
        # anything is written: "unchanged" is never judged from the catalog alone.
        _ = self.embedder, self.vectors
        before = self.catalog.generation()
        with self._writer():
            self._write_pipelined(library, articles, report, claimed, progress, max_sentences)
        # New, changed, or finished after a crash (then the report may say "unchanged").
        if self.catalog.generation() != before:
            self.catalog.set_meta("last_ingest", dt.datetime.now(dt.UTC).isoformat(
                timespec="seconds"))
            if self.catalog.get_meta("embedding_model") is None:  # a store from before
                self.catalog.set_meta("embedding_model", self.model_label)
            self.lexical.refresh()  # the ingest pays for BM25, not the next question
            for hook in self.on_ingest:
                try:
                    hook(library)
                except Exception:  # a listener's failure never fails a stored ingest
                    log.exception("an ingest listener failed")
        report.seconds = time.perf_counter() - started
        return report

    @cached_property
    def split_workers(self) -> int:
        """Sentence-splitting worker processes for a large ingest. A CPU encoder already
        keeps every core busy, so one worker there (measured: no gain from it on 2 cores); a
        GPU encodes several times faster than one core splits, so all but one core there."""
        from retrieval.precision import usable_cpus

        return 1 if self.embedder.device == "cpu" else max(1, usable_cpus() - 1)

    def _write_pipelined(self, library: str, articles: Iterable[Article | IngestFailure],
                         report: IngestReport, claimed: dict[str, str],
                         progress: Progress | None, budget: int | None = None) -> None:
        """Batches written in order; from the second batch on, worker processes split the
        next batches (one per worker) into sentences while this one is encoded and written. A
        single batch (the bot's /ingest, a feed poll) is split here: a worker would cost more
        than it saves."""
        from collections import deque

        from retrieval.pipeline import SplitAhead, main_is_importable

        s = self.settings
        workers_allowed = main_is_importable()
        ahead: SplitAhead | None = None
        queued: deque[tuple[list[Article], Future | None]] = deque()  # read, not yet written

        def write(batch: list[Article], future: Future | None) -> None:
            self._write_batch(library, batch, report, claimed,
                              ahead.get(future) if ahead else None, budget)
            if progress:
                progress(len(batch))

        def enqueue(batch: list[Article]) -> None:
            nonlocal ahead
            future = None
            if workers_allowed and (queued or ahead is not None):  # from the second batch on
                todo = [((a.id, a.content_hash()), a) for a in batch
                        if self._needs_writing(library, a)]
                if todo and ahead is None:
                    ahead = SplitAhead(s.max_sentence_chars, s.chunk_sentences,
                                       s.chunk_overlap, self.split_workers,
                                       s.max_article_sentences, s.max_article_chunks)
                future = ahead.submit(todo) if ahead and todo else None
            queued.append((batch, future))
            while len(queued) > (ahead.workers if ahead else 1):
                write(*queued.popleft())

        try:
            batch: list[Article] = []
            for item in articles:
                if isinstance(item, IngestFailure):
                    report.failed.append(item)
                    continue
                batch.append(item)
                if len(batch) >= s.ingest_batch:
                    enqueue(batch)
                    batch = []
            if batch:
                enqueue(batch)
            while queued:
                write(*queued.popleft())
        finally:
            if ahead is not None:
                ahead.close()

    def ingest(
        self, paths: Iterable[str | os.PathLike[str]], library: str = GLOBAL,
        progress: Progress | None = None, encoding: str = "utf-8",
        allow_private: bool | None = None,
    ) -> IngestReport:
        """Files, directories and http(s) URLs. ``allow_private`` overrides the setting (the
        bot passes False: a guild member's URL never reaches this host or a private network)."""
        paths = list(paths)
        urls = [str(p) for p in paths if is_url(str(p))]
        files = [p for p in paths if not is_url(str(p))]
        allow = self.settings.allow_private_urls if allow_private is None else allow_private
        # Pages are fetched before the write lock is taken: a slow server never holds it.
        fetched = [self.fetch_article(url, allow) for url in urls]

        def items() -> Iterator[Article | IngestFailure]:
            yield from iter_articles(files, encoding, protected=[self.data_dir])
            yield from fetched

        return self.ingest_articles(items(), library, progress)

    def fetch_article(self, url: str, allow_private: bool, **fetch_options: str
                      ) -> Article | IngestFailure:
        from retrieval.fetch import FetchError
        from retrieval.ingest import InputError, load_url

        s = self.settings
        try:
            return load_url(url, allow_private=allow_private, timeout_s=s.fetch_timeout_s,
                            max_bytes=s.fetch_max_bytes, max_redirects=s.fetch_max_redirects,
                            **fetch_options)
        except (FetchError, InputError) as e:
            return IngestFailure(url, str(e))

    def repair(self) -> dict[str, int]:
        """Make the vector store agree with the catalog again, after it was lost or damaged:
        every ready article whose chunk vectors are missing gets them again (from the
        catalog's sentence vectors, or embedded anew where those are missing too), and
        vectors of no stored version are deleted. Returns what it did."""
        import numpy as np

        self.__dict__["vectors"] = self._open_vectors()  # unchecked: this is the repair
        restored = removed = 0
        with self._writer():
            libraries = set(self.catalog.chunks_by_library()) | set(self.vectors.libraries())
            for library in sorted(libraries):
                versions = self.catalog.hashes(library)
                held: dict[tuple[str, str], set[int]] = {}
                orphans = []
                for vid, aid, version, idx in self.vectors.chunk_keys(library):
                    if (aid, version) in versions:
                        held.setdefault((aid, version), set()).add(idx)
                    else:
                        orphans.append(vid)
                self.vectors.delete_ids(library, orphans)
                removed += len(orphans)
                todo = [(aid, version) for aid, version, n
                        in self.catalog.ready_chunk_hashes(library)
                        if len(held.get((aid, version), ())) < n]
                batch: list[tuple[Article, str, list[Chunk], np.ndarray]] = []
                for i, (aid, version) in enumerate(todo):
                    article, sentences = self.catalog.load(library, aid)
                    chunks = self.catalog.chunks_of(library, aid)
                    svecs = self.catalog.vectors_of(library, aid)
                    if svecs is None or len(svecs) != len(sentences):
                        svecs = self.embedder.embed([x.text for x in sentences])
                        self.catalog.put_sentence_vectors(library, aid, svecs)
                    batch.append((article, version, chunks, _chunk_vectors(svecs, chunks, np)))
                    if len(batch) == self.settings.ingest_batch or i == len(todo) - 1:
                        self.vectors.add(library, batch)
                        restored += len(batch)
                        batch = []
        self._check_vectors(self.vectors)
        return {"articles": restored, "removed": removed}

    def remove(self, article_id: str, library: str = GLOBAL) -> bool:
        with self._writer():
            if not self.catalog.mark_removing(library, article_id):
                return False
            self.vectors.delete(library, [article_id])
            self.catalog.delete(library, [article_id])
        self.lexical.refresh()
        return True

    # -- reading
    def check_question(self, question: str, what: str = "question") -> str:
        """The question (or claim, as ``what`` says) on one line, cleaned of what can't be
        stored (it may reach the feedback and standing-question stores)."""
        from retrieval.ingest import clean_text

        q = " ".join(clean_text(question).split())
        if not q:
            raise QuestionError(f"the {what} is empty")
        limit = self.settings.max_question_chars
        if len(q) > limit:
            raise QuestionError(
                f"the {what} is {len(q):,} characters long; the limit is {limit:,}")
        return q

    def ask(
        self, question: str, libraries: list[str] | None = None, source: str | None = None,
        since: str | None = None, until: str | None = None, k: int | None = None, *,
        depth: int | None = None, mode: str = "hybrid", as_of: str | None = None,
        llm: bool = True, on_text: Callable[[str], None] | None = None, reader: bool = True,
    ) -> Answer:
        """Answer from the top ``k`` passages (``depth`` are returned, for evaluation). With
        ``as_of``, the question is asked as on that date: later articles are left out. When an
        LLM is configured (and ``llm``), it writes the answer from the candidate sentences and
        only its verified sentences are kept; ``on_text`` then receives the verified answer
        as it streams in."""
        from retrieval.answer import extractive
        from retrieval.cite import FOLLOW_MARGIN, best_relevance, select
        from retrieval.search import Filters

        started = time.perf_counter()
        q = self.check_question(question)
        libraries = [check_library(lib) for lib in (libraries or [self.settings.library])]
        filters = Filters(libraries, source or None, check_date(since, "--since"),
                          check_date(until, "--until"))
        as_of = check_date(as_of, "as_of")
        if as_of and (filters.until is None or as_of < filters.until):
            filters.until = as_of
        if filters.since and filters.until and filters.since > filters.until:
            raise QuestionError("--since is after --until")
        k = self.settings.top_k if k is None else k
        if not 1 <= k <= 50:
            raise QuestionError("k must be between 1 and 50")
        timings: dict[str, float] = {}
        ref = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
        passages, ranked = self._rank(q, filters, k, max(k, depth or 0), mode, ref, timings)
        rd = self.reader if reader else None
        margin = FOLLOW_MARGIN
        previous: dict[tuple[str, str, int], str] = {}
        if rd is not None:  # the reader re-reads the best candidates and orders them
            t = time.perf_counter()
            previous = self.previous_sentences(ranked[: rd.candidates])
            ranked = rd.rerank(q, ranked, previous)
            margin = 1.0  # probabilities are no scores: the scorer's threshold gates citations
            timings["read_ms"] = (time.perf_counter() - t) * 1000
        citations = select(ranked, self.abstain_below, self.settings.max_citations, margin)
        # The floor asks whether any re-read sentence states the fact, whatever comes first.
        best_read = max((c.score for c in ranked), default=0.0) if rd is not None else 0.0
        if rd is not None and best_read < self.reader_floor(rd):
            citations = []  # the story may be there, but no sentence states the fact
        stored = self.catalog.counts(libraries)["articles"]
        answer = extractive(q, citations, passages, stored, _scope(filters))
        answer.score = best_relevance(ranked)
        if rd is not None:
            answer.reader = f"reader ({rd.dtype})"
            answer.reader_best = best_read
            if citations:  # [1] is a re-read candidate: its sentence before is in previous
                answer.short_answer = _short_answer(rd, q, citations[0], best_read,
                                                    self.embedder.embed, previous)
        # The LLM is asked only when the extractive answer found support: where the articles
        # don't say, no model gets the chance to guess.
        if llm and self.chat_model is not None and not answer.abstained:
            from retrieval.generate import llm_answer
            from retrieval.prompts import render
            from retrieval.verify import Verifier

            t = time.perf_counter()
            s = self.settings
            verifier = Verifier(self.embedder.embed, s.verify_min_similarity,
                                s.verify_min_overlap)
            answer = llm_answer(
                q, ranked, answer, self.chat_model, verifier, evidence_size=s.llm_evidence,
                timeout_s=s.llm_timeout_s, on_text=on_text,
                max_reply_chars=s.llm_max_reply_chars, max_claims=s.llm_max_claims,
                not_found_text=render("not_found", articles=stored, scope=_scope(filters)))
            timings["llm_ms"] = (time.perf_counter() - t) * 1000
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        answer.timings_ms = timings
        return answer

    def _rank(self, q: str, filters, k: int, depth: int, mode: str, ref: dt.date,
              timings: dict[str, float]) -> tuple[list[Passage], list[Candidate]]:
        """Search, then every sentence of the top ``k`` passages ranked by the hand-set scorer."""
        from retrieval.cite import candidates, score_candidates
        from retrieval.search import hybrid_search

        t = time.perf_counter()
        qvec = self.embedder.embed_query(q)
        timings["embed_ms"] = (time.perf_counter() - t) * 1000
        passages = hybrid_search(q, qvec, depth, filters, self.catalog, self.vectors,
                                 self.lexical, timings, mode=mode, ref_date=ref)
        t = time.perf_counter()
        ranked = score_candidates(q, qvec, candidates(passages[:k], self.catalog),
                                  self.catalog, self.vectors, ref)
        timings["cite_ms"] = (time.perf_counter() - t) * 1000
        return passages, ranked

    def rank(self, text: str, libraries: list[str], as_of: str | None = None,
             what: str = "question") -> list[Candidate]:
        """The candidate sentences for ``text`` (a question or a claim), best first, as
        ``ask`` ranks them before citing (``as_of`` as in ``ask``); nothing is abstained on."""
        from retrieval.search import Filters

        q = self.check_question(text, what)
        as_of = check_date(as_of, "as_of")
        filters = Filters([check_library(lib) for lib in libraries], None, None, as_of)
        ref = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
        return self._rank(q, filters, self.settings.top_k, self.settings.top_k, "hybrid",
                          ref, {})[1]

    def previous_sentences(self, cands: list[Candidate]) -> dict[tuple[str, str, int], str]:
        """The sentence before each candidate: the reader's context, so that "he said" in the
        candidate is read as whoever the sentence before names."""
        wanted = {(c.library, c.article_id, c.index - 1) for c in cands if c.index > 0}
        texts = self.catalog.sentence_texts(wanted)
        return {(lib, aid, idx + 1): text for (lib, aid, idx), text in texts.items()}

    def standalone(self, question: str, history: list[Turn]) -> tuple[str, str]:
        """A follow-up rewritten into a standalone question from the conversation's turns."""
        from retrieval.followup import rewrite

        q = self.check_question(question)
        turns = history[-self.settings.followup_turns:]
        standalone, how = rewrite(q, turns, self.chat_model,
                                  min(10.0, self.settings.llm_timeout_s))
        return self.check_question(standalone), how

    def vector_counts(self, library: str | None = None,
                      article_id: str | None = None) -> dict[str, int]:
        """Sentence vectors (catalog) and chunk vectors (Chroma) stored."""
        return {"sentences": self.catalog.count_sentence_vectors(library, article_id),
                "chunks": self.vectors.count(library, article_id)}

    def require_articles(self, libraries: list[str]) -> None:
        if not self.catalog.counts(libraries)["articles"]:
            raise NewsbotError(
                f"no articles stored in {', '.join(libraries)} under {self.data_dir}; "
                "add some with `newsbot ingest PATH`")


def _short_answer(rd: Reader, question: str, citation, probability: float, embed,
                  previous: dict[tuple[str, str, int], str]):
    """The span of citation [1] that answers, in article offsets; None when unsure. It is read
    with the title and sentence before, as the reader scored it."""
    from retrieval.models import ShortAnswer

    before = previous.get((citation.library, citation.article_id, citation.sentence_index), "")
    span = rd.short_answer(question, citation.quote, probability, embed, citation.title, before)
    if span is None:
        return None
    return ShortAnswer(span.text, citation.article_id, citation.start + span.start,
                       citation.start + span.end, round(span.confidence, 4))


def _scope(f) -> str:
    parts = []
    if f.source:
        parts.append(f"from {f.source}")
    if f.since:
        parts.append(f"since {f.since}")
    if f.until:
        parts.append(f"until {f.until}")
    return (" " + " ".join(parts)) if parts else ""


def _chunk_vectors(svecs: np.ndarray, chunks: list[Chunk], np) -> np.ndarray:
    """A chunk's vector is the normalised mean of its sentences' vectors: near what encoding the
    chunk gives for retrieval, at no extra model cost (ingest is dominated by encoding)."""
    if not chunks:
        return np.zeros((0, svecs.shape[1]), dtype=np.float32)
    out = np.stack([svecs[c.first_sentence : c.last_sentence + 1].mean(axis=0) for c in chunks])
    out /= np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)
    return out.astype(np.float32)
