"""RSS and Atom feeds: which feeds feed which library, and polling them. A poll asks with the
feed's ETag and Last-Modified (a 304 costs nothing), and ingests only items that are new or
changed; each item's page is fetched through the same guards as `ingest URL`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from retrieval.errors import BusyError, NewsbotError
from retrieval.fetch import FEED_TYPES, FetchError, fetch, validate_url
from retrieval.ingest import InputError, check_markup, finish, parse_date, url_id
from retrieval.libraries import check_library
from retrieval.models import Article, IngestFailure

if TYPE_CHECKING:
    from retrieval.service import Newsbot

SCHEMA = """
CREATE TABLE IF NOT EXISTS feeds (
    url TEXT NOT NULL, library TEXT NOT NULL, added TEXT NOT NULL,
    etag TEXT NOT NULL DEFAULT '', last_modified TEXT NOT NULL DEFAULT '',
    last_polled TEXT NOT NULL DEFAULT '', last_status TEXT NOT NULL DEFAULT 'never polled',
    added_by TEXT NOT NULL DEFAULT 'operator',
    PRIMARY KEY (url, library)
);
CREATE TABLE IF NOT EXISTS items (
    feed_url TEXT NOT NULL, library TEXT NOT NULL, item TEXT NOT NULL, hash TEXT NOT NULL,
    article_id TEXT NOT NULL, seen TEXT NOT NULL, PRIMARY KEY (feed_url, library, item)
);
"""
log = logging.getLogger("newsbot.feeds")
# An item's own text stands in for its page only when it is at least this long.
MIN_ITEM_TEXT = 200
# Libraries (servers) polled at once: one server's slow feeds hold one of these, never all.
POLL_WORKERS = 4
# A poll starts no item fetch once this many fetch timeouts have passed since it began; the
# items left are fetched by the next poll.
POLL_BUDGET_FETCHES = 3
ITEM_HINT = ("a feed's item links are always held to public addresses (the operator's "
             "NEWSBOT_ALLOW_PRIVATE_URLS covers only the feed's own URL)")


@dataclass(slots=True)
class Feed:
    url: str
    library: str
    added: str
    etag: str = ""
    last_modified: str = ""
    last_polled: str = ""
    last_status: str = "never polled"
    added_by: str = "operator"  # or "discord": such a feed never reaches a private address


@dataclass(slots=True)
class PollReport:
    feed: str
    library: str
    status: str  # "not modified", "ok", "busy" or "error: ..."
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    left: int = 0  # new or changed items left for the next poll (the per-poll cap or budget)
    failed: list[IngestFailure] = field(default_factory=list)

    def summary(self) -> str:
        line = (f"{self.feed} -> {self.library}: {self.status}; {self.new} new, "
                f"{self.changed} changed, {self.unchanged} unchanged, {len(self.failed)} failed")
        if self.left:
            line += f", {self.left} left for the next poll"
        return "\n".join([line, *(f"  failed: {f.where}: {f.reason}" for f in self.failed)])


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class FeedStore:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.executescript(SCHEMA)

    def add(self, url: str, library: str, added_by: str = "operator",
            limit: int | None = None) -> bool:
        """False when the library already follows the feed; at most ``limit`` feeds per
        library (a server's library is its own)."""
        try:
            validate_url(url)
        except FetchError as e:
            raise NewsbotError(f"not a feed address: {e}") from None
        library = check_library(library)
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                known = self.db.execute("SELECT url FROM feeds WHERE library=?",
                                        (library,)).fetchall()
                if (url,) in known:
                    return False
                if limit is not None and len(known) >= limit:
                    raise NewsbotError(f"this library already follows {len(known)} feeds; "
                                       f"the limit is {limit} (NEWSBOT_FEED_MAX_PER_SERVER)")
                self.db.execute("INSERT INTO feeds (url, library, added, added_by) "
                                "VALUES (?, ?, ?, ?)", (url, library, _now(), added_by))
                return True
            finally:
                self.db.execute("COMMIT")

    def remove(self, url: str, library: str) -> bool:
        with self._lock:
            self.db.execute("BEGIN")
            cur = self.db.execute("DELETE FROM feeds WHERE url=? AND library=?", (url, library))
            self.db.execute("DELETE FROM items WHERE feed_url=? AND library=?", (url, library))
            self.db.execute("COMMIT")
            return cur.rowcount == 1

    def list(self, libraries: list[str] | None = None) -> list[Feed]:
        with self._lock:
            rows = self.db.execute("SELECT url, library, added, etag, last_modified, "
                                   "last_polled, last_status, added_by FROM feeds "
                                   "ORDER BY library, url").fetchall()
        return [Feed(*r) for r in rows if libraries is None or r[1] in libraries]

    def seen(self, feed: Feed) -> dict[str, str]:
        with self._lock:
            return dict(self.db.execute("SELECT item, hash FROM items WHERE feed_url=? AND "
                                        "library=?", (feed.url, feed.library)).fetchall())

    def record(self, feed: Feed, status: str, etag: str | None, last_modified: str | None,
               items: list[tuple[str, str, str]]) -> None:
        """One transaction: the feed's new validators and the items now ingested, so a crash
        leaves either the old state (the items are polled again) or the new one."""
        with self._lock:
            self.db.execute("BEGIN")
            self.db.execute(
                "UPDATE feeds SET last_polled=?, last_status=?, etag=COALESCE(?, etag), "
                "last_modified=COALESCE(?, last_modified) WHERE url=? AND library=?",
                (_now(), status, etag, last_modified, feed.url, feed.library))
            self.db.executemany(
                "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?)",
                [(feed.url, feed.library, item, h, aid, _now()) for item, h, aid in items])
            self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()


def _entry_hash(entry) -> str:
    """What makes an item "changed"; plain dict access (see _entry_article)."""
    payload = json.dumps([entry.get("title", ""), entry.get("link", ""),
                          entry.get("summary", ""), dict.get(entry, "updated", ""),
                          [c.get("value", "") for c in entry.get("content", [])]],
                         ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _entry_article(entry, feed_title: str, feed_url: str) -> Article:
    """The item's own text, when its page can't be had. Its origin is the feed (the host that
    really sent the text), so it can never replace an article from the host it links to."""
    import trafilatura

    html = (entry.get("content") or [{}])[0].get("value") or entry.get("summary", "")
    if "<" in html:
        check_markup(html)
    text = (trafilatura.extract(f"<html><body>{html}</body></html>") or "").strip() \
        if "<" in html else html.strip()
    if len(text) < MIN_ITEM_TEXT:
        raise InputError("the page could not be fetched and the item's own text is too short")
    # dict.get: feedparser's own get maps a missing "updated" to "published", with a warning.
    when = dict.get(entry, "published") or dict.get(entry, "updated")
    return finish(article_id=url_id(entry["link"]), text=text, title=entry.get("title", ""),
                  source=feed_title, published=parse_date(when), url=entry["link"],
                  authors=[entry["author"]] if isinstance(entry.get("author"), str) else [],
                  origin=f"{feed_url}#{entry['link']}")


def poll(nb: Newsbot, store: FeedStore, feed: Feed) -> PollReport:
    import feedparser

    s = nb.settings
    allow = s.allow_private_urls and feed.added_by == "operator"
    report = PollReport(feed.url, feed.library, "ok")
    try:
        got = fetch(feed.url, allow_private=allow, timeout_s=s.fetch_timeout_s,
                    max_bytes=s.fetch_max_bytes, max_redirects=s.fetch_max_redirects,
                    accept=FEED_TYPES, etag=feed.etag, last_modified=feed.last_modified)
    except FetchError as e:
        report.status = f"error: {e}"
        store.record(feed, report.status, None, None, [])
        return report
    if got.status == 304:
        report.status = "not modified"
        store.record(feed, report.status, None, None, [])
        return report
    parsed = feedparser.parse(got.body)
    if parsed.bozo and not parsed.entries:
        report.status = "error: not a readable RSS or Atom feed"
        store.record(feed, report.status, None, None, [])
        return report
    seen = store.seen(feed)
    title = parsed.feed.get("title", "")
    todo: list[tuple[str, str, Article | IngestFailure]] = []
    budget = time.monotonic() + POLL_BUDGET_FETCHES * s.fetch_timeout_s
    complete = True  # False: items left for the next poll, which must then see them all
    for entry in parsed.entries:
        link = entry.get("link")
        if not link or not isinstance(link, str):
            continue
        key = entry.get("id") or link
        h = _entry_hash(entry)
        if seen.get(key) == h:
            report.unchanged += 1
            continue
        if len(todo) >= s.feed_max_items or time.monotonic() > budget:
            complete = False
            report.left += 1
            continue
        if key in seen:
            report.changed += 1
        else:
            report.new += 1
        todo.append((key, h, _item(nb, entry, link, title, got.url)))
    if todo:  # every item unchanged: no need to take the store's write lock
        try:
            report.failed = nb.ingest_articles([a for _, _, a in todo], feed.library).failed
        except BusyError:
            report.status = "busy"
            return report  # validators not saved: the next poll asks again
    # A failed item is recorded too (with no article): it is tried again when it changes,
    # and a feed of failing items can't take every poll's share of fetches forever.
    failed = {f.where for f in report.failed}
    done = [(key, h, a.id if isinstance(a, Article) and (a.origin or a.id) not in failed
             else "") for key, h, a in todo]
    if complete:
        store.record(feed, report.status, got.headers.get("etag", ""),
                     got.headers.get("last-modified", ""), done)
    else:  # validators cleared: the next poll gets the feed in full, with the items left
        store.record(feed, report.status, "", "", done)
    return report


def _item(nb: Newsbot, entry, link: str, title: str, feed_url: str
          ) -> Article | IngestFailure:
    """One item's article (its page, else its own text) or its failure: nothing about one
    item fails its feed. Its page is always held to public addresses, whatever the feed's."""
    try:
        validate_url(link)
    except FetchError as e:
        return IngestFailure(link[:300], str(e))
    try:
        item = nb.fetch_article(link, False, private_hint=ITEM_HINT)
        if isinstance(item, IngestFailure):
            try:
                item = _entry_article(entry, title, feed_url)
            except InputError as e:
                item = IngestFailure(link, f"{item.reason}; {e}")
        if isinstance(item, Article) and not item.source:
            item.source = title
        return item
    except Exception as e:  # a bug or an odd item must cost that item only
        log.exception("feed item %s failed", link[:300])
        return IngestFailure(link[:300], f"{type(e).__name__}: {str(e)[:200]}")


def poll_all(nb: Newsbot, store: FeedStore, libraries: list[str] | None = None
             ) -> list[PollReport]:
    """Each feed polled on its own: one feed's failure is recorded on that feed, and the
    others go on. Libraries are polled side by side (each one's feeds in turn), so one
    server's slow feeds delay that server's feeds only."""
    feeds = store.list(libraries)
    by_library: dict[str, list[Feed]] = {}
    for f in feeds:
        by_library.setdefault(f.library, []).append(f)
    if len(by_library) <= 1:
        reports = {id(f): _poll_one(nb, store, f) for f in feeds}
    else:
        with ThreadPoolExecutor(min(POLL_WORKERS, len(by_library)),
                                thread_name_prefix="newsbot-poll") as pool:
            done = pool.map(lambda group: [(id(f), _poll_one(nb, store, f)) for f in group],
                            by_library.values())
            reports = {k: r for group in done for k, r in group}
    return [reports[id(f)] for f in feeds]


def _poll_one(nb: Newsbot, store: FeedStore, f: Feed) -> PollReport:
    try:
        return poll(nb, store, f)
    except Exception as e:  # a bug or a malformed feed must not stop every other feed
        log.exception("polling %s failed", f.url)
        status = f"error: {type(e).__name__}: {str(e)[:200]}"
        try:
            store.record(f, status, None, None, [])
        except Exception:
            log.exception("cannot record the state of %s", f.url)
        return PollReport(f.url, f.library, status)
