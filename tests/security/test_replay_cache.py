"""The shared (database) replay cache: one jti is accepted once across every instance."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from cds_service.common.settings import SettingsError
from cds_service.storage.store import DatabaseReplayCache, SeenJti, Store
from tests import factories as f
from tests.security.support import SANDBOX_PRIVATE, SANDBOX_PUBLIC_JWKS, mint

SANDBOX_ISS = "https://sandbox.cds-hooks.org"
PATH = "/cds-services/aih-order-sign"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def store(tmp_path: Path) -> Store:
    shared = Store(f"sqlite:///{tmp_path / 'shared.sqlite'}", b"key")
    shared.create_schema()
    return shared


def rows(db: Store) -> int:
    with db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(SeenJti)) or 0)


def test_jti_is_remembered_until_it_expires(tmp_path: Path) -> None:
    db = store(tmp_path)
    clock = Clock(1_000_000.0)
    cache = DatabaseReplayCache(db, clock=clock)
    assert cache.seen_before("j1", SANDBOX_ISS, expires_at=1_000_360.0) is False
    assert cache.seen_before("j1", SANDBOX_ISS, expires_at=1_000_360.0) is True
    assert cache.seen_before("j1", "https://other-ehr.example", expires_at=1_000_360.0) is False
    clock.now = 1_000_361.0  # both expired: purged, and the jti may be used again
    assert cache.seen_before("j2", SANDBOX_ISS, expires_at=1_000_700.0) is False
    assert rows(db) == 1
    assert cache.seen_before("j1", SANDBOX_ISS, expires_at=1_000_700.0) is False


def test_instances_sharing_the_database_see_each_others_jti(tmp_path: Path) -> None:
    first = DatabaseReplayCache(store(tmp_path))
    second = DatabaseReplayCache(store(tmp_path))
    assert first.seen_before("j1", SANDBOX_ISS, expires_at=4e9) is False
    assert second.seen_before("j1", SANDBOX_ISS, expires_at=4e9) is True


def test_concurrent_first_uses_admit_exactly_one(tmp_path: Path) -> None:
    caches = [DatabaseReplayCache(store(tmp_path)) for _ in range(2)]
    start = threading.Barrier(8)
    answers: list[bool] = []

    def use(index: int) -> None:
        start.wait()
        answers.append(caches[index % 2].seen_before("race", SANDBOX_ISS, expires_at=4e9))

    threads = [threading.Thread(target=use, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [False] + [True] * 7


def two_instances(
    app_factory: Callable[..., Flask], tmp_path: Path, replay_cache: str, **extra: Any
) -> tuple[Flask, Flask]:
    trusted = json.dumps([{"iss": SANDBOX_ISS, "jwks": SANDBOX_PUBLIC_JWKS}])
    settings: dict[str, Any] = {
        "auth": True,
        "trusted_issuers": trusted,
        "database_url": f"sqlite:///{tmp_path / 'replicas.sqlite'}",
        "public_base_url": "https://cds.example.org",
        "replay_cache": replay_cache,
        "uuid_factory": lambda: str(uuid.uuid4()),  # both replicas write one card log
        **extra,
    }
    return app_factory(**settings), app_factory(**settings)


def call(app: Flask, token: str) -> int:
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    headers = {"Authorization": f"Bearer {token}"}
    return int(app.test_client().post(PATH, json=body, headers=headers).status_code)


def test_replay_to_another_replica_is_refused_with_the_database_cache(
    app_factory: Callable[..., Flask], tmp_path: Path
) -> None:
    first, second = two_instances(app_factory, tmp_path, "database")
    token = mint(SANDBOX_PRIVATE, iss=SANDBOX_ISS, aud="https://cds.example.org" + PATH)
    assert call(first, token) == 200
    assert call(second, token) == 401


def test_the_in_process_cache_cannot_see_another_replica(
    app_factory: Callable[..., Flask], tmp_path: Path
) -> None:
    """Why the shared cache exists: per-process memory lets a replay through a second replica."""
    first, second = two_instances(app_factory, tmp_path, "memory")
    token = mint(SANDBOX_PRIVATE, iss=SANDBOX_ISS, aud="https://cds.example.org" + PATH)
    assert call(first, token) == 200
    assert call(second, token) == 200
    assert call(second, token) == 401


def test_several_serving_processes_share_the_database_cache_by_default(
    app_factory: Callable[..., Flask], tmp_path: Path
) -> None:
    """``aih-cds serve --workers N`` tells the app how many processes serve it."""
    first, second = two_instances(app_factory, tmp_path, "", serving_processes=2)
    token = mint(SANDBOX_PRIVATE, iss=SANDBOX_ISS, aud="https://cds.example.org" + PATH)
    assert call(first, token) == 200
    assert call(second, token) == 401


def test_memory_cache_with_several_processes_stops_start_up(
    app_factory: Callable[..., Flask], tmp_path: Path
) -> None:
    with pytest.raises(SettingsError, match="CDS_REPLAY_CACHE=memory with 3 serving processes"):
        two_instances(app_factory, tmp_path, "memory", serving_processes=3)


def test_unknown_replay_cache_setting_is_refused(app_factory: Callable[..., Flask]) -> None:
    with pytest.raises(SettingsError, match="CDS_REPLAY_CACHE"):
        app_factory(auth=True, replay_cache="redis")
