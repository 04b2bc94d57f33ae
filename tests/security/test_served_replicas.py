"""The service as it is served (several processes): a replayed token passes no worker.

Each request goes on a fresh connection, several at once, so the worker processes share the
load. With the replay cache in process memory a replay reaching the other worker would be
accepted; the served application must pick the database cache by itself, so exactly one call
succeeds. Both ways of serving are run: ``aih-cds serve`` (with and without ``--workers``) and the
container's command, ``gunicorn -c deploy/gunicorn.conf.py``. Each test proves that both workers
answered: each worker counts the calls it answered in its own Prometheus file
(``counter_<pid>.db`` in ``PROMETHEUS_MULTIPROC_DIR``), and calls are sent until both files count
one (bounded). Were every call answered by one worker, even a memory cache would pass.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector

from tests import factories as f
from tests.security.served import free_port, gunicorn_served, serving
from tests.security.support import SANDBOX_PRIVATE, SANDBOX_PUBLIC_JWKS, mint

ISS = "https://sandbox.cds-hooks.org"
BASE = "https://cds.example.org"
PATH = "/cds-services/aih-order-sign"


@dataclass
class Served:
    url: str
    metrics_dir: Path


def auth_env(tmp_path: Path) -> dict[str, str]:
    return {
        "CDS_AUTH": "on",
        "CDS_TRUSTED_ISSUERS": json.dumps([{"iss": ISS, "jwks": SANDBOX_PUBLIC_JWKS}]),
        "CDS_PUBLIC_BASE_URL": BASE,
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'served.sqlite'}",
        "CDS_PATIENT_HASH_KEY": "served-test",
        "CDS_WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }


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


@pytest.fixture(params=[["--workers", "2"], []], ids=["workers-2", "default-workers"])
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    port = free_port()
    env = auth_env(tmp_path)
    command = [sys.executable, "-m", "cds_service.cli", "serve", "--port", str(port)]
    with serving([*command, *request.param], env, port, "aih-cds serve") as url:
        yield Served(url, Path(env["PROMETHEUS_MULTIPROC_DIR"]))


def replay_until_both_workers_answered(served: Served) -> list[int]:
    """Statuses of one token's calls, 4 at a time, until both workers have answered (bounded)."""
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
        for _ in range(25):
            statuses += pool.map(call, range(4))
            if len(statuses) >= 12 and len(calls_answered_by_each_worker(served.metrics_dir)) == 2:
                break
    answered = calls_answered_by_each_worker(served.metrics_dir)
    assert len(answered) == 2, f"one worker answered every call: {answered}"
    assert sum(answered.values()) == len(statuses)
    return statuses


def test_a_token_is_accepted_by_exactly_one_call_across_workers(served: Served) -> None:
    statuses = replay_until_both_workers_answered(served)
    assert sorted(statuses) == [200] + [401] * (len(statuses) - 1)


def test_the_container_command_accepts_a_replayed_token_once(tmp_path: Path) -> None:
    env = auth_env(tmp_path)
    with gunicorn_served(env) as url:
        statuses = replay_until_both_workers_answered(
            Served(url, Path(env["PROMETHEUS_MULTIPROC_DIR"]))
        )
    assert sorted(statuses) == [200] + [401] * (len(statuses) - 1)
