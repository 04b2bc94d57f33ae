"""A durable local spool for card-log entries the database could not take.

One SQLite file (``card-log-spool.sqlite``) in the spool directory, shared by every worker of
the host: SQLite's own locking makes appends from several processes safe, and ids give one
global order. Every append is a committed transaction with ``synchronous=FULL`` (the write-ahead
log is fsync'd before the append returns), so an entry the service has answered for survives a
crash or a restart. The spool is bounded by entry count (when full, the oldest entries are kept
and new ones are counted as dropped) and by age (entries older than the limit are dropped when
the spool is next drained); both are counted in the file, so the count survives restarts.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
SPOOL_FILE = "card-log-spool.sqlite"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entry ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, spooled_at REAL NOT NULL, payload TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS card (uuid TEXT PRIMARY KEY, entry_id INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS card_entry ON card (entry_id)",
    "CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)


@dataclass(frozen=True)
class SpoolStatus:
    depth: int
    oldest_age_s: float | None
    dropped: int  # since the spool file was created: full + expired


@dataclass(frozen=True)
class SpooledEntry:
    id: int
    payload: dict[str, Any]


class SpoolFull(Exception):
    """The spool holds its maximum number of entries: the new one was dropped (and counted)."""


class Spool:
    """Entries in arrival order. Thread-safe, and safe across forked worker processes: each
    process opens its own connection (a SQLite connection must never be used across a fork)."""

    def __init__(
        self,
        directory: Path,
        *,
        max_entries: int,
        max_age_s: float,
        busy_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = directory / SPOOL_FILE
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self._busy_timeout_s = busy_timeout_s
        self._clock = clock
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=partial(_forget_after_fork, weakref.ref(self)))
        directory.mkdir(parents=True, exist_ok=True)
        with self._transaction() as connection:
            for statement in _SCHEMA:
                connection.execute(statement)
        # Created at start-up, possibly in a pre-forking master: no connection may be inherited.
        connection.close()
        self._connection = None

    # -- writing

    def append(self, payload: dict[str, Any], card_uuids: Iterable[str]) -> None:
        """Store one entry durably, or raise SpoolFull (the entry is counted as dropped)."""
        with self._transaction() as connection:
            depth = connection.execute("SELECT COUNT(*) FROM entry").fetchone()[0]
            full = depth >= self.max_entries
            if full:  # counted in this transaction, raised after it commits
                _add_dropped(connection, "full", 1)
            else:
                self._insert(connection, payload, card_uuids)
        if full:
            raise SpoolFull(f"card-log spool full ({depth} entries)")

    def _insert(
        self, connection: sqlite3.Connection, payload: dict[str, Any], card_uuids: Iterable[str]
    ) -> None:
        cursor = connection.execute(
            "INSERT INTO entry (spooled_at, payload) VALUES (?, ?)",
            (self._clock(), json.dumps(payload, separators=(",", ":"))),
        )
        connection.executemany(
            "INSERT OR IGNORE INTO card (uuid, entry_id) VALUES (?, ?)",
            [(uuid, cursor.lastrowid) for uuid in card_uuids],
        )

    def remove(self, ids: Iterable[int]) -> None:
        keys = [(i,) for i in ids]
        with self._transaction() as connection:
            connection.executemany("DELETE FROM card WHERE entry_id = ?", keys)
            connection.executemany("DELETE FROM entry WHERE id = ?", keys)

    def expire(self) -> int:
        """Drop entries older than the age limit (counted as dropped); how many were dropped."""
        cutoff = self._clock() - self.max_age_s
        with self._transaction() as connection:
            old = "SELECT id FROM entry WHERE spooled_at < ?"
            connection.execute(f"DELETE FROM card WHERE entry_id IN ({old})", (cutoff,))  # noqa: S608
            expired = connection.execute("DELETE FROM entry WHERE spooled_at < ?", (cutoff,))
            count = expired.rowcount
            if count:
                _add_dropped(connection, "expired", count)
        return count

    # -- reading

    def head(self, limit: int) -> list[SpooledEntry]:
        """The oldest ``limit`` entries, oldest first."""
        with self._transaction() as connection:
            rows = connection.execute(
                "SELECT id, payload FROM entry ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [SpooledEntry(row[0], json.loads(row[1])) for row in rows]

    def is_empty(self) -> bool:
        with self._transaction() as connection:
            return connection.execute("SELECT 1 FROM entry LIMIT 1").fetchone() is None

    def payloads_holding(self, card_uuids: Iterable[str]) -> list[dict[str, Any]]:
        """The entries (payloads) that hold any of these cards."""
        keys = sorted(set(card_uuids))
        if not keys:
            return []
        marks = ", ".join("?" * len(keys))
        query = (
            "SELECT payload FROM entry WHERE id IN "  # noqa: S608 - only placeholders are joined
            f"(SELECT entry_id FROM card WHERE uuid IN ({marks}))"
        )
        with self._transaction() as connection:
            rows = connection.execute(query, keys).fetchall()
        return [json.loads(row[0]) for row in rows]

    def status(self) -> SpoolStatus:
        with self._transaction() as connection:
            depth, oldest = connection.execute(
                "SELECT COUNT(*), MIN(spooled_at) FROM entry"
            ).fetchone()
            dropped = connection.execute("SELECT COALESCE(SUM(value), 0) FROM counter").fetchone()
        age = None if oldest is None else max(0.0, self._clock() - oldest)
        return SpoolStatus(depth=depth, oldest_age_s=age, dropped=dropped[0])

    # -- plumbing

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One immediate (write-locked) transaction on this process's connection."""
        with self._lock:
            connection = self._connection or self._open()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_s,
            isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE above)
            check_same_thread=False,  # guarded by self._lock
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")  # fsync the log at every commit
        self._connection = connection
        return connection


def _forget_after_fork(spool_ref: weakref.ref[Spool]) -> None:
    """In a forked child: a new lock, and no connection of the parent's (never used, never
    closed: closing it here could disturb the parent's locks)."""
    spool = spool_ref()
    if spool is not None:
        spool._lock = threading.Lock()
        spool._connection = None


def _add_dropped(connection: sqlite3.Connection, reason: str, count: int) -> None:
    connection.execute(
        "INSERT INTO counter (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        (f"dropped-{reason}", count),
    )
