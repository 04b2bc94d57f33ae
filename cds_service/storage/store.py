"""Card log and feedback in SQL (SQLite by default, PostgreSQL via CDS_DATABASE_URL).

Patient ids are stored only as a keyed hash (HMAC-SHA256); tokens are never stored. Cards and
feedback carry the client (JWT ``iss``) and tenant they were issued to (scope.py); the rendered
text of silent cards is stored only when switched on, with the time it must be deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql import Select

from cds_service.common.errors import DatabaseUnavailable
from cds_service.hooks.protocol import FeedbackItem
from cds_service.ops import cpu_gate
from cds_service.security.client_auth import AuthError, InMemoryReplayCache
from cds_service.storage.scope import NO_CLIENT, ClientScope

log = logging.getLogger(__name__)
# Judging a feedback batch again after a concurrent request stored an outcome for one of its
# cards: each retry sees at least one more committed outcome, so few are ever needed.
FEEDBACK_ATTEMPTS = 4


class Base(DeclarativeBase):
    pass


class CardLog(Base):
    __tablename__ = "card_log"
    __table_args__ = (Index("ix_card_log_client_tenant", "client", "tenant"),)

    uuid: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(128), index=True)
    rule_id: Mapped[str] = mapped_column(String(128), index=True)
    rule_outcome: Mapped[str] = mapped_column(String(128))
    indicator: Mapped[str] = mapped_column(String(16))
    hook_instance: Mapped[str] = mapped_column(String(256), index=True)
    patient_hash: Mapped[str] = mapped_column(String(64), index=True)
    suggestion_uuids: Mapped[str] = mapped_column(Text, default="[]")
    issued_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    # "silent" cards were logged but not returned to the EHR (rule roll-out).
    mode: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    # The client (JWT iss) and tenant the card was issued to; "" for no verified client.
    client: Mapped[str] = mapped_column(String(256), default="", server_default="")
    tenant: Mapped[str] = mapped_column(String(256), default="", server_default="")


class SuggestionLog(Base):
    """The label of every suggestion issued, so feedback can count acceptance per suggestion."""

    __tablename__ = "suggestion_log"

    uuid: Mapped[str] = mapped_column(String(64), primary_key=True)
    card_uuid: Mapped[str] = mapped_column(ForeignKey("card_log.uuid"), index=True)
    label: Mapped[str] = mapped_column(String(512))


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_once"),
        # One outcome per card and client: two concurrent requests cannot both record one.
        UniqueConstraint("card_uuid", "client", "tenant", name="uq_feedback_one_outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    card_uuid: Mapped[str] = mapped_column(ForeignKey("card_log.uuid"), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    outcome_timestamp: Mapped[datetime] = mapped_column(DateTime())
    accepted_suggestions: Mapped[str] = mapped_column(Text, default="[]")
    reason_system: Mapped[str | None] = mapped_column(String(256))
    reason_code: Mapped[str | None] = mapped_column(String(128))
    reason_display: Mapped[str | None] = mapped_column(String(512))
    user_comment: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    # Who sent it: always the client and tenant the card was issued to.
    client: Mapped[str] = mapped_column(String(256), default="", server_default="")
    tenant: Mapped[str] = mapped_column(String(256), default="", server_default="")


class SilentCardText(Base):
    """The rendered text of a silent card (CDS_SILENT_CARD_TEXT): patient data, kept until
    ``expires_at`` (CDS_SILENT_CARD_TEXT_DAYS after the card was issued), then deleted."""

    __tablename__ = "silent_card_text"

    card_uuid: Mapped[str] = mapped_column(ForeignKey("card_log.uuid"), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(), index=True)


class SeenJti(Base):
    """Client JWT ids already accepted, kept until the token could no longer be accepted.

    The key is SHA-256 of ``iss`` NUL ``jti``: fixed width whatever the issuer sends, and the
    primary key makes "insert if absent" atomic across every instance sharing the database.
    """

    __tablename__ = "seen_jti"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(), index=True)


@dataclass(frozen=True)
class LoggedCard:
    uuid: str
    rule_id: str
    rule_outcome: str
    indicator: str
    suggestion_uuids: tuple[str, ...]
    suggestion_labels: tuple[str, ...] = ()  # same order as suggestion_uuids
    mode: str = "active"
    text: str | None = None  # rendered text, stored only for silent cards when switched on


@dataclass(frozen=True)
class PoolSettings:
    """Connection pool of a server database (ignored for SQLite, which has no server)."""

    size: int = 5
    max_overflow: int = 5
    timeout_s: float = 2.0
    recycle_s: int = 1800
    # Every query's limit (PostgreSQL statement_timeout and connect_timeout, SQLite busy
    # timeout), so a slow database cannot hold a hook call past its budget; 0: no limit.
    query_timeout_s: float = 2.0


@dataclass(frozen=True)
class PurgeReport:
    cards: int
    feedback: int
    silent_texts: int = 0


@dataclass(frozen=True)
class FeedbackReceipt:
    stored: int
    duplicates: int
    unknown_cards: int
    # per item, in order: "stored", "duplicate", "unknown-card", "conflict" (another outcome
    # was recorded for the card), "unknown-suggestion" or "unknown-reason" (not offered)
    results: tuple[str, ...] = ()

    def count(self, result: str) -> int:
        return self.results.count(result)


@dataclass(frozen=True)
class RuleFeedbackRow:
    rule_id: str
    indicator: str
    issued: int
    accepted: int
    overridden: int


def database_url(raw: str) -> URL:
    """``postgresql://`` means psycopg 3 (the driver this package installs), not psycopg2."""
    url = make_url(raw)
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    return url


