"""The shipped gthread worker class sets its process's GIL switch interval (CDS_GIL_SWITCH_MS):
checked in a real gunicorn worker, which reports the interval it runs with."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import requests

from tests.security.served import free_port, serving

WORKER = "cds_service.ops.gunicorn_worker.SecureHeadersThreadWorker"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A WSGI app for the worker under test: the interval its thread runs with, in ms."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{sys.getswitchinterval() * 1000:.3f}".encode()]


@pytest.mark.parametrize(("setting", "expected_ms"), [(None, 1.0), ("2.5", 2.5)])
def test_the_worker_runs_with_the_configured_switch_interval(
    setting: str | None, expected_ms: float
) -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        WORKER,
        "--threads",
        "2",
        "--no-control-socket",
        f"{__name__}:app",
    ]
    env = {"CDS_GIL_SWITCH_MS": setting} if setting else {}
    with serving(command, env, port, "gunicorn") as url:
        answered = float(requests.get(url + "/", timeout=20).text)
    assert answered == expected_ms
