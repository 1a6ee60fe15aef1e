"""The threads /ask opens and the turns asked in them, in SQLite in the data dir, so that a
follow-up after a bot restart still has its context."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path

from retrieval.followup import Turn

SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    thread_id TEXT PRIMARY KEY, guild_id TEXT, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY, thread_id TEXT NOT NULL REFERENCES threads(thread_id),
    at TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_thread ON turns (thread_id, id);
"""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Conversations:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.executescript(SCHEMA)

    def is_thread(self, channel_id: int | None) -> bool:
        with self._lock:
            return channel_id is not None and self.db.execute(
                "SELECT 1 FROM threads WHERE thread_id = ?", (str(channel_id),)).fetchone() \
                is not None

    def start(self, thread_id: int, guild_id: int | None, first: Turn) -> None:
        with self._lock:
            self.db.execute("BEGIN")
            self.db.execute("INSERT OR IGNORE INTO threads VALUES (?, ?, ?)",
                            (str(thread_id), str(guild_id) if guild_id else None, _now()))
            self._add(thread_id, first)
            self.db.execute("COMMIT")

    def add(self, thread_id: int, turn: Turn) -> None:
        with self._lock:
            self._add(thread_id, turn)

    def _add(self, thread_id: int, turn: Turn) -> None:
        self.db.execute("INSERT INTO turns (thread_id, at, question, answer) VALUES (?, ?, ?, ?)",
                        (str(thread_id), _now(), turn.question, turn.answer))

    def history(self, thread_id: int, turns: int) -> list[Turn]:
        with self._lock:
            rows = self.db.execute(
                "SELECT question, answer FROM turns WHERE thread_id = ? ORDER BY id DESC "
                "LIMIT ?", (str(thread_id), turns)).fetchall()
        return [Turn(q, a) for q, a in reversed(rows)]

    def close(self) -> None:
        self.db.close()
