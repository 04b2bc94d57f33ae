"""Under gunicorn as shipped (2 workers; gthread, CDS_THREADS and the CPU gate at their
defaults): 16 calls whose FHIR server trickles its answer do not stop a call to a healthy
server, and their connections are closed at the deadline."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests import factories as f
from tests.security.served import gunicorn_served
from tests.security.upstreams import healthy_server, trickle_server

BUDGET_S = 2.0
PATH = "/cds-services/aih-order-sign"


def hook_call(
    url: str, fhir_server: str, timeout_s: float = BUDGET_S * 8
) -> tuple[int, str, float]:
    body = f.hook_request(drafts=(f.mmf_draft(),), fhirServer=fhir_server)
    started = time.monotonic()
    with requests.Session() as fresh_connection:
        answer = fresh_connection.post(url + PATH, json=body, timeout=timeout_s)
    return answer.status_code, answer.text, time.monotonic() - started


def test_a_healthy_server_is_answered_while_sixteen_slow_calls_are_in_flight(
    tmp_path: Path,
) -> None:
    env = {
        "CDS_AUTH": "off",
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'slow.sqlite'}",
        "CDS_FHIR_TIMEOUT_S": str(BUDGET_S),
        "CDS_PATIENT_HASH_KEY": "slow-test",
    }
    with (
        trickle_server() as slow,
        healthy_server() as healthy,
        gunicorn_served(env) as url,
        ThreadPoolExecutor(max_workers=16) as clients,
    ):
        hook_call(url, healthy)  # both workers warm (imports, first connection)
        slow_calls = [clients.submit(hook_call, url, slow.url) for _ in range(16)]
        assert slow.wait_until(lambda s: s.open_connections > 0), "no slow call reached the server"
        # A 200 means its fetch finished within the service's budget (else 412); the client
        # gives up well before the slow calls would free every thread of a worker (a bound,
        # not a measurement; the guard's waiting room keeps threads free for other servers).
        status, text, elapsed = hook_call(url, healthy, timeout_s=BUDGET_S + 3.0)
        print(f"healthy call while 16 slow calls in flight: HTTP {status} in {elapsed:.2f} s")
        assert status == 200, text
        slow_answers = [call.result() for call in slow_calls]
        print("slow calls:", Counter((s, _kind(t)) for s, t, _ in slow_answers))
        print(f"slowest slow call: {max(e for _, _, e in slow_answers):.2f} s")
        assert {s for s, _, _ in slow_answers} == {412}
        # Nothing keeps reading the trickle after the calls were answered.
        assert slow.wait_until(lambda s: s.open_connections == 0, timeout_s=5.0)


def _kind(text: str) -> str:
    for word in ("budget", "in progress", "failed repeatedly"):
        if word in text:
            return word
    return text[:80]
