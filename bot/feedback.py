"""👍/👎 feedback on answers, in SQLite in the data dir; user ids stored only as keyed hashes."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any

from retrieval.models import Answer

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
    user_hash TEXT NOT NULL, guild_id TEXT, question TEXT NOT NULL, answer TEXT NOT NULL,
    abstained INTEGER NOT NULL, citations TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS secret (k INTEGER PRIMARY KEY CHECK (k = 1), salt TEXT NOT NULL);
"""


class FeedbackStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.executescript(SCHEMA)
        self.db.execute("INSERT OR IGNORE INTO secret VALUES (1, ?)", (secrets.token_hex(16),))
        self._salt = self.db.execute("SELECT salt FROM secret").fetchone()[0].encode()

    def user_hash(self, user_id: int) -> str:
        # Keyed, so a leaked file can't be matched against public Discord ids.
        return hmac.new(self._salt, str(user_id).encode(), hashlib.sha256).hexdigest()[:24]

    def record(self, answer: Answer, vote: int, user_id: int, guild_id: int | None) -> None:
        citations = [{"n": c.n, "quote": c.quote, "article_id": c.article_id, "title": c.title,
                      "source": c.source, "published": c.published, "url": c.url}
                     for c in answer.citations]
        with self._lock:
            self.db.execute(
                "INSERT INTO feedback (at, vote, user_hash, guild_id, question, answer, "
                "abstained, citations) VALUES (?,?,?,?,?,?,?,?)",
                (dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), vote,
                 self.user_hash(user_id), str(guild_id) if guild_id else None, answer.question,
                 answer.answer, int(answer.abstained), json.dumps(citations, ensure_ascii=False)))

    def export(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT at, vote, user_hash, guild_id, question, answer, abstained, citations "
            "FROM feedback ORDER BY id").fetchall()
        return [{"at": at, "vote": "up" if vote > 0 else "down", "user_hash": uh,
                 "guild_id": g, "question": q, "answer": a, "abstained": bool(ab),
                 "citations": json.loads(c)} for at, vote, uh, g, q, a, ab, c in rows]

    def close(self) -> None:
        self.db.close()
