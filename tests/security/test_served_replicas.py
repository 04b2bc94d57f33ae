"""``aih-cds serve --workers 2`` (gunicorn, two processes): a replayed token passes no worker.

Each request goes on a fresh connection, so the two worker processes share the load. With
the replay cache in process memory a replay reaching the other worker would be accepted; the
served application must pick the database cache by itself, so exactly one call succeeds.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import factories as f
from tests.security.support import SANDBOX_PRIVATE, SANDBOX_PUBLIC_JWKS, mint

ISS = "https://sandbox.cds-hooks.org"
BASE = "https://cds.example.org"
PATH = "/cds-services/aih-order-sign"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "CDS_AUTH": "on",
        "CDS_TRUSTED_ISSUERS": json.dumps([{"iss": ISS, "jwks": SANDBOX_PUBLIC_JWKS}]),
        "CDS_PUBLIC_BASE_URL": BASE,
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'served.sqlite'}",
        "CDS_PATIENT_HASH_KEY": "served-test",
    }
    env.pop("CDS_REPLAY_CACHE", None)
    command = [sys.executable, "-m", "cds_service.cli", "serve", "--port", str(port)]
    server = subprocess.Popen(  # noqa: S603 - our own CLI
        [*command, "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # up to ~30 s for both workers to import and load the rules
            if server.poll() is not None:
                pytest.fail(f"aih-cds serve exited with {server.returncode}")
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail("aih-cds serve did not answer /healthz")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_token_is_accepted_by_exactly_one_call_across_workers(served: str) -> None:
    token = mint(SANDBOX_PRIVATE, iss=ISS, aud=BASE + PATH)
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    statuses = []
    for _ in range(8):
        with requests.Session() as fresh_connection:
            answer = fresh_connection.post(
                served + PATH, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
        statuses.append(answer.status_code)
    assert sorted(statuses) == [200] + [401] * 7
