"""PostgreSQL stopped and restarted while gunicorn (2 workers) answers a bounded request loop:
every hook call during the outage answers 200 with its cards, the card log holds every issued
card exactly once after recovery, and feedback refused with 503 during the outage is stored
when sent again. Run with ``-s`` to see the figures of the run. Also: a slow (locked) card log
cannot hold a hook call past the per-query limit."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from cds_service.storage.card_log import CardLogWriter
from cds_service.storage.store import CardLog, PoolSettings, database_engine
from tests import factories as f
from tests.integration.database.postgres import PostgresServer
from tests.integration.outage import gunicorn, run_outage

pytestmark = pytest.mark.integration


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of its own: this test stops it, which must not disturb the others."""
    server = PostgresServer.start()
    try:
        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute('CREATE DATABASE "cds"')
        yield server
    finally:
        server.stop()


def card_log(server: PostgresServer) -> tuple[int, int, int]:
    """(rows, distinct uuids, feedback rows)."""
    with psycopg.connect(server.url("cds")) as connection:
        rows, distinct = connection.execute(
            "SELECT COUNT(*), COUNT(DISTINCT uuid) FROM card_log"
        ).fetchone() or (0, 0)
        feedback = connection.execute("SELECT COUNT(*) FROM feedback").fetchone() or (0,)
    return rows, distinct, feedback[0]


def test_postgres_outage_under_gunicorn(own_postgres: PostgresServer, tmp_path: Path) -> None:
    with gunicorn(tmp_path, own_postgres.url("cds")) as base:
        report = run_outage(base, own_postgres.pause, own_postgres.resume)
    rows, distinct, feedback = card_log(own_postgres)
    print("\n" + report.summary("PostgreSQL", rows, distinct))
    assert report.answers_during == {200: report.calls_during}
    assert report.calls_without_cards == 0
    assert report.ready_during == {200}
    assert report.database_reported_down
    assert report.peak_spool_depth > 0
    assert report.feedback_during == [503, 503]
    assert report.feedback_retry_after.isdigit()
    assert report.feedback_after == {"stored": 2, "duplicates": 0, "unknownCards": 0}
    assert feedback == 2
    assert rows == distinct == len(report.issued) == len(set(report.issued))
    assert report.dropped_metric == 0
    assert report.replayed_metric == report.spooled_metric > 0


def test_a_slow_database_cannot_hold_a_hook_call(
    pg_url: str, app_factory: Callable[..., Flask]
) -> None:
    """card_log locked by another transaction: the insert waits, statement_timeout ends it,
    the entry is spooled and the call answered; replayed once the lock is gone."""
    app = app_factory(
        database_url=pg_url,
        uuid_factory=lambda: str(uuid.uuid4()),
        database_query_timeout_s=0.5,
        spool_retry_s=0.2,
    )
    writer: CardLogWriter = app.extensions["aih_cds"].card_log
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    with psycopg.connect(pg_url) as blocker:
        blocker.execute("LOCK TABLE card_log IN ACCESS EXCLUSIVE MODE")
        response = app.test_client().post("/cds-services/aih-order-sign", json=body)
        assert response.status_code == 200
        assert writer.spool.status().depth == 1
        blocker.rollback()
    for _ in range(100):  # bounded: 10 s
        if writer.spool.status().depth == 0:
            break
        time.sleep(0.1)
    with writer.store.sessions() as session:
        logged = set(session.scalars(select(CardLog.uuid)))
    assert logged == {card["uuid"] for card in response.get_json()["cards"]}
    writer.stop()


def test_every_query_has_a_time_limit(pg_url: str) -> None:
    engine = database_engine(pg_url, PoolSettings(query_timeout_s=0.3))
    with engine.connect() as connection:
        assert connection.execute(text("SHOW statement_timeout")).scalar() == "300ms"
        with pytest.raises(OperationalError, match="statement timeout"):
            connection.execute(text("SELECT pg_sleep(5)"))
    engine.dispose()
