"""The catalog: articles, their sentences and chunks, in SQLite beside the vector store.

Chroma holds vectors; the catalog holds the truth about which articles are complete. An article is
written here as ``pending`` before its vectors go to Chroma and flipped to ``ready`` after, each
step one transaction per batch, so a crash midway never leaves a half-visible article, and the
next ingest finishes what was left. A new version of a stored article is staged beside the old
one (``staged_*`` tables) and swapped in by the transaction that makes it ready, so the old
version stays visible and answerable until then, a crash included. Reading it needs no ML stack
(``show``, ``sources``).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from retrieval.errors import StoreError
from retrieval.models import Article, Chunk, Sentence, StoredArticle
from retrieval.tokens import tokens

SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    library TEXT NOT NULL, id TEXT NOT NULL,
    title TEXT NOT NULL, source TEXT NOT NULL, source_key TEXT NOT NULL,
    published TEXT NOT NULL, url TEXT NOT NULL, place TEXT NOT NULL, authors TEXT NOT NULL,
    text TEXT NOT NULL, body_start INTEGER NOT NULL, hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'removing')),
    n_sentences INTEGER NOT NULL, n_chunks INTEGER NOT NULL,
    origin TEXT NOT NULL, ingested_at TEXT NOT NULL,
    PRIMARY KEY (library, id)
);
CREATE INDEX IF NOT EXISTS articles_url ON articles (library, url);
-- Covers the per-library chunk counts that opening the vector store checks against Chroma, so
-- that check never reads article texts.
CREATE INDEX IF NOT EXISTS articles_chunks ON articles (status, library, n_chunks);
-- Standing questions look for what arrived since their last look (retrieval/follow.py).
CREATE INDEX IF NOT EXISTS articles_ingested ON articles (ingested_at);
CREATE TABLE IF NOT EXISTS sentences (
    library TEXT NOT NULL, article_id TEXT NOT NULL, idx INTEGER NOT NULL,
    start INTEGER NOT NULL, end INTEGER NOT NULL,
    PRIMARY KEY (library, article_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
    library TEXT NOT NULL, article_id TEXT NOT NULL, idx INTEGER NOT NULL,
    start INTEGER NOT NULL, end INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,
    PRIMARY KEY (library, article_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- A new version of a ready article waits here, with its sentences and chunks, while its vectors
-- are stored; mark_ready swaps it in. Same columns as articles, sentences and chunks.
CREATE TABLE IF NOT EXISTS staged_articles (
    library TEXT NOT NULL, id TEXT NOT NULL,
    title TEXT NOT NULL, source TEXT NOT NULL, source_key TEXT NOT NULL,
    published TEXT NOT NULL, url TEXT NOT NULL, place TEXT NOT NULL, authors TEXT NOT NULL,
    text TEXT NOT NULL, body_start INTEGER NOT NULL, hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status = 'pending'),
    n_sentences INTEGER NOT NULL, n_chunks INTEGER NOT NULL,
    origin TEXT NOT NULL, ingested_at TEXT NOT NULL,
    PRIMARY KEY (library, id)
);
CREATE TABLE IF NOT EXISTS staged_sentences (
    library TEXT NOT NULL, article_id TEXT NOT NULL, idx INTEGER NOT NULL,
    start INTEGER NOT NULL, end INTEGER NOT NULL,
    PRIMARY KEY (library, article_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS staged_chunks (
    library TEXT NOT NULL, article_id TEXT NOT NULL, idx INTEGER NOT NULL,
    start INTEGER NOT NULL, end INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,
    terms BLOB,
    PRIMARY KEY (library, article_id, idx)
) WITHOUT ROWID;
-- Vector-store work left after a catalog commit: the chunk vectors of (library, article_id)
-- whose hash is not ``keep`` ('' = all of them) are to be deleted. Written in the transaction
-- that made them stale, so a crash before the delete leaves the task for the next writer.
CREATE TABLE IF NOT EXISTS stale_vectors (
    library TEXT NOT NULL, article_id TEXT NOT NULL, keep TEXT NOT NULL,
    PRIMARY KEY (library, article_id)
) WITHOUT ROWID;
-- BM25's vocabulary: ids only grow, so a chunk's stored term ids (chunks.terms) stay valid and
-- a BM25 rebuild never tokenizes again.
CREATE TABLE IF NOT EXISTS terms (term TEXT PRIMARY KEY, id INTEGER NOT NULL UNIQUE);
-- Sentence vectors (float16) are read by key, never searched, so they stay out of Chroma's
-- HNSW index, which holds its vectors in memory: at 100k articles, 3M sentences would cost
-- ~5 GB of RAM there and cost 2.3 GB of disk here.
CREATE TABLE IF NOT EXISTS sentence_vectors (
    library TEXT NOT NULL, article_id TEXT NOT NULL, idx INTEGER NOT NULL, vec BLOB NOT NULL,
    PRIMARY KEY (library, article_id, idx)
) WITHOUT ROWID;
"""


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (taking the write lock at once), rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def source_key(source: str) -> str:
    return " ".join(source.lower().split())


