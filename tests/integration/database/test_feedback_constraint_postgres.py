"""On PostgreSQL, with two replicas: two simultaneous, conflicting outcomes for one card store
one and report the other as a conflict (the unique constraint, not only the check in code);
another client's feedback cannot take the card's one outcome."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import select

from cds_service.storage.scope import ClientScope
from cds_service.storage.store import (
    Feedback,
    LoggedCard,
    PoolSettings,
    Store,
    database_engine,
)
from tests import factories as f
from tests.unit.test_feedback_constraint import race_two_outcomes, upgrade_over_legacy_outcomes
from tests.unit.test_store import item

pytestmark = pytest.mark.integration


def test_two_replicas_racing_outcomes_store_one_and_report_a_conflict(
    pg_url: str, app_factory: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    apps = [
        app_factory(database_url=pg_url, uuid_factory=lambda: str(uuid.uuid4())) for _ in range(2)
    ]
    [row] = race_two_outcomes(monkeypatch, apps)
    assert (row.client, row.tenant) == ("", "")


def test_feedback_is_kept_per_scope_on_postgres(pg_url: str) -> None:
    store = Store(pg_url, b"key")
    store.create_schema()
    owner = ClientScope("https://ehr.example.org", "hospital-a")
    card = LoggedCard("card-1", "mmf-teratogenicity", "pregnant", "critical", ())
    entry = store.card_log_entry("aih-order-sign", "hook-1", "pt-1", [card], f.NOW, scope=owner)
    assert entry is not None
    store.write_card_log(entry)
    other = ClientScope("https://ehr.example.org", "hospital-b")
    assert store.record_feedback("aih-order-sign", [item()], f.NOW, scope=other).unknown_cards == 1
    assert store.record_feedback("aih-order-sign", [item()], f.NOW, scope=owner).stored == 1
    with store.sessions() as session:
        rows = session.execute(select(Feedback.client, Feedback.tenant)).all()
    assert [tuple(r) for r in rows] == [("https://ehr.example.org", "hospital-a")]


def test_upgrade_keeps_the_first_of_several_legacy_outcomes_on_postgres(pg_url: str) -> None:
    engine = database_engine(pg_url, PoolSettings())
    assert upgrade_over_legacy_outcomes(engine) == [("accepted", "", "")]
