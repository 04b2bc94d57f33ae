"""The service as it is served (several processes): a replayed token passes no worker.

Each request goes on a fresh connection, so the worker processes share the load. With the
replay cache in process memory a replay reaching the other worker would be accepted; the served
application must pick the database cache by itself, so exactly one call succeeds. Both ways of
serving are run: ``aih-cds serve`` (with and without ``--workers``) and the container's command,
``gunicorn -c deploy/gunicorn.conf.py``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import factories as f
from tests.security.served import free_port, gunicorn_served, serving
from tests.security.support import SANDBOX_PRIVATE, SANDBOX_PUBLIC_JWKS, mint

ISS = "https://sandbox.cds-hooks.org"
BASE = "https://cds.example.org"
PATH = "/cds-services/aih-order-sign"


def auth_env(tmp_path: Path) -> dict[str, str]:
    return {
        "CDS_AUTH": "on",
        "CDS_TRUSTED_ISSUERS": json.dumps([{"iss": ISS, "jwks": SANDBOX_PUBLIC_JWKS}]),
        "CDS_PUBLIC_BASE_URL": BASE,
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'served.sqlite'}",
        "CDS_PATIENT_HASH_KEY": "served-test",
        "CDS_WORKERS": "2",
    }


@pytest.fixture(params=[["--workers", "2"], []], ids=["workers-2", "default-workers"])
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "cds_service.cli", "serve", "--port", str(port)]
    with serving([*command, *request.param], auth_env(tmp_path), port, "aih-cds serve") as url:
        yield url


def replay(url: str, times: int) -> list[int]:
    token = mint(SANDBOX_PRIVATE, iss=ISS, aud=BASE + PATH)
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    statuses = []
    for _ in range(times):
        with requests.Session() as fresh_connection:
            answer = fresh_connection.post(
                url + PATH, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
        statuses.append(answer.status_code)
    return statuses


def test_a_token_is_accepted_by_exactly_one_call_across_workers(served: str) -> None:
    assert sorted(replay(served, 8)) == [200] + [401] * 7


def test_the_container_command_accepts_a_replayed_token_once(tmp_path: Path) -> None:
    with gunicorn_served(auth_env(tmp_path)) as url:
        assert sorted(replay(url, 12)) == [200] + [401] * 11
