"""Per-request bookkeeping: request id, hookInstance for the logs, request metrics, access log."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request

from cds_service.ops import tracing
from cds_service.ops.metrics import metrics

log = logging.getLogger("cds_service.access")
REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is reused only if it is short and plain, so it cannot smuggle text into logs.
PROBES = frozenset({"healthz", "readyz", "prometheus_metrics"})
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def note_hook_instance(body: Any) -> None:
    """Remember the call's hookInstance for every log line of this request (never PHI)."""
    value = body.get("hookInstance") if isinstance(body, dict) else None
    if isinstance(value, str) and _SAFE_ID.match(value):
        g.hook_instance = value


def install(app: Flask, known_services: frozenset[str]) -> None:
    metrics()  # created here, in the worker, before it serves and after gunicorn forked it

    @app.before_request
    def start() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _SAFE_ID.match(incoming) else str(uuid.uuid4())
        g.started = time.perf_counter()
        route = request.url_rule.rule if request.url_rule else "unmatched"
        g.trace = tracing.start_server_span(f"{request.method} {route}", dict(request.headers))

    @app.after_request
    def finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = (request.endpoint or "unmatched").rsplit(".", 1)[-1]
        named = (request.view_args or {}).get("service_id")
        # Label values are bounded: unknown service ids from callers all count as "unknown".
        service = "-" if named is None else named if named in known_services else "unknown"
        measured = metrics()
        measured.requests.labels(endpoint, service, str(response.status_code)).inc()
        measured.request_latency.labels(endpoint, service).observe(elapsed)
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
        g.trace_attributes = {
            "http.request.method": request.method,
            "http.route": request.url_rule.rule if request.url_rule else None,
            "http.response.status_code": response.status_code,
            "cds.service": service,
            "cds.request_id": g.get("request_id"),
            "cds.hook_instance": g.get("hook_instance"),
        }
        quiet = endpoint in PROBES  # probes and scrapes every few seconds would drown the log
        # The route template, never the path: paths can carry patient ids (/demo/patients/<id>).
        route = request.url_rule.rule if request.url_rule else "unmatched"
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "%s %s %s",
            request.method,
            route,
            response.status_code,
            extra={
                "method": request.method,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 1),
                "service": service,
            },
        )
        return response

    @app.teardown_request
    def end_trace(_: BaseException | None) -> None:
        # Teardown runs even when after_request was skipped by an error: the span always ends.
        tracing.end_server_span(g.pop("trace", None), g.pop("trace_attributes", {}))
