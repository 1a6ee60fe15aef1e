"""Standing questions: asked once, answered when an article that answers them arrives.

Whoever stores articles (the bot's /ingest and feed polls, `newsbot ingest` in another process,
`newsbot watch`), the catalog records when each one was written. A *scan* takes the articles
stored since the last one, and checks every standing question against **those articles only**:
the new sentences' stored vectors, and BM25 over the new chunks alone, rank a few passages per
question, and the hand-set scorer ranks their sentences exactly as `ask` does. A question is
answered when its best sentence reaches ``follow_min_score`` (stricter than abstention: nobody
asked at that moment), its answer differs from the last one posted for it, and it has not posted
within ``follow_every_s``. Full retrieval never runs per question.

Questions, what was posted, and how far each consumer ("discord" for the bot, "cli" for
`newsbot watch`) has scanned live in ``follows.sqlite3`` in the data dir.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.catalog import immediate
from retrieval.errors import NewsbotError
from retrieval.models import Follow, FollowHit, Passage

if TYPE_CHECKING:
    from retrieval.service import Newsbot

SCHEMA = """
CREATE TABLE IF NOT EXISTS follows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL, channel TEXT NOT NULL, libraries TEXT NOT NULL,
    question TEXT NOT NULL, qvec BLOB NOT NULL, added_by TEXT NOT NULL, added TEXT NOT NULL,
    paused TEXT NOT NULL DEFAULT '', last_answer TEXT NOT NULL DEFAULT '',
    last_posted TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS follows_scope ON follows (scope);
