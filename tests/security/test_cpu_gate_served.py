"""The CPU gate under gunicorn (one worker, 8 threads): every hook call takes it, probes do not,
and a client that trickles its request body does not hold it (the body is read first)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
import requests

from tests import factories as f
from tests.security.served import gunicorn_served

PATH = "/cds-services/aih-order-sign"
CLIENT_BOUND_S = 20.0  # a bound on a loaded machine, not a measurement


def one_worker(tmp_path: Path, gate: str) -> dict[str, str]:
    return {
        "CDS_AUTH": "off",
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'gate.sqlite'}",
        "CDS_PATIENT_HASH_KEY": "gate-test",
        "CDS_WORKERS": "1",
        "CDS_THREADS": "8",
        "CDS_CPU_GATE": gate,
    }


def _gate_acquisitions(url: str) -> int:
    text = requests.get(url + "/metrics", timeout=CLIENT_BOUND_S).text
    found = re.search(r"^cds_cpu_gate_wait_seconds_count (\S+)$", text, re.MULTILINE)
    return int(float(found.group(1))) if found else 0


def _body() -> dict[str, object]:
    return f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())


def _hook_call(url: str) -> int:
    body = _body()
    return requests.post(url + PATH, json=body, timeout=CLIENT_BOUND_S).status_code


@pytest.mark.parametrize(("switch", "per_call"), [("on", 1), ("off", 0)])
def test_each_hook_call_takes_the_gate_and_probes_never(
    tmp_path: Path, switch: str, per_call: int
) -> None:
    with gunicorn_served(one_worker(tmp_path, switch)) as url:
        for _ in range(3):
            requests.get(url + "/healthz", timeout=CLIENT_BOUND_S)
            requests.get(url + "/readyz", timeout=CLIENT_BOUND_S)
        assert _gate_acquisitions(url) == 0
        assert [_hook_call(url) for _ in range(5)] == [200] * 5
        # Full prefetch, no fetch path: the gate is taken once, when the call starts. The
        # card-log write holds it (SQLite: a short local write; Store.database_wait).
        assert _gate_acquisitions(url) == 5 * per_call


def test_a_client_trickling_its_body_does_not_stop_the_other_calls(tmp_path: Path) -> None:
    body = json.dumps(_body()).encode()
    with gunicorn_served(one_worker(tmp_path, "on")) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=CLIENT_BOUND_S) as slow:
            slow.sendall(
                f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body[: len(body) // 2]
            )
            # Half a body is in; were the gate taken before the body is read, this call (the
            # same worker) would wait for the rest, which is only sent after it is answered.
            assert _hook_call(url) == 200
            slow.sendall(body[len(body) // 2 :])
            answer = slow.makefile("rb").readline()
        assert answer.startswith(b"HTTP/1.1 200"), answer