def database_engine(raw_url: str, pool: PoolSettings) -> Engine:
    url = database_url(raw_url)
    options: dict[str, Any] = {"connect_args": _time_limits(url, pool)}
    if url.get_backend_name() != "sqlite":
        # A server may have closed a pooled connection (restart, idle timeout): test it before
        # use. A SQLite connection is a file handle that cannot go stale; a ping would be one
        # more statement in every hook call's card-log write.
        options.update(
            pool_pre_ping=True,
            pool_size=pool.size,
            max_overflow=pool.max_overflow,
            pool_timeout=pool.timeout_s,
            pool_recycle=pool.recycle_s,
        )
    return create_engine(url, **options)


def _time_limits(url: URL, pool: PoolSettings) -> dict[str, Any]:
    limit = pool.query_timeout_s
    if limit <= 0:
        return {}
    if url.get_backend_name() == "sqlite":
        return {"timeout": limit}  # how long a write waits for another writer's lock
    if url.get_backend_name() == "postgresql":
        # libpq counts connect_timeout in whole seconds (and treats 1 as 2).
        return {
            "connect_timeout": max(2, math.ceil(limit)),
            "options": f"-c statement_timeout={round(limit * 1000)}",
        }
    return {}


class Store:
    def __init__(
        self, database_url: str, patient_hash_key: bytes, pool: PoolSettings | None = None
    ) -> None:
        self.engine = database_engine(database_url, pool or PoolSettings())
        self._local_file = self.engine.dialect.name == "sqlite"
        if self._local_file:
            event.listen(self.engine, "connect", _sqlite_write_ahead_log)
        # Under a pre-forking server (gunicorn preload_app) each worker opens its own
        # connections: none inherited from the parent may ever be shared.
        os.register_at_fork(after_in_child=partial(_forget_connections, weakref.ref(self.engine)))
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._key = patient_hash_key

    def database_wait(self) -> AbstractContextManager[None]:
        """What a hook call's transaction runs in, for the worker's CPU gate (ops/cpu_gate.py).

        A server database is a network wait: the gate is let go, and the worker's other calls
        compute meanwhile. SQLite is a short local write, done holding the gate: no other
        thread of the worker competes for the interpreter while SQLite's write lock is held,
        so the lock is held for well under a millisecond instead of several, and the other
        workers' writers seldom meet it. (A writer that meets it waits in SQLite's busy
        handler, which polls with sleeps of 1, 2, 5 ... 100 ms: with the gate let go, that
        polling put p99 at 5-8x p50 at 8 connections, issue 16.) The cost: a worker waits with
        its calls while another writer holds the lock (a purge batch, a spool replay), at most
        the busy timeout (CDS_DATABASE_QUERY_TIMEOUT_S)."""
        return nullcontext() if self._local_file else cpu_gate.released()

    def create_schema(self) -> None:
        """Bring the schema to the newest migration (what ``aih-cds db upgrade`` does)."""
        from cds_service.storage.schema import upgrade  # noqa: PLC0415 - schema imports this module

        upgrade(self.engine)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - readiness must answer, whatever the driver raises
            # A warning, not a stack: probes during an outage (which the service rides out
            # with its spool) would fill the log with identical tracebacks.
            log.warning("database not reachable: %s", type(exc).__name__)
            return False
        return True

    def patient_hash(self, patient_id: str) -> str:
        return hmac.new(self._key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def card_log_entry(
        self,
        service_id: str,
        hook_instance: str,
        patient_id: str,
        cards: Iterable[LoggedCard],
        now: datetime,
        *,
        scope: ClientScope = NO_CLIENT,
        text_expires_at: datetime | None = None,
    ) -> CardLogEntry | None:
        """The rows one hook call adds to the card log (None: no card, nothing to log).

        A card's ``text`` is kept until ``text_expires_at``; without it no text is stored."""
        cards = list(cards)  # read more than once below
        patient_hash = self.patient_hash(patient_id)
        rows = [
            {
                "uuid": card.uuid,
                "service_id": service_id,
                "rule_id": card.rule_id,
                "rule_outcome": card.rule_outcome,
                "indicator": card.indicator,
                "hook_instance": hook_instance,
                "patient_hash": patient_hash,
                "suggestion_uuids": json.dumps(list(card.suggestion_uuids)),
                "issued_at": utc_naive(now),
                "mode": card.mode,
                "client": scope.client,
                "tenant": scope.tenant,
            }
            for card in cards
        ]
        if not rows:
            return None
        suggestions = [
            {"uuid": suggestion_uuid, "card_uuid": card.uuid, "label": label[:512]}
            for card in cards
            for suggestion_uuid, label in zip(
                card.suggestion_uuids, card.suggestion_labels, strict=False
            )
        ]
        texts = [
            {"card_uuid": card.uuid, "text": card.text, "expires_at": utc_naive(text_expires_at)}
            for card in cards
            if card.text is not None and text_expires_at is not None
        ]
        return CardLogEntry(tuple(rows), tuple(suggestions), tuple(texts))

    def write_card_log(self, entry: CardLogEntry) -> None:
        # Plain INSERTs, not the ORM unit of work: a third of the time (every hook call logs).
        with self.engine.begin() as connection:
            connection.execute(_INSERT_CARDS, list(entry.cards))
            if entry.suggestions:  # after the cards: suggestion rows reference them
                connection.execute(_INSERT_SUGGESTIONS, list(entry.suggestions))
            if entry.texts:
                connection.execute(_INSERT_TEXTS, list(entry.texts))
                # Texts past their retention go whenever a new one is written (and nightly,
                # with `aih-cds db purge`); readers never show one past its time either.
                connection.execute(_expired_texts(entry.cards[0]["issued_at"]))

    def replay_card_log(self, entries: Sequence[CardLogEntry]) -> None:
        """Write spooled entries in one transaction, skipping rows already there (an entry may
        have been committed before its acknowledgement was lost, or replayed before a crash)."""
        cards = [row for entry in entries for row in entry.cards]
        suggestions = [row for entry in entries for row in entry.suggestions]
        texts = [row for entry in entries for row in entry.texts]
        with self.engine.begin() as connection:
            upsert = _insert_if_absent(connection.dialect.name)
            connection.execute(upsert(CardLog).on_conflict_do_nothing(), cards)
            if suggestions:
                connection.execute(upsert(SuggestionLog).on_conflict_do_nothing(), suggestions)
            if texts:
                connection.execute(upsert(SilentCardText).on_conflict_do_nothing(), texts)

    def record_feedback(
        self,
        service_id: str,
        items: Sequence[FeedbackItem],
        now: datetime,
        override_codes: Mapping[str, frozenset[str]] | None = None,
        *,
        scope: ClientScope = NO_CLIENT,
    ) -> FeedbackReceipt:
        """Store a request's feedback in one transaction. Only cards issued by this service to
        this ``scope`` (client and tenant) are known: any other card is an unknown card, whether
        it exists or not. One outcome per card: the same outcome again is a duplicate, another
        one a conflict (neither is stored). Accepted suggestions must be ones the card offered,
        and an override code one of the rule's (``override_codes`` by rule id, when given);
        other items are reported and not stored.

        The database enforces one outcome per card and client (``uq_feedback_one_outcome``):
        when a concurrent request commits an outcome for the same card first, this batch is
        judged again, and the item then counts as a duplicate or a conflict."""
        for _attempt in range(FEEDBACK_ATTEMPTS):
            try:
                with self.sessions() as session:
                    results = self._judge_feedback(
                        session, service_id, items, now, override_codes, scope=scope
                    )
                    session.commit()
                break
            except IntegrityError:
                continue
        else:  # another request won the race every time: the client may simply retry
            raise DatabaseUnavailable("concurrent feedback on the same cards, retry later")
        return FeedbackReceipt(
            stored=results.count("stored"),
            duplicates=results.count("duplicate"),
            unknown_cards=results.count("unknown-card"),
            results=results,
        )

    def _judge_feedback(
        self,
        session: Session,
        service_id: str,
        items: Sequence[FeedbackItem],
        now: datetime,
        override_codes: Mapping[str, frozenset[str]] | None,
        *,
        scope: ClientScope,
    ) -> tuple[str, ...]:
        ids = {item.card for item in items}
        # Cards of other clients or tenants are not even read: they answer like absent cards.
        own_cards = select(CardLog).where(
            CardLog.uuid.in_(ids),
            CardLog.service_id == service_id,
            CardLog.client == scope.client,
            CardLog.tenant == scope.tenant,
        )
        cards = {c.uuid: c for c in session.scalars(own_cards)}
        recorded = select(Feedback.card_uuid, Feedback.outcome).where(
            Feedback.card_uuid.in_(cards),
            Feedback.client == scope.client,
            Feedback.tenant == scope.tenant,
        )
        outcomes: dict[str, str] = {row[0]: row[1] for row in session.execute(recorded)}
        results = []
        for item in items:
            card = cards.get(item.card)
            if card is None:
                results.append("unknown-card")
            elif item.card in outcomes:
                results.append("duplicate" if outcomes[item.card] == item.outcome else "conflict")
            elif not set(item.accepted_suggestions) <= set(json.loads(card.suggestion_uuids)):
                results.append("unknown-suggestion")
            elif (
                item.reason_code is not None
                and override_codes is not None
                and item.reason_code not in override_codes.get(card.rule_id, frozenset())
            ):
                results.append("unknown-reason")
            else:
                session.add(_feedback_row(item, now, scope))
                outcomes[item.card] = item.outcome
                results.append("stored")
        return tuple(results)

    def feedback_by_rule(self) -> list[RuleFeedbackRow]:
        with self.sessions() as session:
            # Silent cards never reached a clinician: they would dilute the acceptance rate.
            issued = session.execute(
                select(CardLog.rule_id, CardLog.indicator, func.count())
                .where(CardLog.mode == "active")
                .group_by(CardLog.rule_id, CardLog.indicator)
            ).all()
            outcomes = session.execute(
                select(
                    CardLog.rule_id,
                    CardLog.indicator,
                    Feedback.outcome,
                    func.count(func.distinct(Feedback.card_uuid)),
                )
                .join(Feedback, Feedback.card_uuid == CardLog.uuid)
                .group_by(CardLog.rule_id, CardLog.indicator, Feedback.outcome)
            ).all()
        counts = {(r, i, o): n for r, i, o, n in outcomes}
        return [
            RuleFeedbackRow(
                r, i, n, counts.get((r, i, "accepted"), 0), counts.get((r, i, "overridden"), 0)
            )
            for r, i, n in sorted(issued)
        ]

    def feedback_for_card(self, card_uuid: str) -> list[Feedback]:
        with self.sessions() as session:
            return list(session.scalars(select(Feedback).where(Feedback.card_uuid == card_uuid)))

    def purge(
        self, now: datetime, card_log_days: int, feedback_days: int, batch: int = 5000
    ) -> PurgeReport:
        """Delete feedback older than ``feedback_days`` and cards older than ``card_log_days``
        (0 keeps forever), and silent-card text past its own retention. A purged card takes
        its feedback and text with it: feedback means nothing without the card it is about.
        Works in batches so no transaction holds locks for long."""
        with self.engine.begin() as connection:
            texts = connection.execute(_expired_texts(utc_naive(now))).rowcount
        feedback = cards = 0
        if feedback_days > 0:
            cutoff = utc_naive(now - timedelta(days=feedback_days))
            old_feedback = select(Feedback.id).where(Feedback.received_at < cutoff)
            feedback = self._purge_in_batches(old_feedback, _delete_feedback, batch)
        if card_log_days > 0:
            cutoff = utc_naive(now - timedelta(days=card_log_days))
            old_cards = select(CardLog.uuid).where(CardLog.issued_at < cutoff)
            cards = self._purge_in_batches(old_cards, _delete_cards, batch)
        return PurgeReport(cards=cards, feedback=feedback, silent_texts=texts)

    def _purge_in_batches(
        self,
        victims: Select[Any],
        delete_keys: Callable[[Session, list[Any]], None],
        batch: int,
    ) -> int:
        total = 0
        while True:
            with self.sessions.begin() as session:
                keys = list(session.scalars(victims.limit(batch)))
                if not keys:
                    return total
                delete_keys(session, keys)
                total += len(keys)

    def count_rows(self) -> tuple[int, int]:
        """(cards, feedback) rows held."""
        with self.sessions() as session:
            cards = session.scalar(select(func.count()).select_from(CardLog)) or 0
            feedback = session.scalar(select(func.count()).select_from(Feedback)) or 0
        return cards, feedback


def _delete_feedback(session: Session, ids: list[Any]) -> None:
    session.execute(delete(Feedback).where(Feedback.id.in_(ids)))


def _delete_cards(session: Session, uuids: list[Any]) -> None:
    session.execute(delete(Feedback).where(Feedback.card_uuid.in_(uuids)))
    session.execute(delete(SuggestionLog).where(SuggestionLog.card_uuid.in_(uuids)))
    session.execute(delete(SilentCardText).where(SilentCardText.card_uuid.in_(uuids)))
    session.execute(delete(CardLog).where(CardLog.uuid.in_(uuids)))


# The card log's INSERTs, built once: every hook call with cards runs them, and a statement
# object keeps its compiled form's cache key (building one per call cost a tenth of the write).
_INSERT_CARDS = insert(CardLog)
_INSERT_SUGGESTIONS = insert(SuggestionLog)
_INSERT_TEXTS = insert(SilentCardText)


def _expired_texts(now: datetime) -> Any:
    """Silent-card texts whose retention ended (``now`` naive UTC)."""
    return delete(SilentCardText).where(SilentCardText.expires_at <= now)


class DatabaseReplayCache:
    """A :class:`cds_service.security.client_auth.ReplayCache` shared by every replica through
    the database.

    Each check first deletes expired rows, then inserts ``(iss, jti)``; a primary-key clash
    means another call (in this or any other instance) already used the token.

    When the table cannot be reached, tokens are checked against a per-process cache for at
    most ``fallback_s`` seconds of continuous failure, then refused (AuthError: a 401 whose
    reason is logged). During the fallback a token replayed to *another* process is not
    detected: the price of answering hook calls through a database outage. A token first seen
    by the fallback stays refused by this process after the database is back. 0: refuse at once.
    """

    def __init__(
        self, store: Store, *, clock: Callable[[], float] = time.time, fallback_s: float = 300.0
    ) -> None:
        self._sessions = store.sessions
        self._database_wait = store.database_wait
        self._clock = clock
        self._fallback_s = fallback_s
        self._fallback = InMemoryReplayCache(clock=clock)
        self._failing_since: float | None = None

    def seen_before(self, jti: str, iss: str, expires_at: float) -> bool:
        try:
            # A wait for a server database does not stop the worker's other calls; a SQLite
            # write is short and holds the worker's CPU gate (Store.database_wait).
            with self._database_wait():
                seen = self._seen_in_database(jti, iss, expires_at)
        except SQLAlchemyError as exc:
            return self._seen_during_outage(jti, iss, expires_at, exc)
        if self._failing_since is not None:
            log.warning("replay-cache table reachable again: shared replay detection restored")
            self._failing_since = None
        if len(self._fallback):  # tokens accepted during an outage are still known here
            return self._fallback.seen_before(jti, iss, expires_at) or seen
        return seen

    def _seen_in_database(self, jti: str, iss: str, expires_at: float) -> bool:
        now = _utc_from_epoch(self._clock())
        key = hashlib.sha256(f"{iss}\0{jti}".encode()).hexdigest()
        with self._sessions.begin() as session:
            session.execute(delete(SeenJti).where(SeenJti.expires_at <= now))
        try:
            with self._sessions.begin() as session:
                session.add(SeenJti(key=key, expires_at=_utc_from_epoch(expires_at)))
        except IntegrityError:
            return True
        return False

    def _seen_during_outage(
        self, jti: str, iss: str, expires_at: float, error: SQLAlchemyError
    ) -> bool:
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
            log.error(
                "replay-cache table unavailable (%s): per-process replay cache for at most %g s",
                type(error).__name__,
                self._fallback_s,
            )
        if now - self._failing_since >= self._fallback_s:
            raise AuthError(
                f"replay-cache table unavailable for {now - self._failing_since:.0f} s "
                f"(fallback limit {self._fallback_s:g} s): token refused"
            ) from None
        return self._fallback.seen_before(jti, iss, expires_at)


@dataclass(frozen=True)
class CardLogEntry:
    """One hook call's card-log rows, as written to the database or to the spool."""

    cards: tuple[dict[str, Any], ...]
    suggestions: tuple[dict[str, Any], ...] = ()
    texts: tuple[dict[str, Any], ...] = ()  # silent-card text, when stored (patient data)

    @property
    def card_uuids(self) -> list[str]:
        return [str(row["uuid"]) for row in self.cards]

    def to_json(self) -> dict[str, Any]:
        cards = [{**row, "issued_at": row["issued_at"].isoformat()} for row in self.cards]
        texts = [{**row, "expires_at": row["expires_at"].isoformat()} for row in self.texts]
        return {"cards": cards, "suggestions": list(self.suggestions), "texts": texts}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> CardLogEntry:
        # Entries spooled before cards carried a scope have none: no verified client.
        cards = tuple(
            {**_UNSCOPED, **row, "issued_at": datetime.fromisoformat(row["issued_at"])}
            for row in document["cards"]
        )
        texts = tuple(
            {**row, "expires_at": datetime.fromisoformat(row["expires_at"])}
            for row in document.get("texts", ())
        )
        return cls(cards, tuple(document.get("suggestions", ())), texts)


_UNSCOPED = {"client": NO_CLIENT.client, "tenant": NO_CLIENT.tenant}


def _insert_if_absent(dialect: str) -> Callable[[Any], Any]:
    if dialect == "postgresql":
        return postgresql_insert
    if dialect == "sqlite":
        return sqlite_insert
    raise NotImplementedError(f"card-log replay does not support {dialect}")


def _utc_from_epoch(seconds: float) -> datetime:
    return utc_naive(datetime.fromtimestamp(seconds, UTC))


def _feedback_row(item: FeedbackItem, now: datetime, scope: ClientScope) -> Feedback:
    return Feedback(
        client=scope.client,
        tenant=scope.tenant,
        card_uuid=item.card,
        outcome=item.outcome,
        outcome_timestamp=utc_naive(item.outcome_timestamp),
        accepted_suggestions=json.dumps(list(item.accepted_suggestions)),
        reason_system=item.reason_system,
        reason_code=item.reason_code,
        reason_display=item.reason_display,
        user_comment=item.user_comment,
        received_at=utc_naive(now),
    )


def _sqlite_write_ahead_log(connection: Any, _record: Any) -> None:
    """WAL: readers never wait for the writer (two workers share one file), and commits need
    no fsync of the database file (synchronous=NORMAL): a crash of the service loses nothing;
    a power loss may lose the last commits but never corrupts the file. About 6 ms saved per
    logged hook call on this machine."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _forget_connections(engine_ref: weakref.ref[Engine]) -> None:
    engine = engine_ref()
    if engine is not None:
        engine.dispose(close=False)  # the parent keeps using (and closes) its own


def utc_naive(moment: datetime) -> datetime:
    """Times are stored as naive UTC so SQLite and PostgreSQL compare them the same way."""
    return moment.astimezone(UTC).replace(tzinfo=None)
