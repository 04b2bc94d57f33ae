"""The replay-cache table unavailable: a per-process cache stands in for CDS_REPLAY_FALLBACK_S
seconds of continuous failure, then tokens are refused; tokens first seen during the outage
stay refused in this process once the table answers again."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds_service.security.client_auth import AuthError
from cds_service.storage.store import DatabaseReplayCache, Store
from tests.security.test_replay_cache import Clock

ISS = "https://ehr.example"


def unavailable_store(tmp_path: Path) -> tuple[Store, Path]:
    """A store whose database file is a directory: every query fails, as root too."""
    path = tmp_path / "replay.sqlite"
    path.mkdir()
    return Store(f"sqlite:///{path}", b"key"), path


def test_outage_falls_back_per_process_then_refuses(tmp_path: Path) -> None:
    store, _ = unavailable_store(tmp_path)
    clock = Clock(1_000_000.0)
    cache = DatabaseReplayCache(store, clock=clock, fallback_s=60)
    assert cache.seen_before("j1", ISS, expires_at=1_000_300.0) is False
    assert cache.seen_before("j1", ISS, expires_at=1_000_300.0) is True  # replay still caught
    clock.now += 59
    assert cache.seen_before("j2", ISS, expires_at=1_000_300.0) is False
    clock.now += 1
    with pytest.raises(AuthError, match="replay-cache table unavailable for 60 s"):
        cache.seen_before("j3", ISS, expires_at=1_000_300.0)


def test_zero_fallback_refuses_at_once(tmp_path: Path) -> None:
    store, _ = unavailable_store(tmp_path)
    cache = DatabaseReplayCache(store, fallback_s=0)
    with pytest.raises(AuthError, match="token refused"):
        cache.seen_before("j1", ISS, expires_at=4e9)


def test_tokens_seen_during_the_outage_stay_refused_after_it(tmp_path: Path) -> None:
    store, path = unavailable_store(tmp_path)
    clock = Clock(1_000_000.0)
    cache = DatabaseReplayCache(store, clock=clock, fallback_s=60)
    assert cache.seen_before("during", ISS, expires_at=1_000_300.0) is False
    path.rmdir()  # the database comes back
    store.create_schema()
    assert cache.seen_before("during", ISS, expires_at=1_000_300.0) is True
    assert cache.seen_before("after", ISS, expires_at=1_000_300.0) is False
    assert cache.seen_before("after", ISS, expires_at=1_000_300.0) is True
