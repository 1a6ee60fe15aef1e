"""👍/👎 feedback on answers, in SQLite in the data dir; user ids stored only as keyed hashes,
the key in a file of its own (mode 0600), so the database alone can't map them back."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
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
"""


def _key(path: Path, legacy: str | None) -> bytes:
    """The hashing key from ``path``, made (mode 0600) on first use: from the key a store
    written before kept in its own database (so its hashes stay comparable), else new."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)  # the key is as secret as the ids it hides
        return path.read_text("ascii").strip().encode()
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(legacy or secrets.token_hex(32))
    return path.read_text("ascii").strip().encode()


class FeedbackStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.executescript(SCHEMA)
        legacy = None
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE name='secret'").fetchone():
            row = self.db.execute("SELECT salt FROM secret").fetchone()
            legacy = row[0] if row else None
        self._salt = _key(path.with_name(path.stem + ".key"), legacy)
        if legacy is not None:  # moved to the key file: the database no longer holds it
            self.db.execute("DROP TABLE secret")
            self.db.execute("VACUUM")

    def user_hash(self, user_id: int) -> str:
        # Keyed, with the key outside this database: a leaked feedback.sqlite3 can't be
        # matched against public Discord ids.
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
