"""Answer first, record reliably: card-log entries go to the database, or to the local spool
when the database cannot take them, and a replay thread moves the spool to the database in
order once it answers again.

While this process has spooled entries that are not yet replayed, new entries go straight to
the spool: hook calls no longer wait on a database that just failed, and entries reach the
database in the order they were issued. Replay runs in one process of the host at a time (a
``flock`` on the spool's lock file) and is idempotent by card uuid.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import sqlite3
import tempfile
import threading
import weakref
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from cds_service.ops.metrics import metrics
from cds_service.storage.scope import ClientScope
from cds_service.storage.spool import Spool, SpoolFull, SpoolStatus
from cds_service.storage.store import CardLogEntry, Store

log = logging.getLogger(__name__)
SPOOL_ERRORS = (sqlite3.Error, OSError)


def default_spool_dir(database_url: str) -> Path:
    """Beside a SQLite file; a new temp directory for in-memory SQLite (nothing outlives the
    process anyway); for a server database, a temp directory named after the database, so two
    services on one host never replay into each other's database."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            return Path(url.database + "-spool")
        return Path(tempfile.mkdtemp(prefix="aih-cds-spool-"))
    name = url.render_as_string(hide_password=True)
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"aih-cds-spool-{digest}"


@dataclass(frozen=True)
class CardLogStatus:
    database_up: bool
    spool: SpoolStatus | None  # None: the spool cannot be read
    spool_room: bool  # the spool is readable and below its entry limit

    def as_json(self) -> dict[str, object]:
        spool = self.spool
        return {
            "database": self.database_up,
            "spoolDepth": None if spool is None else spool.depth,
            "oldestSpooledAgeSeconds": (
                None if spool is None or spool.oldest_age_s is None else round(spool.oldest_age_s)
            ),
            "dropped": None if spool is None else spool.dropped,
            "spoolWritable": self.spool_room,
        }


