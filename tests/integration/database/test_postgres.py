"""Against a real PostgreSQL (started by the session fixture): migrations from empty, two app
instances ("replicas") writing the card log and feedback concurrently, retention purge."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from sqlalchemy import func, inspect, select

from cds_service.cli.main import main
from cds_service.storage.schema import current_revision, head_revision, upgrade
from cds_service.storage.store import (
    Base,
    CardLog,
    DatabaseReplayCache,
    Feedback,
    PoolSettings,
    Store,
    database_engine,
)
from tests import factories as f

pytestmark = pytest.mark.integration
THREADS = 16


def replicas(app_factory: Callable[..., Flask], pg_url: str, count: int = 2) -> list[Flask]:
    return [
        app_factory(database_url=pg_url, uuid_factory=lambda: str(uuid.uuid4()))
        for _ in range(count)
    ]


def test_db_upgrade_from_empty_creates_every_table_at_head(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDS_DATABASE_URL", pg_url)
    engine = database_engine(pg_url, PoolSettings())
    assert current_revision(engine) is None
    assert main(["db", "current"]) == 1
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "upgrade"]) == 0  # repeating is harmless
    assert main(["db", "current"]) == 0
    assert current_revision(engine) == head_revision()
    assert {"card_log", "feedback", "alembic_version"} <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        drift = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert drift == []  # the models and the migrations describe the same schema
    assert "database at" in capsys.readouterr().out


def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    engines = [database_engine(pg_url, PoolSettings()) for _ in range(4)]
    with ThreadPoolExecutor(len(engines)) as pool:
        list(pool.map(upgrade, engines))  # advisory lock: no "relation already exists"
    assert {current_revision(e) for e in engines} == {head_revision()}


def test_app_refuses_an_old_schema_when_not_migrating(
    pg_url: str, app_factory: Callable[..., Flask]
) -> None:
    upgrade(database_engine(pg_url, PoolSettings()), "0001_card_log_and_feedback")
    with pytest.raises(RuntimeError, match="aih-cds db upgrade"):
        app_factory(database_url=pg_url, database_migrate=False)
    upgrade(database_engine(pg_url, PoolSettings()))
    assert (
        app_factory(database_url=pg_url, database_migrate=False)
        .test_client()
        .get("/readyz")
        .get_json()["database"]
    )


def test_concurrent_card_log_writes_from_two_replicas(
    pg_url: str, app_factory: Callable[..., Flask]
) -> None:
    apps = replicas(app_factory, pg_url)
    calls = 48

    def call(n: int) -> list[str]:
        body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
        response = apps[n % 2].test_client().post("/cds-services/aih-order-sign", json=body)
        assert response.status_code == 200
        return [card["uuid"] for card in response.get_json()["cards"]]

    with ThreadPoolExecutor(THREADS) as pool:
        issued = [u for uuids in pool.map(call, range(calls)) for u in uuids]
    assert len(issued) >= calls  # every call answered with its card
    store: Store = apps[0].extensions["aih_cds"].store
    with store.sessions() as session:
        logged = set(session.scalars(select(CardLog.uuid)))
    assert logged == set(issued)
    assert len(issued) == len(set(issued))


def test_concurrent_feedback_nothing_lost_nothing_duplicated(
    pg_url: str, app_factory: Callable[..., Flask]
) -> None:
    apps = replicas(app_factory, pg_url)
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    cards = [
        apps[0].test_client().post("/cds-services/aih-order-sign", json=body).get_json()["cards"][0]
        for _ in range(20)
    ]
    # Each card gets one outcome (one per card: a second, different one is a conflict), overridden
    # or accepted in turn: 20 distinct items, each sent 8 times from 16 threads over both replicas,
    # so most sends race a twin.
    distinct = [
        feedback_item(card, "overridden" if i % 2 else "accepted") for i, card in enumerate(cards)
    ]
    sends = [item for item in distinct for _ in range(8)]
    barrier = threading.Barrier(THREADS)

    def send(job: tuple[int, list[dict[str, Any]]]) -> dict[str, int]:
        worker, items = job
        client = apps[worker % 2].test_client()
        barrier.wait()
        totals = {"stored": 0, "duplicates": 0, "unknownCards": 0}
        for item in items:
            response = client.post(
                "/cds-services/aih-order-sign/feedback", json={"feedback": [item]}
            )
            assert response.status_code == 200
            for key, value in response.get_json().items():
                totals[key] = totals.get(key, 0) + value
        return totals

    jobs = [(w, sends[w::THREADS]) for w in range(THREADS)]
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(send, jobs))
    stored = sum(r["stored"] for r in results)
    duplicates = sum(r["duplicates"] for r in results)
    assert stored == len(distinct)
    assert duplicates == len(sends) - len(distinct)
    assert sum(r["unknownCards"] for r in results) == 0
    assert sum(r.get("conflicts", 0) for r in results) == 0
    store: Store = apps[1].extensions["aih_cds"].store
    with store.sessions() as session:
        rows = session.execute(select(Feedback.card_uuid, Feedback.outcome)).all()
    assert sorted(rows) == sorted((i["card"], i["outcome"]) for i in distinct)


def feedback_item(card: dict[str, Any], outcome: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "card": card["uuid"],
        "outcome": outcome,
        "outcomeTimestamp": "2026-06-01T12:05:00Z",
    }
    if outcome == "accepted":
        item["acceptedSuggestions"] = [{"id": card["suggestions"][0]["uuid"]}]
    else:
        item["overrideReason"] = {"reason": card["overrideReasons"][0]}
    return item


def test_purge_removes_only_rows_past_retention(
    pg_url: str, app_factory: Callable[..., Flask]
) -> None:
    app = app_factory(database_url=pg_url)
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    card = app.test_client().post("/cds-services/aih-order-sign", json=body).get_json()["cards"][0]
    app.test_client().post(
        "/cds-services/aih-order-sign/feedback",
        json={"feedback": [feedback_item(card, "overridden")]},
    )
    store: Store = app.extensions["aih_cds"].store
    assert store.purge(f.NOW + timedelta(days=29), card_log_days=30, feedback_days=30).cards == 0
    assert store.count_rows() == (1, 1)
    report = store.purge(f.NOW + timedelta(days=31), card_log_days=60, feedback_days=30)
    assert (report.cards, report.feedback, store.count_rows()) == (0, 1, (1, 0))
    report = store.purge(f.NOW + timedelta(days=61), card_log_days=60, feedback_days=0)
    assert (report.cards, store.count_rows()) == (1, (0, 0))
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(CardLog)) == 0


def test_replay_cache_shared_by_two_instances_admits_a_jti_once(pg_url: str) -> None:
    """CDS_REPLAY_CACHE=database on PostgreSQL: a client JWT id raced by many threads through two
    replicas' caches is accepted exactly once; another issuer's identical jti is its own."""
    instances = [Store(pg_url, b"key") for _ in range(2)]
    instances[0].create_schema()
    caches = [DatabaseReplayCache(store) for store in instances]
    start = threading.Barrier(THREADS)

    def use(index: int) -> bool:
        start.wait()
        return caches[index % 2].seen_before("race", "https://ehr.example", expires_at=4e9)

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(use, range(THREADS)))
    assert sorted(answers) == [False] + [True] * (THREADS - 1)
    assert caches[1].seen_before("race", "https://other-ehr.example", expires_at=4e9) is False
    assert caches[0].seen_before("race", "https://other-ehr.example", expires_at=4e9) is True
