"""Degrade, don't fail: the spool keeps what the card log cannot take, in order, bounded, across
restarts; hook calls answer through a database outage; feedback is refused with 503 and
Retry-After, never 500; readiness reports the database without depending on it."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from cds_service.storage.card_log import CardLogWriter, default_spool_dir
from cds_service.storage.spool import Spool, SpoolFull
from cds_service.storage.store import CardLog, CardLogEntry, Feedback, LoggedCard, Store
from tests import factories as f
from tests.security.test_replay_cache import Clock

ORDER_SIGN = "/cds-services/aih-order-sign"


def entry(card_uuid: str) -> dict[str, Any]:
    return {"cards": [{"uuid": card_uuid}], "suggestions": []}


def dropped_full() -> float:
    return REGISTRY.get_sample_value("cds_card_log_dropped_total", {"reason": "full"}) or 0.0


def logged_card(card_uuid: str) -> LoggedCard:
    return LoggedCard(card_uuid, "mmf-teratogenicity", "pregnant", "critical", ())


def uuids_of(spool: Spool) -> list[str]:
    return [item.payload["cards"][0]["uuid"] for item in spool.head(1000)]


def test_spool_keeps_order_and_survives_reopening(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_entries=10, max_age_s=60)
    for n in range(3):
        spool.append(entry(f"c{n}"), [f"c{n}"])
    reopened = Spool(tmp_path, max_entries=10, max_age_s=60)  # a restarted process
    assert uuids_of(reopened) == ["c0", "c1", "c2"]
    assert [p["cards"][0]["uuid"] for p in reopened.payloads_holding(["x", "c1"])] == ["c1"]
    assert reopened.payloads_holding(["x"]) == []
    reopened.remove(item.id for item in reopened.head(2))
    assert uuids_of(spool) == ["c2"]
    assert spool.payloads_holding(["c0", "c1"]) == []


def test_full_spool_keeps_the_oldest_and_counts_the_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_entries=2, max_age_s=60)
    spool.append(entry("old-1"), ["old-1"])
    spool.append(entry("old-2"), ["old-2"])
    for n in range(3):
        with pytest.raises(SpoolFull):
            spool.append(entry(f"new-{n}"), [f"new-{n}"])
    assert uuids_of(spool) == ["old-1", "old-2"]
    status = spool.status()
    assert (status.depth, status.dropped) == (2, 3)
    assert Spool(tmp_path, max_entries=2, max_age_s=60).status().dropped == 3  # persisted


def test_entries_past_the_age_limit_are_dropped_and_counted(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    spool = Spool(tmp_path, max_entries=10, max_age_s=60, clock=clock)
    spool.append(entry("old"), ["old"])
    clock.now = 1050.0
    spool.append(entry("young"), ["young"])
    assert spool.status().oldest_age_s == 50.0
    clock.now = 1061.0
    assert spool.expire() == 1
    assert uuids_of(spool) == ["young"]
    assert spool.status().dropped == 1
    assert spool.payloads_holding(["old"]) == []


def test_default_spool_directory_is_per_database(tmp_path: Path) -> None:
    assert default_spool_dir(f"sqlite:///{tmp_path}/a.sqlite") == Path(f"{tmp_path}/a.sqlite-spool")
    one = default_spool_dir("postgresql://u:secret@db1:5432/cds")
    assert one != default_spool_dir("postgresql://u:secret@db2:5432/cds")
    assert "secret" not in str(one)


# ------------------------------------------------------------------- the service


@contextmanager
def write_lock(database: Path) -> Iterator[None]:
    """Another connection holds SQLite's write lock: the service's writes time out (as root too,
    where file permissions would not stop anything)."""
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.fixture
def degradable(app_factory: Callable[..., Flask], tmp_path: Path) -> Flask:
    return app_factory(
        uuid_factory=lambda: uuid.uuid4().hex,
        database_query_timeout_s=0.2,
        spool_retry_s=0.1,
    )


def card_log(app: Flask) -> CardLogWriter:
    writer: CardLogWriter = app.extensions["aih_cds"].card_log
    return writer


def logged_uuids(store: Store) -> list[str]:
    with store.sessions() as session:
        return list(session.scalars(select(CardLog.uuid)))


def wait_until_drained(writer: CardLogWriter) -> None:
    for _ in range(200):  # bounded: 20 s at most
        if writer.spool.status().depth == 0:
            return
        time.sleep(0.1)
    raise AssertionError("spool not drained")


def order_sign(app: Flask) -> list[dict[str, Any]]:
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    response = app.test_client().post(ORDER_SIGN, json=body)
    assert response.status_code == 200
    cards: list[dict[str, Any]] = response.get_json()["cards"]
    assert cards
    return cards


def test_hook_calls_answer_through_an_outage_and_every_card_is_logged_once(
    degradable: Flask, tmp_path: Path
) -> None:
    writer = card_log(degradable)
    dropped_before = dropped_full()
    with write_lock(tmp_path / "cards.sqlite"):
        issued = [card["uuid"] for _ in range(4) for card in order_sign(degradable)]
        assert writer.spool.status().depth == 4
        ready = degradable.test_client().get("/readyz")
        assert ready.status_code == 200
        assert ready.get_json()["spoolDepth"] == 4
        assert ready.get_json()["spoolWritable"] is True
    wait_until_drained(writer)
    assert sorted(logged_uuids(writer.store)) == sorted(issued)
    assert dropped_full() == dropped_before
    assert order_sign(degradable)  # the database again, directly
    assert writer.spool.status().depth == 0


def test_replay_skips_entries_already_in_the_database(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", b"key")
    store.create_schema()
    writer = CardLogWriter(
        store, Spool(tmp_path / "spool", max_entries=10, max_age_s=60), retry_interval_s=0.1
    )
    logged = store.card_log_entry("svc", "hook-1", "pt", [logged_card("a")], f.NOW)
    assert logged is not None
    store.write_card_log(logged)  # committed, but the acknowledgement was "lost"
    writer.spool.append(logged.to_json(), logged.card_uuids)
    second = store.card_log_entry("svc", "hook-2", "pt", [logged_card("b")], f.NOW)
    assert second is not None
    writer.spool.append(second.to_json(), second.card_uuids)
    assert writer.replay_once() == 2
    assert sorted(logged_uuids(store)) == ["a", "b"]
    assert CardLogEntry.from_json(second.to_json()) == second


def test_a_full_spool_drops_new_entries_loudly_and_answers_anyway(
    app_factory: Callable[..., Flask], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_factory(
        uuid_factory=lambda: uuid.uuid4().hex,
        database_query_timeout_s=0.2,
        spool_max_entries=1,
        spool_retry_s=30,
    )
    before = dropped_full()
    with write_lock(tmp_path / "cards.sqlite"):
        order_sign(app)
        order_sign(app)  # answered although its cards cannot be recorded anywhere
        ready = app.test_client().get("/readyz").get_json()
        assert (ready["spoolDepth"], ready["dropped"], ready["spoolWritable"]) == (1, 1, False)
    assert dropped_full() == before + 1
    assert "card-log entry DROPPED (full" in caplog.text
    card_log(app).stop()


def test_feedback_during_an_outage_is_503_with_retry_after_and_stored_on_retry(
    degradable: Flask, tmp_path: Path
) -> None:
    card = order_sign(degradable)[0]
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": f.NOW.isoformat()}
    item["overrideReason"] = {"reason": card["overrideReasons"][0]}
    client = degradable.test_client()
    with write_lock(tmp_path / "cards.sqlite"):
        refused = client.post(f"{ORDER_SIGN}/feedback", json={"feedback": [item]})
        spooled = order_sign(degradable)[0]
    assert refused.status_code == 503
    assert refused.headers["Retry-After"].isdigit()
    assert refused.get_json()["resourceType"] == "OperationOutcome"
    assert refused.get_json()["issue"][0]["code"] == "transient"
    with card_log(degradable).store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Feedback)) == 0
    retried = client.post(f"{ORDER_SIGN}/feedback", json={"feedback": [item]})
    assert (retried.status_code, retried.get_json()["stored"]) == (200, 1)
    wait_until_drained(card_log(degradable))
    later = {**item, "card": spooled["uuid"]}
    assert client.post(f"{ORDER_SIGN}/feedback", json={"feedback": [later]}).get_json() == {
        "stored": 1,
        "duplicates": 0,
        "unknownCards": 0,
    }


def test_feedback_for_a_card_still_in_the_spool_is_503(degradable: Flask, tmp_path: Path) -> None:
    writer = card_log(degradable)
    writer.stop()  # nothing replays: the card stays in the spool
    with write_lock(tmp_path / "cards.sqlite"):
        card = order_sign(degradable)[0]
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": f.NOW.isoformat()}
    item["overrideReason"] = {"reason": card["overrideReasons"][0]}
    answer = degradable.test_client().post(f"{ORDER_SIGN}/feedback", json={"feedback": [item]})
    assert answer.status_code == 503  # not "unknown card": the client must send it again
    assert "Retry-After" in answer.headers


def test_a_restarted_service_replays_what_the_previous_one_spooled(
    app_factory: Callable[..., Flask], tmp_path: Path
) -> None:
    settings = {"uuid_factory": lambda: uuid.uuid4().hex, "database_query_timeout_s": 0.2}
    first = app_factory(**settings, spool_retry_s=30)
    with write_lock(tmp_path / "cards.sqlite"):
        issued = [card["uuid"] for _ in range(3) for card in order_sign(first)]
        card_log(first).stop()  # the process ends before replaying anything
        assert card_log(first).spool.status().depth == 3
        assert logged_uuids(card_log(first).store) == []
        # Restarted while the database is still locked, so nothing can be replayed yet: the
        # depth it reports is the previous process's spool (asked any later, replay may race it).
        restarted = app_factory(**settings, spool_retry_s=0.1)
        assert restarted.test_client().get("/readyz").get_json()["spoolDepth"] == 3
    wait_until_drained(card_log(restarted))
    assert sorted(logged_uuids(card_log(restarted).store)) == sorted(issued)


def test_a_colliding_card_uuid_is_dropped_loudly_not_spooled(
    app_factory: Callable[..., Flask],
) -> None:
    first, second = app_factory(), app_factory()  # same database, same deterministic uuids
    before = REGISTRY.get_sample_value("cds_card_log_dropped_total", {"reason": "duplicate-uuid"})
    order_sign(first)
    order_sign(second)  # answered, although its card uuid is already in the log
    after = REGISTRY.get_sample_value("cds_card_log_dropped_total", {"reason": "duplicate-uuid"})
    assert (after or 0) == (before or 0) + 1
    assert card_log(second).spool.status().depth == 0
