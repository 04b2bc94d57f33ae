"""PostgreSQL stopped and restarted while gunicorn (2 workers) answers a bounded request loop:
every hook call during the outage answers 200 with its cards, the card log holds every issued
card exactly once after recovery, and feedback refused with 503 during the outage is stored
when sent again. Run with ``-s`` to see the figures of the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

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
