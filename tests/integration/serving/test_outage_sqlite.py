"""The SQLite card log cannot be written while gunicorn (2 workers) answers a bounded request
loop: another connection holds the database's write lock (a backup or a stuck purge; unlike
file permissions this stops root too), so every write times out after the busy timeout. Hook
calls answer 200 with their cards, feedback is refused with 503 and stored when sent again,
and the card log holds every issued card exactly once afterwards. ``-s`` prints the figures."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.outage import gunicorn, run_outage

pytestmark = pytest.mark.integration


def write_lock(database: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)

    def begin() -> None:
        holder.execute("BEGIN IMMEDIATE")

    def end() -> None:
        holder.execute("ROLLBACK")
        holder.close()

    return begin, end


def test_sqlite_write_outage_under_gunicorn(tmp_path: Path) -> None:
    database = tmp_path / "cards.sqlite"
    with gunicorn(tmp_path, f"sqlite:///{database}", CDS_DATABASE_QUERY_TIMEOUT_S="0.2") as base:
        report = run_outage(base, *write_lock(database))
    with sqlite3.connect(database) as connection:
        rows, distinct = connection.execute(
            "SELECT COUNT(*), COUNT(DISTINCT uuid) FROM card_log"
        ).fetchone()
        feedback = connection.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
    print("\n" + report.summary("SQLite", rows, distinct))
    assert report.answers_during == {200: report.calls_during}
    assert report.calls_without_cards == 0
    assert report.ready_during == {200}
    assert report.peak_spool_depth > 0
    assert report.feedback_during == [503, 503]
    assert report.feedback_after == {"stored": 2, "duplicates": 0, "unknownCards": 0}
    assert feedback == 2
    assert rows == distinct == len(report.issued) == len(set(report.issued))
    assert report.dropped_metric == 0
    assert report.replayed_metric == report.spooled_metric > 0
