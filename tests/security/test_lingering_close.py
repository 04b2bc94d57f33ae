"""A client that reads its answer and keeps the connection open does not stop the worker: under
gunicorn (the shipped configuration, one worker) other calls are answered meanwhile. gunicorn's
own graceful close waited for such a client, up to 2 s each, in the thread that accepts."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import requests

from tests.security.served import gunicorn_served

HOLDERS = 2
CALLS = 5
# gunicorn's linger is 2 s per holder: 4 s for the calls if the accept loop waited; a loaded
# machine answers five health checks well within this
WITHIN_S = 1.5


def _hold_after_answer(port: int) -> socket.socket:
    held = socket.create_connection(("127.0.0.1", port), timeout=20)
    held.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert held.recv(65536).startswith(b"HTTP/1.1 200")
    return held  # never closed until the end of the test


def test_clients_that_keep_their_connection_open_do_not_stop_the_worker(tmp_path: Path) -> None:
    env = {
        "CDS_AUTH": "off",
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'linger.sqlite'}",
        "CDS_PATIENT_HASH_KEY": "linger-test",
        "CDS_WORKERS": "1",
    }
    with gunicorn_served(env) as url:
        port = int(url.rsplit(":", 1)[1])
        held = [_hold_after_answer(port) for _ in range(HOLDERS)]
        try:
            started = time.monotonic()
            answers = [requests.get(url + "/healthz", timeout=20).status_code for _ in range(CALLS)]
            elapsed = time.monotonic() - started
        finally:
            for connection in held:
                connection.close()
    assert answers == [200] * CALLS
    assert elapsed < WITHIN_S
