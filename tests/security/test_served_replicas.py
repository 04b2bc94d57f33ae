"""``aih-cds serve --workers 2`` (gunicorn, two processes): a replayed token passes no worker.

Each request goes on a fresh connection, several at once, so the two worker processes share
the load. With the replay cache in process memory a replay reaching the other worker would be
accepted; the served application must pick the database cache by itself, so exactly one call
succeeds. The test proves that both workers answered: each worker counts the calls it answered
in its own Prometheus file (``counter_<pid>.db`` in ``PROMETHEUS_MULTIPROC_DIR``), and calls
are sent until both files count one (bounded). Were every call answered by one worker, even a
memory cache would pass.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector

from tests import factories as f
from tests.security.support import SANDBOX_PRIVATE, SANDBOX_PUBLIC_JWKS, mint

ISS = "https://sandbox.cds-hooks.org"
BASE = "https://cds.example.org"
PATH = "/cds-services/aih-order-sign"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    url: str
    metrics_dir: Path


def calls_answered_by_each_worker(metrics_dir: Path) -> dict[str, float]:
    """Hook calls to the service answered so far, by worker pid, from each worker's own file."""
    answered: dict[str, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = path.stem.rsplit("_", 1)[1]
        for family in MultiProcessCollector.merge([str(path)], accumulate=False):
            for sample in family.samples:
                if (
                    sample.name == "cds_http_requests_total"
                    and sample.labels.get("service") == PATH.rsplit("/", 1)[1]
                ):
                    answered[pid] = answered.get(pid, 0.0) + sample.value
    return {pid: count for pid, count in answered.items() if count > 0}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    env = {
        **os.environ,
        "CDS_AUTH": "on",
        "CDS_TRUSTED_ISSUERS": json.dumps([{"iss": ISS, "jwks": SANDBOX_PUBLIC_JWKS}]),
        "CDS_PUBLIC_BASE_URL": BASE,
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'served.sqlite'}",
        "CDS_PATIENT_HASH_KEY": "served-test",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
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
        yield Served(url, metrics_dir)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_token_is_accepted_by_exactly_one_call_across_workers(served: Served) -> None:
    token = mint(SANDBOX_PRIVATE, iss=ISS, aud=BASE + PATH)
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())

    def call(_: int) -> int:
        with requests.Session() as fresh_connection:
            answer = fresh_connection.post(
                served.url + PATH,
                json=body,
                headers={"Authorization": f"Bearer {token}", "Connection": "close"},
                timeout=30,
            )
        return answer.status_code

    statuses: list[int] = []
    with ThreadPoolExecutor(4) as pool:
        for _ in range(25):  # 4 calls at a time until both workers have answered (bounded)
            statuses += pool.map(call, range(4))
            if len(calls_answered_by_each_worker(served.metrics_dir)) == 2:
                break
    answered = calls_answered_by_each_worker(served.metrics_dir)
    assert len(answered) == 2, f"one worker answered every call: {answered}"
    assert sum(answered.values()) == len(statuses)
    assert sorted(statuses) == [200] + [401] * (len(statuses) - 1)