class CardLogWriter:
    def __init__(
        self, store: Store, spool: Spool, *, retry_interval_s: float, batch: int = 200
    ) -> None:
        self.store = store
        self.spool = spool
        self._retry_interval_s = retry_interval_s
        self._batch = batch
        self._guard = threading.Lock()
        self._started = False  # in this process: leftover entries looked for
        self._spooling = False  # this process sends new entries to the spool
        self._replayer: threading.Thread | None = None
        self._stop = threading.Event()
        os.register_at_fork(after_in_child=partial(_reset_after_fork, weakref.ref(self)))

    # -- the hook call's side

    def record(self, entry: CardLogEntry) -> str:
        """Log one hook call's cards: "logged", "spooled" or "dropped". Never raises."""
        self._first_use()
        if not self._spooling:
            try:
                # One transaction, outside the worker's CPU gate for a server database (a
                # network wait), holding it for SQLite (a short local write that keeps SQLite's
                # lock for the shortest time): Store.database_wait. Either way no thread waits
                # for the gate holding a lock.
                with self.store.database_wait():
                    self.store.write_card_log(entry)
            except IntegrityError as exc:  # a card uuid already logged: a bug, not an outage
                return self._dropped("duplicate-uuid", exc, len(entry.cards))
            except SQLAlchemyError as exc:
                log.error(  # noqa: TRY400 - the cause is known; a stack per call is noise
                    "card log not writable (%s): entries go to the spool %s until the database "
                    "answers again",
                    type(exc).__name__,
                    self.spool.path,
                )
                metrics().database_up.set(0)
                self._spooling = True
            else:
                metrics().card_log_entries.labels("logged").inc()
                return "logged"
        return self._spool(entry)

    def _spool(self, entry: CardLogEntry) -> str:
        try:
            self.spool.append(entry.to_json(), entry.card_uuids)
        except SpoolFull as exc:
            return self._dropped("full", exc, len(entry.cards))
        except SPOOL_ERRORS as exc:
            return self._dropped("spool-error", exc, len(entry.cards))
        metrics().card_log_entries.labels("spooled").inc()
        self.ensure_replaying()
        return "spooled"

    @staticmethod
    def _dropped(reason: str, error: Exception, cards: int) -> str:
        log.error(
            "card-log entry DROPPED (%s: %s): %d card(s) answered but not recorded",
            reason,
            type(error).__name__ if isinstance(error, SQLAlchemyError) else error,
            cards,
        )
        metrics().card_log_dropped.labels(reason).inc()
        return "dropped"

    def holds_any(self, card_uuids: list[str], scope: ClientScope) -> bool:
        """Whether any of these cards, issued to ``scope``, waits in the spool (not yet in the
        database). Another scope's spooled card does not count: it must answer like an unknown
        card, not reveal that it exists."""
        wanted = set(card_uuids)
        try:
            payloads = self.spool.payloads_holding(wanted)
        except SPOOL_ERRORS:
            log.exception("card-log spool not readable")
            return False
        return any(
            row["uuid"] in wanted
            and (row.get("client", ""), row.get("tenant", "")) == (scope.client, scope.tenant)
            for payload in payloads
            for row in payload["cards"]
        )

    # -- readiness and metrics

    def status(self) -> CardLogStatus:
        self._first_use()
        up = self.store.ping()
        try:
            spool: SpoolStatus | None = self.spool.status()
        except SPOOL_ERRORS:
            log.exception("card-log spool not readable")
            spool = None
        room = spool is not None and spool.depth < self.spool.max_entries
        measured = metrics()
        measured.database_up.set(1 if up else 0)
        if spool is not None:
            measured.spool_depth.set(spool.depth)
            measured.spool_oldest_age.set(spool.oldest_age_s or 0.0)
            measured.spool_dropped.set(spool.dropped)
            if spool.depth:
                self.ensure_replaying()
        return CardLogStatus(up, spool, room)

    # -- replay

    def ensure_replaying(self) -> None:
        with self._guard:
            if self._replayer is None:
                self._spooling = True
                self._replayer = threading.Thread(
                    target=self._replay_loop, name="card-log-replay", daemon=True
                )
                self._replayer.start()

    def replay_once(self) -> int:
        """Move up to one batch from the spool to the database: entries replayed (the caller
        holds the replay lock). Raises what the database or the spool raised."""
        expired = self.spool.expire()
        if expired:
            log.error("card-log spool: %d entries older than the age limit DROPPED", expired)
            metrics().card_log_dropped.labels("expired").inc(expired)
        batch = self.spool.head(self._batch)
        if not batch:
            return 0
        self.store.replay_card_log([CardLogEntry.from_json(item.payload) for item in batch])
        self.spool.remove(item.id for item in batch)
        metrics().card_log_entries.labels("replayed").inc(len(batch))
        metrics().database_up.set(1)
        return len(batch)

    def stop(self) -> None:
        """Stop the replay thread (tests; at exit the daemon thread simply ends)."""
        self._stop.set()
        replayer = self._replayer
        if replayer is not None:
            replayer.join(timeout=10)

    def _replay_loop(self) -> None:
        lock_path = self.spool.path.with_name(self.spool.path.name + ".replay-lock")
        with open(lock_path, "a") as lock_file:
            while not self._drained():
                if _try_lock(lock_file):
                    try:
                        self._replay_until_empty_or_failing()
                    finally:
                        fcntl.flock(lock_file, fcntl.LOCK_UN)
                else:  # another worker of this host is replaying
                    self._stop.wait(self._retry_interval_s)

    def _replay_until_empty_or_failing(self) -> None:
        replayed = 0
        while not self._stop.is_set():
            try:
                count = self.replay_once()
            except (SQLAlchemyError, *SPOOL_ERRORS) as exc:
                log.warning(
                    "card-log replay waits %g s: %s", self._retry_interval_s, type(exc).__name__
                )
                metrics().database_up.set(0)
                self._stop.wait(self._retry_interval_s)
                continue
            if count == 0:
                break
            replayed += count
        if replayed:
            log.warning("card-log spool: %d entries replayed into the database", replayed)

    def _drained(self) -> bool:
        """True (and the thread ends) once the spool is empty or a stop was asked for."""
        with self._guard:
            try:
                empty = self._stop.is_set() or self.spool.is_empty()
            except SPOOL_ERRORS:
                log.exception("card-log spool not readable")
                empty = False
            if empty:
                self._replayer = None
                self._spooling = False
            return empty

    def _first_use(self) -> None:
        """The first time this process uses the card log, replay what an earlier run (or a
        worker that ended) left in the spool."""
        with self._guard:
            if self._started:
                return
            self._started = True
        try:
            leftover = not self.spool.is_empty()
        except SPOOL_ERRORS:
            leftover = False
        if leftover:
            log.warning("card-log spool holds entries from before: replaying them")
            self.ensure_replaying()


def _reset_after_fork(writer_ref: weakref.ref[CardLogWriter]) -> None:
    """A forked worker inherits neither the parent's replay thread nor its lock."""
    writer = writer_ref()
    if writer is not None:
        writer._guard = threading.Lock()
        writer._replayer = None
        writer._spooling = False
        writer._started = False


def _try_lock(lock_file: IO[str]) -> bool:
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
