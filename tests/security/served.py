"""Start the service the way it is deployed (gunicorn, several workers) on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
GUNICORN_CONF = REPO / "deploy" / "gunicorn.conf.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_health(server: subprocess.Popen[bytes], url: str, what: str) -> None:
    for _ in range(300):  # up to ~30 s for the workers to import and load the rules
        if server.poll() is not None:
            pytest.fail(f"{what} exited with {server.returncode}")
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    pytest.fail(f"{what} did not answer /healthz")


@contextmanager
def serving(command: Sequence[str], env: Mapping[str, str], port: int, what: str) -> Iterator[str]:
    full_env = {**os.environ, **env}
    if "CDS_REPLAY_CACHE" not in env:
        full_env.pop("CDS_REPLAY_CACHE", None)
    server = subprocess.Popen(  # noqa: S603 - our own server
        list(command), env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(server, url, what)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def gunicorn_served(env: Mapping[str, str]) -> Iterator[str]:
    """``gunicorn -c deploy/gunicorn.conf.py``: the container's command, 2 workers, the shipped
    threads and CPU gate (unless ``env`` says otherwise)."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]
    settings = {"CDS_BIND": f"127.0.0.1:{port}", "CDS_WORKERS": "2", **env}
    with serving(command, settings, port, "gunicorn") as url:
        yield url