def date_key(published: str) -> int:
    """YYYYMMDD as an int, for range filters in Chroma; 0 when unknown."""
    return int(published.replace("-", "")) if published else 0


def _add_terms_column(db: sqlite3.Connection, path: Path) -> None:
    try:
        db.execute("ALTER TABLE chunks ADD COLUMN terms BLOB")
    except sqlite3.OperationalError as e:
        if "duplicate column" not in str(e):  # else another process added it first: fine
            raise StoreError(f"cannot upgrade the catalog {path}: {e}") from None


class Catalog:
    """One SQLite connection per thread (the bot answers from worker threads); WAL lets readers
    run beside the one writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._counts: dict[tuple, dict[str, int]] = {}
        self._vocab: dict[str, int] | None = None  # the writer's copy of the terms table
        with self._lock:
            db = self._connect()
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(chunks)")}
            if "terms" not in columns:  # stores written before term ids were kept
                _add_terms_column(db, path)

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the catalog {self.path}: {e}") from None
        self._local.db = db
        self._all.append(db)
        return db

    @property
    def db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            with self._lock:
                db = self._connect()
        return db

    def close(self) -> None:
        with self._lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with immediate(self.db) as db:
            yield db

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one consistent state of the catalog (WAL: writers go on)."""
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    # -- generation: bumps on every visible change, so caches (BM25) know when to rebuild
    def generation(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def _bump(self, db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO meta(key, value) VALUES('generation', '1') ON CONFLICT(key) "
            "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    # -- writing
    def state(self, library: str, article_id: str) -> tuple[str, str] | None:
        """(hash, status) of a stored article, or None."""
        row = self.db.execute(
            "SELECT hash, status FROM articles WHERE library=? AND id=?", (library, article_id)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def id_for_url(self, library: str, url: str) -> str | None:
        if not url:
            return None
        row = self.db.execute(
            "SELECT id FROM articles WHERE library=? AND url=? AND status!='removing'",
            (library, url),
        ).fetchone()
        return row[0] if row else None

    def write_pending(
        self,
        library: str,
        items: Iterable[tuple[Article, list[Sentence], list[Chunk]]],
    ) -> None:
        """Record a batch as pending, with its sentences and chunks, in one transaction. An
        article with a ready version is staged beside it: the old version stays visible (and
        its rows and vectors untouched) until ``mark_ready`` swaps the new one in."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self.transaction() as db, self._vocabulary(db):
            for a, sentences, chunks in items:
                row = db.execute(
                    "SELECT status, ingested_at, title, text, source, published, url, place, "
                    "authors FROM articles WHERE library=? AND id=?", (library, a.id)).fetchone()
                staged = row is not None and row[0] == "ready"
                # What the hash holds but the splitter's version is the same: only re-split,
                # it arrived when it first did, so standing questions do not take it for news.
                same = staged and [*row[2:8], json.loads(row[8])] == a.hashed_fields()
                arrived = row[1] if same else now
                prefix = "staged_" if staged else ""
                self._drop_staged(db, library, a.id)
                if not staged:  # a leftover pending row: nothing of it is visible
                    self._delete_rows(db, library, [a.id])
                db.execute(
                    f"INSERT INTO {prefix}articles VALUES "
                    "(?,?,?,?,?,?,?,?,?,?,?,?,'pending',?,?,?,?)",
                    (library, a.id, a.title, a.source, source_key(a.source), a.published_iso,
                     a.url, a.place, json.dumps(a.authors, ensure_ascii=False), a.text,
                     a.body_start, a.content_hash(), len(sentences), len(chunks), a.origin,
                     arrived),
                )
                db.executemany(
                    f"INSERT INTO {prefix}sentences VALUES (?,?,?,?,?)",
                    [(library, a.id, s.index, s.start, s.end) for s in sentences],
                )
                db.executemany(
                    f"INSERT INTO {prefix}chunks (library, article_id, idx, start, end, first, "
                    "last, terms) VALUES (?,?,?,?,?,?,?,?)",
                    [(library, a.id, c.index, c.start, c.end, c.first_sentence, c.last_sentence,
                      self._chunk_terms(db, a.text[c.start:c.end])) for c in chunks],
                )
            self._bump(db)

    @staticmethod
    def _drop_staged(db: sqlite3.Connection, library: str, article_id: str) -> None:
        for table, col in (("staged_sentences", "article_id"), ("staged_chunks", "article_id"),
                           ("staged_articles", "id")):
            db.execute(f"DELETE FROM {table} WHERE library=? AND {col}=?", (library, article_id))

    @staticmethod
    def _swap_in(db: sqlite3.Connection, library: str, article_id: str) -> bool:
        """Replace a ready article by its staged version (inside the caller's transaction);
        False when none is staged."""
        key = (library, article_id)
        if db.execute("SELECT 1 FROM staged_articles WHERE library=? AND id=?",
                      key).fetchone() is None:
            return False
        Catalog._delete_rows(db, library, [article_id], vectors=False)
        db.execute("INSERT INTO articles SELECT library, id, title, source, source_key, "
                   "published, url, place, authors, text, body_start, hash, 'pending', "
                   "n_sentences, n_chunks, origin, ingested_at FROM staged_articles "
                   "WHERE library=? AND id=?", key)
        db.execute("INSERT INTO sentences SELECT * FROM staged_sentences WHERE library=? AND "
                   "article_id=?", key)
        db.execute("INSERT INTO chunks (library, article_id, idx, start, end, first, last, "
                   "terms) SELECT library, article_id, idx, start, end, first, last, terms "
                   "FROM staged_chunks WHERE library=? AND article_id=?", key)
        Catalog._drop_staged(db, library, article_id)
        return True

    @contextmanager
    def _vocabulary(self, db: sqlite3.Connection) -> Iterator[None]:
        """Brings the writer's vocabulary up to date inside a write transaction (another process
        may have added terms), and forgets it if the transaction fails."""
        if self._vocab is None:
            self._vocab = {}
        self._vocab.update(db.execute("SELECT term, id FROM terms WHERE id >= ?",
                                      (len(self._vocab),)))
        try:
            yield
        except BaseException:
            self._vocab = None  # may hold ids that were rolled back
            raise

    def _chunk_terms(self, db: sqlite3.Connection, chunk_text: str) -> bytes:
        """The chunk's BM25 term ids as stored (int32 bytes); new terms join the vocabulary."""
        toks = tokens(chunk_text)
        vocab = self._vocab
        assert vocab is not None, "term ids are assigned inside _vocabulary()"
        new = [t for t in dict.fromkeys(toks) if t not in vocab]
        for t in new:
            vocab[t] = len(vocab)
        if new:
            db.executemany("INSERT INTO terms VALUES (?,?)", [(t, vocab[t]) for t in new])
        return np.array([vocab[t] for t in toks], dtype=np.int32).tobytes()

    def backfill_terms(self, batch: int = 500) -> int:
        """Give term ids to the chunks of stores written before they were kept (once per store;
        a writer calls this). Returns how many chunks were filled."""
        if self.get_meta("terms_complete") == "1":
            return 0
        filled, after = 0, ("", "")
        while True:
            with self.transaction() as db, self._vocabulary(db):
                articles = db.execute(
                    "SELECT library, id, text FROM articles WHERE (library, id) > (?, ?) "
                    "ORDER BY library, id LIMIT ?", (*after, batch)).fetchall()
                for lib, aid, text in articles:
                    rows = db.execute("SELECT idx, start, end FROM chunks WHERE library=? AND "
                                      "article_id=? AND terms IS NULL", (lib, aid)).fetchall()
                    db.executemany(
                        "UPDATE chunks SET terms=? WHERE library=? AND article_id=? AND idx=?",
                        [(self._chunk_terms(db, text[s:e]), lib, aid, idx)
                         for idx, s, e in rows])
                    filled += len(rows)
            if len(articles) < batch:
                self.set_meta("terms_complete", "1")
                return filled
            after = articles[-1][:2]

    def vocabulary(self, since: int = 0) -> dict[str, int]:
        """Every term id handed out so far (from id ``since`` on)."""
        if since:
            return dict(self.db.execute("SELECT term, id FROM terms WHERE id >= ?", (since,)))
        return dict(self.db.execute("SELECT term, id FROM terms"))

    def mark_ready(self, library: str, ids: Iterable[str],
                   sentence_vectors: dict[str, np.ndarray] | None = None,
                   replaced: Iterable[str] = ()) -> None:
        """Make articles visible, storing their sentence vectors in the same transaction. A
        staged new version replaces the old one here, and the articles they replace (same
        URL, other id) go in this same transaction: a replace is atomic, and a new version
        that fails before this leaves the old one untouched. The vectors this leaves stale
        are noted in ``stale_vectors`` for the caller (or the next writer) to delete."""
        ids = list(ids)
        replaced = list(replaced)
        with self.transaction() as db:
            self._delete_rows(db, library, replaced)
            stale = [(library, i, "") for i in replaced]
            for aid in ids:
                if self._swap_in(db, library, aid):
                    new_hash = db.execute("SELECT hash FROM articles WHERE library=? AND id=?",
                                          (library, aid)).fetchone()[0]
                    stale.append((library, aid, new_hash))
            db.executemany("INSERT OR REPLACE INTO stale_vectors VALUES (?,?,?)", stale)
            for aid, vecs in (sentence_vectors or {}).items():
                db.execute("DELETE FROM sentence_vectors WHERE library=? AND article_id=?",
                           (library, aid))
                db.executemany("INSERT INTO sentence_vectors VALUES (?,?,?,?)",
                               [(library, aid, i, v.astype(np.float16).tobytes())
                                for i, v in enumerate(vecs)])
            db.executemany("UPDATE articles SET status='ready' WHERE library=? AND id=?",
                           [(library, i) for i in ids])
            self._bump(db)

    def stale_vectors(self) -> list[tuple[str, str, str]]:
        """(library, article id, hash to keep or '') of vector deletes still to do."""
        return self.db.execute("SELECT library, article_id, keep FROM stale_vectors "
                               "ORDER BY library, article_id").fetchall()

    def stale_done(self, library: str, article_id: str, keep: str) -> None:
        self.db.execute("DELETE FROM stale_vectors WHERE library=? AND article_id=? AND keep=?",
                        (library, article_id, keep))

    def put_sentence_vectors(self, library: str, article_id: str, vecs: np.ndarray) -> None:
        """Store (or restore) one article's sentence vectors."""
        with self.transaction() as db:
            db.execute("DELETE FROM sentence_vectors WHERE library=? AND article_id=?",
                       (library, article_id))
            db.executemany("INSERT INTO sentence_vectors VALUES (?,?,?,?)",
                           [(library, article_id, i, v.astype(np.float16).tobytes())
                            for i, v in enumerate(vecs)])

    def sentence_vectors(
        self, keys: Iterable[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], np.ndarray]:
        out = {}
        for key in keys:
            row = self.db.execute("SELECT vec FROM sentence_vectors WHERE library=? AND "
                                  "article_id=? AND idx=?", key).fetchone()
            if row:
                out[key] = np.frombuffer(row[0], dtype=np.float16).astype(np.float32)
        return out

    def vectors_of(self, library: str, article_id: str) -> np.ndarray | None:
        """All sentence vectors of one article, in sentence order (None if any is missing)."""
        rows = self.db.execute("SELECT vec FROM sentence_vectors WHERE library=? AND "
                               "article_id=? ORDER BY idx", (library, article_id)).fetchall()
        if not rows:
            return None
        return np.frombuffer(b"".join(r[0] for r in rows), dtype=np.float16).reshape(
            len(rows), -1).astype(np.float32)

    def ingested_since(self, since: str) -> list[tuple[str, str, str, str, str]]:
        """(library, id, hash, ingested_at, status) of articles written at or after ``since``
        (an ISO time; pending and staged ones too, so a caller can wait for them)."""
        return self.db.execute("SELECT library, id, hash, ingested_at, status FROM articles "
                               "WHERE ingested_at >= ? UNION ALL SELECT library, id, hash, "
                               "ingested_at, status FROM staged_articles WHERE ingested_at >= ? "
                               "ORDER BY 4, 1, 2", (since, since)).fetchall()

    def count_sentence_vectors(self, library: str | None = None,
                               article_id: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM sentence_vectors WHERE 1=1", []
        if library:
            sql, args = sql + " AND library=?", [*args, library]
        if article_id:
            sql, args = sql + " AND article_id=?", [*args, article_id]
        return self.db.execute(sql, args).fetchone()[0]

    def mark_removing(self, library: str, article_id: str) -> bool:
        with self.transaction() as db:
            cur = db.execute("UPDATE articles SET status='removing' WHERE library=? AND id=?",
                             (library, article_id))
            self._bump(db)
        return cur.rowcount > 0

    def delete(self, library: str, ids: Iterable[str]) -> None:
        with self.transaction() as db:
            for i in ids:
                self._delete_rows(db, library, [i])
                self._drop_staged(db, library, i)
            self._bump(db)

    @staticmethod
    def _delete_rows(db: sqlite3.Connection, library: str, ids: Iterable[str],
                     vectors: bool = True) -> None:
        tables = [("sentences", "article_id"), ("chunks", "article_id"), ("articles", "id")]
        if vectors:
            tables.insert(0, ("sentence_vectors", "article_id"))
        for i in ids:
            for table, col in tables:
                db.execute(f"DELETE FROM {table} WHERE library=? AND {col}=?", (library, i))

    def others_with_url(self, library: str, url: str, article_id: str) -> list[str]:
        """Ready articles other than ``article_id`` stored under ``url``."""
        if not url:
            return []
        return [r[0] for r in self.db.execute(
            "SELECT id FROM articles WHERE library=? AND url=? AND id!=? AND status='ready'",
            (library, url, article_id))]

    def version_of(self, library: str, article_id: str, staged: bool = False) -> str:
        """The hash an article (``staged``: its staged new version) is stored under."""
        prefix = "staged_" if staged else ""
        row = self.db.execute(f"SELECT hash FROM {prefix}articles WHERE library=? AND id=?",
                              (library, article_id)).fetchone()
        return row[0] if row else ""

    def origin_of(self, library: str, article_id: str) -> str:
        row = self.db.execute("SELECT origin FROM articles WHERE library=? AND id=?",
                              (library, article_id)).fetchone()
        return row[0] if row else ""

    def unfinished(self) -> list[tuple[str, str, str]]:
        """(library, id, status) of articles a crash left pending, staged (a new version of a
        ready article) or half-removed."""
        return self.db.execute(
            "SELECT library, id, status FROM articles WHERE status!='ready' UNION ALL "
            "SELECT library, id, 'staged' FROM staged_articles ORDER BY 1, 2"
        ).fetchall()

    # -- reading
    def load(self, library: str, article_id: str,
             staged: bool = False) -> tuple[Article, list[Sentence]] | None:
        """An article and its sentences (``staged``: its staged new version)."""
        prefix = "staged_" if staged else ""
        row = self.db.execute(
            "SELECT id, title, text, source, published, url, place, authors, origin, body_start "
            f"FROM {prefix}articles WHERE library=? AND id=?", (library, article_id)
        ).fetchone()
        if not row:
            return None
        a = Article(id=row[0], title=row[1], text=row[2], source=row[3],
                    published=dt.date.fromisoformat(row[4]) if row[4] else None, url=row[5],
                    place=row[6], authors=json.loads(row[7]), origin=row[8], body_start=row[9])
        sentences = [
            Sentence(article_id, i, s, e, a.text[s:e])
            for i, s, e in self.db.execute(
                f"SELECT idx, start, end FROM {prefix}sentences WHERE library=? AND "
                "article_id=? ORDER BY idx", (library, article_id))
        ]
        return a, sentences

    def chunks_of(self, library: str, article_id: str, staged: bool = False) -> list[Chunk]:
        prefix = "staged_" if staged else ""
        text = self.db.execute(f"SELECT text FROM {prefix}articles WHERE library=? AND id=?",
                               (library, article_id)).fetchone()[0]
        return [
            Chunk(article_id, i, s, e, f, la, text[s:e])
            for i, s, e, f, la in self.db.execute(
                f"SELECT idx, start, end, first, last FROM {prefix}chunks WHERE library=? AND "
                "article_id=? ORDER BY idx", (library, article_id))
        ]

    def find(self, article_id: str, libraries: list[str]) -> str | None:
        """The library (of those given, in order) that holds a ready article with this id."""
        for lib in libraries:
            st = self.state(lib, article_id)
            if st and st[1] == "ready":
                return lib
        return None

    def ready_hashes(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Hash of each (library, id) that is ready; what a search may show."""
        out = {}
        for lib, aid in set(keys):
            row = self.db.execute(
                "SELECT hash FROM articles WHERE library=? AND id=? AND status='ready'",
                (lib, aid)).fetchone()
            if row:
                out[(lib, aid)] = row[0]
        return out

    def articles(self, libraries: list[str] | None = None) -> list[StoredArticle]:
        sql = ("SELECT library, id, title, source, published, url, n_sentences, ingested_at "
               "FROM articles WHERE status='ready'")
        args: list[str] = []
        if libraries is not None:
            sql += f" AND library IN ({','.join('?' * len(libraries))})"
            args = list(libraries)
        sql += " ORDER BY published DESC, title"
        return [StoredArticle(*row) for row in self.db.execute(sql, args)]

    def sources(self, libraries: list[str]) -> list[tuple[str, int]]:
        marks = ",".join("?" * len(libraries))
        return self.db.execute(
            f"SELECT source, COUNT(*) FROM articles WHERE status='ready' AND source!='' "
            f"AND library IN ({marks}) GROUP BY source_key ORDER BY COUNT(*) DESC, source",
            libraries,
        ).fetchall()

    def counts(self, libraries: list[str] | None = None) -> dict[str, int]:
        """Ready articles, sentences and chunks. Cached per catalog generation: the query scans
        the articles table, text and all (~200 ms at 25k articles), and every answer asks."""
        key = (self.generation(), tuple(libraries) if libraries is not None else None)
        cached = self._counts.get(key)
        if cached is None:
            cached = self._counts[key] = self._count(libraries)
            if len(self._counts) > 64:
                self._counts.pop(next(iter(self._counts)))
        return dict(cached)

    def _count(self, libraries: list[str] | None) -> dict[str, int]:
        sql = "SELECT COUNT(*), COALESCE(SUM(n_sentences),0), COALESCE(SUM(n_chunks),0) " \
              "FROM articles WHERE status='ready'"
        args: list[str] = []
        if libraries is not None:
            sql += f" AND library IN ({','.join('?' * len(libraries))})"
            args = list(libraries)
        a, s, c = self.db.execute(sql, args).fetchone()
        return {"articles": a, "sentences": s, "chunks": c}

    def sentence_spans(
        self, keys: Iterable[tuple[str, str, int, int]]
    ) -> dict[tuple[str, str], list[tuple[int, int, int]]]:
        """(idx, start, end) of sentences first..last of each (library, article, first, last)."""
        out: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
        for lib, aid, first, last in keys:
            out.setdefault((lib, aid), []).extend(self.db.execute(
                "SELECT idx, start, end FROM sentences WHERE library=? AND article_id=? "
                "AND idx BETWEEN ? AND ? ORDER BY idx", (lib, aid, first, last)).fetchall())
        return out

    def iter_ready_articles(
        self,
    ) -> Iterator[tuple[str, str, str, str, list[tuple[int, int, int, bytes | None]]]]:
        """(library, article_id, source_key, published, [(chunk idx, start, end, term ids)])
        of every visible article. Term ids are int32 bytes, or None for chunks stored before
        they were kept. Texts are not read: at 100k articles they are gigabytes."""
        articles = self.db.execute(
            "SELECT library, id, source_key, published FROM articles "
            "WHERE status='ready' ORDER BY library, id")
        chunks = self.db.execute(
            "SELECT c.library, c.article_id, c.idx, c.start, c.end, c.terms FROM chunks c "
            "JOIN articles a ON a.library=c.library AND a.id=c.article_id "
            "WHERE a.status='ready' ORDER BY c.library, c.article_id, c.idx")
        pending = next(chunks, None)
        for lib, aid, skey, pub in articles:
            spans = []
            # Both cursors walk the same primary-key order, so this is a merge join.
            while pending is not None and (pending[0], pending[1]) <= (lib, aid):
                if (pending[0], pending[1]) == (lib, aid):
                    spans.append(pending[2:])
                pending = next(chunks, None)
            yield lib, aid, skey, pub, spans

    def iter_articles(self, keys: Iterable[tuple[str, str]]
                      ) -> Iterator[tuple[str, str, str, str, list[tuple[int, int, int,
                                                                          bytes | None]]]]:
        """``iter_ready_articles`` for the given (library, id) only (a few, read by key)."""
        for lib, aid in keys:
            row = self.db.execute("SELECT source_key, published FROM articles WHERE library=? "
                                  "AND id=? AND status='ready'", (lib, aid)).fetchone()
            if row:
                spans = self.db.execute("SELECT idx, start, end, terms FROM chunks WHERE "
                                        "library=? AND article_id=? ORDER BY idx",
                                        (lib, aid)).fetchall()
                yield lib, aid, row[0], row[1], spans

    def ready_hash_map(self) -> dict[tuple[str, str], str]:
        """(library, id) -> content hash of every visible article."""
        return {(lib, aid): h for lib, aid, h in self.db.execute(
            "SELECT library, id, hash FROM articles WHERE status='ready'")}

    def sentence_texts(self, keys: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str, int],
                                                                          str]:
        """The text of each (library, article id, sentence idx); only the sentence is read."""
        out = {}
        for lib, aid, idx in keys:
            row = self.db.execute(
                "SELECT substr(a.text, s.start + 1, s.end - s.start), s.start, s.end FROM "
                "sentences s JOIN articles a ON a.library=s.library AND a.id=s.article_id "
                "WHERE s.library=? AND s.article_id=? AND s.idx=?", (lib, aid, idx)).fetchone()
            if row:
                out[(lib, aid, idx)] = self._exact(lib, aid, *row)
        return out

    def _exact(self, library: str, article_id: str, text: str, start: int, end: int) -> str:
        """``text`` as SQL's substr read it, checked against Python's slice: substr stops at a
        NUL (none is stored since ingest cleans them, but a store written before may hold
        one), so a short read is redone from the whole text, and a quote is always exactly
        article.text[start:end]."""
        if len(text) == end - start:
            return text
        return self.text_of(library, article_id)[start:end]

    def text_of(self, library: str, article_id: str) -> str:
        row = self.db.execute("SELECT text FROM articles WHERE library=? AND id=?",
                              (library, article_id)).fetchone()
        return row[0] if row else ""

    def published(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Each (library, article id)'s published date ("" when undated)."""
        out = {}
        for lib, aid in set(keys):
            row = self.db.execute("SELECT published FROM articles WHERE library=? AND id=?",
                                  (lib, aid)).fetchone()
            if row:
                out[(lib, aid)] = row[0]
        return out

    def chunk_meta(self, keys: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str, int], tuple]:
        """Chunk offsets and article metadata for each (library, id, chunk idx)."""
        out = {}
        for lib, aid, idx in keys:
            row = self.db.execute(
                # substr counts characters, as Python slices do: only the chunk is read.
                "SELECT c.start, c.end, c.first, c.last, a.title, a.source, a.published, a.url, "
                "substr(a.text, c.start + 1, c.end - c.start), a.place FROM chunks c "
                "JOIN articles a ON a.library=c.library AND a.id=c.article_id "
                "WHERE c.library=? AND c.article_id=? AND c.idx=? AND a.status='ready'",
                (lib, aid, idx)).fetchone()
            if row:
                row = (*row[:8], self._exact(lib, aid, row[8], row[0], row[1]), row[9])
                out[(lib, aid, idx)] = row
        return out

    def chunks_by_library(self) -> dict[str, int]:
        """Chunks of the ready articles of each library (read from an index, no texts)."""
        return dict(self.db.execute(
            "SELECT library, SUM(n_chunks) FROM articles WHERE status='ready' GROUP BY library"))

    def ready_chunk_hashes(self, library: str) -> list[tuple[str, str, int]]:
        """(id, hash, chunks) of each ready article of a library."""
        return self.db.execute("SELECT id, hash, n_chunks FROM articles WHERE library=? "
                               "AND status='ready' ORDER BY id", (library,)).fetchall()

    def hashes(self, library: str) -> set[tuple[str, str]]:
        """(id, hash) of every article version of a library the store may hold vectors of:
        ready, pending and staged."""
        return set(self.db.execute(
            "SELECT id, hash FROM articles WHERE library=? UNION SELECT id, hash FROM "
            "staged_articles WHERE library=?", (library, library)))
