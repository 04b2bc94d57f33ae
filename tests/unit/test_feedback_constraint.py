"""One outcome per card and client is a database constraint, not only a check in code: two
requests that both pass the check at the same moment cannot both store an outcome; the loser
is answered with the usual ``conflicts`` report (never a 500). SQLite here; PostgreSQL in
tests/integration/database/test_feedback_constraint_postgres.py."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from cds_service.storage.schema import alembic_config, upgrade
from cds_service.storage.store import Feedback, LoggedCard, PoolSettings, Store, database_engine
from tests import factories as f
from tests.conformance.test_feedback import issue_card
from tests.integration.database.test_postgres import feedback_item

FEEDBACK = "/cds-services/aih-order-sign/feedback"


def race_two_outcomes(monkeypatch: pytest.MonkeyPatch, apps: Sequence[Flask]) -> list[Any]:
    """Accept and override one card from two threads (over ``apps`` in turn) whose first checks
    both finish before either commits: the race the check in code alone cannot close."""
    card = issue_card(apps[0].test_client())
    barrier = threading.Barrier(2)
    first_checks: list[int] = []
    lock = threading.Lock()
    judge = Store._judge_feedback

    def judge_then_meet(self: Store, *args: Any, **kwargs: Any) -> tuple[str, ...]:
        results = judge(self, *args, **kwargs)
        with lock:
            first_checks.append(1)
            meet = len(first_checks) <= 2
        if meet:  # both requests have judged "stored" before either commits
            barrier.wait(timeout=30)
        return results

    monkeypatch.setattr(Store, "_judge_feedback", judge_then_meet)

    def send(job: tuple[int, str]) -> Any:
        index, outcome = job
        client = apps[index % len(apps)].test_client()
        return client.post(FEEDBACK, json={"feedback": [feedback_item(card, outcome)]})

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(send, enumerate(("accepted", "overridden"))))
    monkeypatch.setattr(Store, "_judge_feedback", judge)
    assert [a.status_code for a in answers] == [200, 200]
    bodies = [a.get_json() for a in answers]
    assert sorted(b["stored"] for b in bodies) == [0, 1]
    assert sorted(b.get("conflicts", 0) for b in bodies) == [0, 1]
    store: Store = apps[0].extensions["aih_cds"].store
    rows = store.feedback_for_card(card["uuid"])
    assert len(rows) == 1
    return rows


def test_two_simultaneous_outcomes_store_one_and_report_a_conflict(
    app_factory: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the CPU gate: with it, one process judges and stores feedback one request at a
    # time, so the race needs two processes (the PostgreSQL test runs two replicas) or threads
    # without the gate (CDS_CPU_GATE=off), as here.
    race_two_outcomes(monkeypatch, [app_factory(cpu_gate=False)])


def test_the_database_refuses_a_second_outcome_for_a_card(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'log.sqlite'}", b"key")
    store.create_schema()
    entry = store.card_log_entry("svc", "hook", "pt", [_card()], f.NOW)
    assert entry is not None
    store.write_card_log(entry)
    rows = [_row("accepted"), _row("overridden")]
    with store.sessions() as session:
        session.add_all(rows)
        with pytest.raises(IntegrityError, match=r"UNIQUE.*feedback\.card_uuid, feedback\.client"):
            session.commit()


def test_upgrade_keeps_the_first_of_several_legacy_outcomes(tmp_path: Path) -> None:
    engine = database_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", PoolSettings())
    assert upgrade_over_legacy_outcomes(engine) == [("accepted", "", "")]


def upgrade_over_legacy_outcomes(engine: Engine) -> list[tuple[Any, ...]]:
    """Three outcomes of one card stored before migration 0005; what is left after it."""
    upgrade(engine, "0004_seen_jti")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO card_log (uuid, service_id, rule_id, rule_outcome, indicator, "
                "hook_instance, patient_hash, suggestion_uuids, issued_at) VALUES "
                "('c1', 's', 'r', 'o', 'info', 'h', 'p', '[]', '2026-06-01 12:00:00')"
            )
        )
        for outcome, second in (("accepted", 1), ("overridden", 2), ("accepted", 3)):
            connection.execute(
                text(
                    "INSERT INTO feedback (card_uuid, outcome, outcome_timestamp, "
                    "accepted_suggestions, received_at) VALUES "
                    "('c1', :outcome, :at, '[]', '2026-06-01 12:00:00')"
                ),
                {"outcome": outcome, "at": f"2026-06-01 12:00:0{second}"},
            )
    upgrade(engine)
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT outcome, client, tenant FROM feedback")).all()
    return [tuple(row) for row in kept]


def _card() -> LoggedCard:
    return LoggedCard("card-1", "rule", "outcome", "info", ())


def _row(outcome: str) -> Feedback:
    return Feedback(
        card_uuid="card-1",
        outcome=outcome,
        outcome_timestamp=f.NOW.replace(tzinfo=None),
        accepted_suggestions="[]",
        received_at=f.NOW.replace(tzinfo=None),
    )


def test_every_revision_id_fits_the_postgresql_version_column() -> None:
    revisions = ScriptDirectory.from_config(alembic_config()).walk_revisions()
    assert all(len(r.revision) <= 32 for r in revisions)  # alembic_version is VARCHAR(32)
