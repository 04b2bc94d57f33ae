"""Real gunicorn with the deployed configuration (``deploy/gunicorn.conf.py``), for tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.conftest import REPO

HTTP_TIMEOUT = 30  # generous: a busy 2-core machine is slow, and no test measures time


@contextmanager
def gunicorn_serving(env: Mapping[str, str], log: Path) -> Iterator[str]:
    """Serve with ``env`` (its ``CDS_BIND`` on 127.0.0.1), output to ``log``; yields the base
    URL once /healthz answers, and stops the server (SIGTERM) afterwards."""
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"],
            cwd=REPO,
            env=dict(env),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://{env['CDS_BIND']}"
    try:
        wait_until_up(base, server)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def wait_until_up(base: str, server: subprocess.Popen[bytes]) -> None:
    """Poll /healthz until it answers (workers boot slowly on a busy machine), at most 2 min."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}")
        try:
            if requests.get(f"{base}/healthz", timeout=HTTP_TIMEOUT).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not come up")
