"""A durable local spool for messages the broker could not take.

SQLite in WAL mode with ``synchronous=FULL``: every write is fsync'd before it
returns, several API worker processes share one file safely, and a claim column
lets exactly one worker re-send a row at a time. Bounded: past ``max_messages``
``add`` refuses, so the API answers 503 instead of filling the disk.

A row leaves the spool only after the broker acknowledged its re-send; a re-send
that fails is released for a later try. A message may therefore reach Kafka twice
(acked but the delete lost to a crash), which downstream dedup by ``scan_id`` absorbs.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from quacknet.errors import Saturated

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    reason TEXT NOT NULL,
    spooled_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT,
    claimed_at REAL
)
"""


class SpoolFull(Saturated):
    """The spool holds its maximum; the caller must refuse new work (503)."""


@dataclass(frozen=True)
class Spooled:
    id: int
    topic: str
    key: bytes | None
    value: bytes


class Spool:
    def __init__(self, path: Path, max_messages: int, claim_timeout_s: float = 120.0):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_messages = max_messages
        self.claim_timeout_s = claim_timeout_s
        self._owner = f"{os.getpid()}-{id(self)}"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(SCHEMA)

    def add(self, messages: Iterable[tuple[str, bytes | None, bytes]], reason: str) -> int:
        """Store messages durably (one transaction, one fsync); returns how many."""
        rows = [(topic, key, value, reason, time.time()) for topic, key, value in messages]
        if not rows:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (count,) = self._db.execute("SELECT count(*) FROM spool").fetchone()
                if count + len(rows) > self.max_messages:
                    raise SpoolFull(f"spool holds {count} of {self.max_messages} messages")
                self._db.executemany("INSERT INTO spool (topic, key, value, reason, spooled_at) VALUES (?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(rows)

    def claim(self, limit: int) -> list[Spooled]:
        """Take up to ``limit`` unclaimed rows (or rows whose claimer went silent) for a re-send."""
        now = time.time()
        with self._lock:
            rows = self._db.execute(
                "UPDATE spool SET claimed_by = ?, claimed_at = ?, attempts = attempts + 1 WHERE id IN ("
                " SELECT id FROM spool WHERE claimed_by IS NULL OR claimed_at < ? ORDER BY id LIMIT ?)"
                " RETURNING id, topic, key, value",
                (self._owner, now, now - self.claim_timeout_s, limit),
            ).fetchall()
        return sorted((Spooled(*row) for row in rows), key=lambda s: s.id)

    def done(self, ids: Iterable[int]) -> None:
        """The broker acknowledged these re-sends."""
        self._many("DELETE FROM spool WHERE id = ?", ids)

    def release(self, ids: Iterable[int]) -> None:
        """These re-sends failed; another try later."""
        self._many("UPDATE spool SET claimed_by = NULL, claimed_at = NULL WHERE id = ?", ids)

    def _many(self, sql: str, ids: Iterable[int]) -> None:
        params = [(i,) for i in ids]
        if params:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(sql, params)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

    def depth(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM spool").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
