"""Real gunicorn, two workers, deploy/gunicorn.conf.py: /metrics adds up every worker's counts,
stale multiprocess files are cleared at start, logs are JSON lines without patient ids."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests import factories as f
from tests.integration.ports import free_port
from tests.integration.serving.gunicorn_process import HTTP_TIMEOUT, gunicorn_serving, wait_until_up

pytestmark = pytest.mark.integration
PATIENT = "patient-7f3c9e-unique"


@dataclass
class Served:
    base: str
    metrics_dir: Path
    log: Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over from an earlier run")
    port = free_port()
    env = {
        **os.environ,
        "CDS_AUTH": "off",
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cards.sqlite'}",
        "CDS_PATIENT_HASH_KEY": "test-key",
        "CDS_BIND": f"127.0.0.1:{port}",
        "CDS_WORKERS": "2",
        "CDS_THREADS": "4",
        "CDS_LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    log = tmp_path / "server.log"
    with gunicorn_serving(env, log) as base:
        yield Served(base, metrics_dir, log)


def worker_pids(metrics_dir: Path) -> set[str]:
    return {p.stem.rsplit("_", 1)[1] for p in metrics_dir.glob("counter_*.db")}


def samples(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = requests.get(f"{base}/metrics", timeout=HTTP_TIMEOUT).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= ls)


def discovery(base: str) -> int:
    # A new connection per request, so the two workers share the load.
    return requests.get(
        f"{base}/cds-services", headers={"Connection": "close"}, timeout=HTTP_TIMEOUT
    ).status_code


def test_metrics_add_up_over_two_workers(served: Served) -> None:
    assert not (served.metrics_dir / "counter_999999.db").exists()
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        for _ in range(50):  # until both workers have answered (bounded)
            statuses = list(pool.map(lambda _: discovery(served.base), range(16)))
            assert statuses == [200] * 16
            sent += 16
            if len(worker_pids(served.metrics_dir)) >= 2:
                break
    assert len(worker_pids(served.metrics_dir)) == 2

    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch(), pid=PATIENT)
    body["prefetch"]["patient"]["id"] = PATIENT
    cards: list[dict[str, Any]] = []
    for _ in range(6):
        response = requests.post(
            f"{served.base}/cds-services/aih-order-sign",
            json=body,
            headers={"Connection": "close"},
            timeout=HTTP_TIMEOUT,
        )
        assert response.status_code == 200
        cards += response.json()["cards"]
    requests.post(f"{served.base}/cds-services/nope", json=body, timeout=HTTP_TIMEOUT)

    # Whichever worker answers /metrics, the totals are those of both.
    for _ in range(4):
        found = samples(served.base)
        assert value(found, "cds_http_requests_total", endpoint="discovery", status="200") == sent
        assert (
            value(
                found, "cds_http_requests_total", endpoint="call_service", service="aih-order-sign"
            )
            == 6
        )
        assert value(found, "cds_http_requests_total", service="unknown", status="404") == 1
        assert value(found, "cds_cards_total", service="aih-order-sign") == len(cards) > 0
        assert value(found, "cds_http_request_duration_seconds_count", endpoint="discovery") == sent

    lines = [
        json.loads(line) for line in served.log.read_text().splitlines() if line.startswith("{")
    ]
    hook_lines = [line for line in lines if line.get("service") == "aih-order-sign"]
    assert {line["hook_instance"] for line in hook_lines} == {body["hookInstance"]}
    assert all(line["request_id"] for line in hook_lines)
    assert PATIENT not in served.log.read_text()


def test_aih_cds_serve_uses_the_same_configuration(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "CDS_AUTH": "off",
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cards.sqlite'}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    server = subprocess.Popen(  # noqa: S603 - fixed command line
        [sys.executable, "-m", "cds_service.cli", "serve", "--port", str(port), "--workers", "1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, server)
        assert requests.get(f"{base}/readyz", timeout=HTTP_TIMEOUT).json()["database"] is True
        assert discovery(base) == 200
        assert value(samples(base), "cds_http_requests_total", endpoint="discovery") == 1
        assert list((tmp_path / "metrics").glob("counter_*.db"))  # multiprocess mode is on
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