CREATE TABLE IF NOT EXISTS posts (
    follow_id INTEGER NOT NULL, at TEXT NOT NULL, library TEXT NOT NULL,
    article_id TEXT NOT NULL, sentence INTEGER NOT NULL, answer TEXT NOT NULL
);
-- How far each consumer has scanned the catalog, and what it has checked at that edge (times
-- are to the second, so articles stored in the watermark's second are told apart by these).
CREATE TABLE IF NOT EXISTS scans (consumer TEXT PRIMARY KEY, watermark TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scanned (
    consumer TEXT NOT NULL, library TEXT NOT NULL, article_id TEXT NOT NULL,
    hash TEXT NOT NULL, ingested_at TEXT NOT NULL,
    PRIMARY KEY (consumer, library, article_id, hash)
);
"""
CLI = "cli"  # the scope of `newsbot follow`'s questions
RRF_K = 60  # as in hybrid search: fuse the dense and BM25 rankings of the new passages
# A question none of whose terms is in any new chunk needs a sentence at least this close to
# be worth scoring (relevance = 0.55 dense + 0.45 overlap + small bonuses).
DENSE_ONLY_FLOOR = 0.75
SCAN_BATCH = 200  # new articles matched at once

NewArticle = tuple[str, str, str, str]  # library, id, hash, ingested_at


def consumer_of(scope: str) -> str:
    return CLI if scope == CLI else "discord"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _row(r: tuple) -> Follow:
    fid, scope, channel, libs, question, added_by, added, paused, last_answer, last_posted = r
    return Follow(fid, scope, channel, libs.split(","), question, added_by, added, paused,
                  last_answer, last_posted)


_COLUMNS = ("id, scope, channel, libraries, question, added_by, added, paused, last_answer, "
            "last_posted")


class FollowStore:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        try:
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                      timeout=30)
            self.db.executescript(SCHEMA)
        except sqlite3.Error as e:
            raise NewsbotError(f"cannot open the standing questions in {path}: {e}") from None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate(self.db) as db:
            yield db

    def add(self, question: str, qvec: np.ndarray, libraries: list[str], scope: str,
            channel: str, added_by: str, limit: int) -> tuple[Follow, bool]:
        """The follow, and True when it is new; a paused copy of the same question in the same
        channel is resumed instead (False). Refused past ``limit`` questions per scope."""
        with self._tx() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM follows WHERE scope=? AND channel=? AND "
                             "question=?", (scope, channel, question)).fetchone()
            if row:
                if not row[7]:
                    raise NewsbotError(f"That question is already followed here (#{row[0]}).")
                db.execute("UPDATE follows SET paused='' WHERE id=?", (row[0],))
                return _row((*row[:7], "", *row[8:])), False
            (count,) = db.execute("SELECT COUNT(*) FROM follows WHERE scope=?",
                                  (scope,)).fetchone()
            if count >= limit:
                where = "The command line" if scope == CLI else "This server"
                raise NewsbotError(f"{where} already follows {count} questions, the most "
                                   f"allowed ({limit}); remove one first.")
            added = now_iso()
            cur = db.execute(
                "INSERT INTO follows (scope, channel, libraries, question, qvec, added_by, "
                "added) VALUES (?,?,?,?,?,?,?)",
                (scope, channel, ",".join(libraries), question,
                 np.asarray(qvec, dtype=np.float32).tobytes(), added_by, added))
            # A consumer's scanning starts with its first question: older articles never count.
            db.execute("INSERT OR IGNORE INTO scans VALUES (?, ?)", (consumer_of(scope), added))
            return Follow(int(cur.lastrowid), scope, channel, libraries, question, added_by,
                          added), True

    def list(self, scope: str | None = None, consumer: str | None = None) -> list[Follow]:
        with self._lock:
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM follows ORDER BY id").fetchall()
        out = [_row(r) for r in rows]
        return [f for f in out if (scope is None or f.scope == scope)
                and (consumer is None or consumer_of(f.scope) == consumer)]

    def remove(self, follow_id: int, scope: str) -> bool:
        with self._tx() as db:
            cur = db.execute("DELETE FROM follows WHERE id=? AND scope=?", (follow_id, scope))
            if cur.rowcount != 1:
                return False
            db.execute("DELETE FROM posts WHERE follow_id=?", (follow_id,))
            return True

    def pause(self, follow_id: int, reason: str) -> bool:
        """True when it was active: whoever pauses it tells its owner, once."""
        with self._tx() as db:
            cur = db.execute("UPDATE follows SET paused=? WHERE id=? AND paused=''",
                             (reason, follow_id))
            return cur.rowcount == 1

    def vectors(self, ids: list[int]) -> np.ndarray:
        with self._lock:
            got = dict(self.db.execute(
                f"SELECT id, qvec FROM follows WHERE id IN ({','.join('?' * len(ids))})", ids))
        return np.stack([np.frombuffer(got[i], dtype=np.float32) for i in ids])

    def record_post(self, hit: FollowHit, at: str | None = None) -> None:
        at = at or now_iso()
        c = hit.citation
        with self._tx() as db:
            db.execute("UPDATE follows SET last_answer=?, last_posted=? WHERE id=?",
                       (hit.answer, at, hit.follow.id))
            db.execute("INSERT INTO posts VALUES (?,?,?,?,?,?)",
                       (hit.follow.id, at, c.library, c.article_id, c.sentence_index,
                        hit.answer))
        hit.follow.last_answer, hit.follow.last_posted = hit.answer, at

    def posts(self, follow_id: int) -> list[tuple[str, str, str]]:
        """(at, article id, answer) of what a question posted, oldest first."""
        with self._lock:
            return self.db.execute("SELECT at, article_id, answer FROM posts WHERE follow_id=? "
                                   "ORDER BY at", (follow_id,)).fetchall()

    # -- scanning the catalog for what arrived
    def new_articles(self, nb: Newsbot, consumer: str) -> tuple[list[NewArticle], str]:
        """Ready articles stored since the consumer's last scan and not yet checked by it, and
        the watermark to save once they are: an article still pending holds it back, so one
        that becomes ready later is still found."""
        with self._lock:
            row = self.db.execute("SELECT watermark FROM scans WHERE consumer=?",
                                  (consumer,)).fetchone()
            if row is None:
                return [], ""
            done = set(self.db.execute("SELECT library, article_id, hash FROM scanned "
                                       "WHERE consumer=?", (consumer,)))
        started = now_iso()
        rows = nb.catalog.ingested_since(row[0])
        pending = [r[3] for r in rows if r[4] == "pending"]
        fresh = [(lib, aid, h, at) for lib, aid, h, at, status in rows
                 if status == "ready" and (lib, aid, h) not in done]
        return fresh, min([started, *pending])

    def mark_scanned(self, consumer: str, articles: list[NewArticle], watermark: str) -> None:
        if not watermark:
            return
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO scanned VALUES (?,?,?,?,?)",
                           [(consumer, lib, aid, h, at) for lib, aid, h, at in articles])
            db.execute("UPDATE scans SET watermark=? WHERE consumer=?", (watermark, consumer))
            db.execute("DELETE FROM scanned WHERE consumer=? AND ingested_at < ?",
                       (consumer, watermark))

    def close(self) -> None:
        self.db.close()


def add_follow(nb: Newsbot, store: FollowStore, question: str, libraries: list[str],
               scope: str, channel: str = "", added_by: str = "operator"
               ) -> tuple[Follow, bool]:
    """Follow a question (the CLI's and the bot's one way in); see ``FollowStore.add``."""
    q = nb.check_question(question)
    return store.add(q, nb.embedder.embed_query(q), libraries, scope, channel, added_by,
                     nb.settings.follow_max_per_server)


def _recent(last: str, every_s: float, now: dt.datetime) -> bool:
    return bool(last) and (now - dt.datetime.fromisoformat(last)).total_seconds() < every_s


def check_follows(nb: Newsbot, store: FollowStore, consumer: str) -> list[FollowHit]:
    """One scan: the consumer's standing questions checked against the articles stored since
    its last scan. The caller posts the hits and records each with ``store.record_post``."""
    articles, watermark = store.new_articles(nb, consumer)
    follows = store.list(consumer=consumer)
    best: dict[int, FollowHit] = {}
    # A batch at a time, so that a bulk load (an archive) never holds every new sentence in
    # memory at once; each question keeps its best answer of them all.
    for at in range(0, len(articles) if follows else 0, SCAN_BATCH):
        for hit in match(nb, store, follows, articles[at: at + SCAN_BATCH]):
            if hit.follow.id not in best or hit.score > best[hit.follow.id].score:
                best[hit.follow.id] = hit
    store.mark_scanned(consumer, articles, watermark)
    return sorted(best.values(), key=lambda h: h.follow.id)


class _NewText:
    """The new articles' chunks as passages, their sentences and stored vectors, and BM25 over
    those chunks alone."""

    def __init__(self, nb: Newsbot, articles: list[NewArticle]) -> None:
        from retrieval.cite import Candidate
        from retrieval.lexical import memory_index
        from retrieval.tokens import tokens

        cat = nb.catalog
        self.passages: list[Passage] = []
        ingested: list[str] = []  # per passage: when its article was stored
        self.sentences: list[list[Candidate]] = []  # per passage, its sentences
        self.rows: list[slice] = []  # per passage, its sentences' rows of ``vecs``
        vec_parts, self.vec_of = [], {}
        for lib, aid, _h, at in articles:
            loaded, vecs = cat.load(lib, aid), cat.vectors_of(lib, aid)
            if not loaded or vecs is None or len(vecs) != len(loaded[1]):
                continue  # removed or replaced since the scan listed it
            article, sents = loaded
            base = sum(len(v) for v in vec_parts)
            vec_parts.append(vecs)
            for s, v in zip(sents, vecs, strict=True):
                self.vec_of[(lib, aid, s.index)] = v
            for ch in cat.chunks_of(lib, aid):
                p = Passage(aid, lib, ch.index, ch.start, ch.end, ch.first_sentence,
                            ch.last_sentence, ch.text, article.title, article.source,
                            article.published_iso, article.url, 0.0, article.place)
                self.passages.append(p)
                ingested.append(at)
                self.rows.append(slice(base + ch.first_sentence, base + ch.last_sentence + 1))
                self.sentences.append([
                    Candidate(lib, aid, s.index, s.start, s.end, s.text, p, 0)
                    for s in sents[ch.first_sentence: ch.last_sentence + 1]])
        self.vecs = np.concatenate(vec_parts) if vec_parts else np.zeros((0, 0), np.float32)
        self.bm25 = memory_index([tokens(p.text) for p in self.passages])
        self.libraries = np.array([p.library for p in self.passages], dtype=object)
        self.ingested = np.array(ingested, dtype=object)


def match(nb: Newsbot, store: FollowStore, follows: list[Follow],
          articles: list[NewArticle]) -> list[FollowHit]:
    """The best new sentence for each due standing question, where it is good enough."""
    from retrieval.cite import (
        DENSE_WEIGHT,
        LEXICAL_WEIGHT,
        PASSAGE_PRIOR,
        TYPE_BONUS,
        _strong,
        _weights,
        answer_type,
        overlap_bound,
        quote_key,
        score_candidates,
        to_citation,
    )
    from retrieval.lexical import top_k
    from retrieval.tokens import tokens

    s = nb.settings
    now = dt.datetime.now(dt.UTC)
    due = [f for f in follows if not f.paused and not _recent(f.last_posted, s.follow_every_s,
                                                                 now)]
    if not due or not articles:
        return []
    new = _NewText(nb, articles)
    if not new.passages:
        return []
    qvecs = store.vectors([f.id for f in due])
    sims = qvecs @ new.vecs.T  # every question against every new sentence, at once
    # Per passage, its best sentence's similarity to each question.
    dense = np.stack([sims[:, r].max(axis=1) for r in new.rows], axis=1)
    today = dt.date.today()
    hits = []
    for i, f in enumerate(due):
        allowed = np.isin(new.libraries, f.libraries) & (new.ingested >= f.added)
        if not allowed.any():
            continue
        lexical = top_k(new.bm25, tokens(f.question), s.top_k * 2, [allowed])
        d = np.where(allowed, dense[i], -np.inf)
        if not lexical and d.max() < DENSE_ONLY_FLOOR:
            continue
        fused: dict[int, float] = {}
        for rank, c in enumerate(np.argsort(-d, kind="stable")[: s.top_k * 2]):
            if allowed[c]:
                fused[int(c)] = 1 / (RRF_K + rank + 1)
        for rank, (c, _) in enumerate(lexical[: s.top_k * 2]):
            fused[c] = fused.get(c, 0.0) + 1 / (RRF_K + rank + 1)
        top = sorted(fused, key=lambda c: (-fused[c], c))[: s.top_k]
        cands, seen = [], set()
        weights = _weights(f.question, _strong(f.question))
        most = s.follow_min_score - PASSAGE_PRIOR - TYPE_BONUS.get(answer_type(f.question), 0)
        for rank, c in enumerate(top):
            # No sentence of this passage can reach the bar, even with every question term the
            # passage holds: skip it (most passages, for most questions, on most days).
            p = new.passages[c]
            overlap = overlap_bound(weights, p.title, p.text, p.published)
            if DENSE_WEIGHT * dense[i, c] + LEXICAL_WEIGHT * overlap < most:
                continue
            for cand in new.sentences[c]:
                key = (cand.library, cand.article_id, cand.index)
                if key not in seen:
                    seen.add(key)
                    # A fresh copy: scoring writes into it, at this question's passage rank.
                    cands.append(dataclasses.replace(cand, passage_rank=rank))
        if not cands:
            continue
        ranked = score_candidates(f.question, qvecs[i], cands, nb.catalog, None, today,
                                  vecs={k: new.vec_of[k] for k in seen}, passages=len(top))
        best = ranked[0]
        answer = quote_key(best.quote)
        if best.relevance < s.follow_min_score or answer == f.last_answer:
            continue
        hits.append(FollowHit(f, to_citation(best, 1), answer,
                              str(new.ingested[top[best.passage_rank]]),
                              round(best.relevance, 4)))
    return hits
