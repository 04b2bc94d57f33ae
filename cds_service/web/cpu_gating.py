"""Every request (but the probes) holds its worker's CPU gate while the application runs it.

A WSGI middleware around the Flask application (``ops/cpu_gate.py`` explains the gate). The
request body is read from the client *before* the gate is taken: a client that trickles its
body must not hold every other call of the worker. The gate is let go when the application has
built its answer; gunicorn writes it to the client afterwards, outside the gate.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from cds_service.common.settings import Settings
from cds_service.ops.cpu_gate import CpuGate, holding
from cds_service.ops.metrics import metrics

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# Liveness, readiness and scrapes answer at once, even when hook calls queue for the gate.
UNGATED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def install_cpu_gate(app: Flask, settings: Settings) -> CpuGate | None:
    """Gate the application's requests when the worker serves several at once (CDS_CPU_GATE,
    CDS_THREADS > 1); returns the gate, None when there is none."""
    if not settings.cpu_gate_active:
        return None
    gate = CpuGate(on_wait=_observe_wait)
    app.wsgi_app = CpuGated(app.wsgi_app, gate, settings.max_request_bytes)  # type: ignore[method-assign]
    return gate


def _observe_wait(seconds: float) -> None:
    metrics().cpu_gate_wait.observe(seconds)


class CpuGated:
    def __init__(self, app: WsgiApp, gate: CpuGate, max_body_bytes: int) -> None:
        self.app = app
        self.gate = gate
        self.max_body_bytes = max_body_bytes

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in UNGATED_PATHS:
            return self.app(environ, start_response)
        read_body_first(environ, self.max_body_bytes)
        with holding(self.gate):
            return self.app(environ, start_response)


def read_body_first(environ: dict[str, Any], limit: int) -> None:
    """Replace ``wsgi.input`` by the body already read (at most ``limit`` + 1 bytes: one more
    than allowed lets the application answer 413 as it would have). A body declared larger than
    ``limit`` is not read: the application refuses it from the header alone."""
    declared = environ.get("CONTENT_LENGTH") or ""
    stream = environ.get("wsgi.input")
    if stream is None:
        return
    if declared:
        try:
            size = int(declared)
        except ValueError:
            return  # the application answers the malformed header
        if size <= 0 or size > limit:
            return
        environ["wsgi.input"] = io.BytesIO(stream.read(size))
    elif environ.get("wsgi.input_terminated"):  # chunked: the server knows where it ends
        environ["wsgi.input"] = io.BytesIO(stream.read(limit + 1))
