"""The gunicorn workers of the service (sync, or gthread with several threads), whose own error
answers carry the security headers too.

gunicorn answers some requests itself, before the application sees them: a header longer than
``limit_request_field_size`` or too many of them (431), an over-long or malformed request line
(414, 400), a bad header name (400). It writes those through ``gunicorn.util.write_error``, the
only place it does so (``Worker.handle_error``). In each worker process this worker puts its
own writer there: the same status, the service's security headers (and HSTS behind TLS), and a
FHIR OperationOutcome naming the reason only; gunicorn's message is not echoed, since it quotes
the request (a header's value may be a token).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from cds_service.common.errors import operation_outcome
from cds_service.common.security_headers import HSTS, SECURITY_HEADERS, wants_hsts
from cds_service.common.settings import Settings
from cds_service.ops.lingering_close import LingeringCloser

log = logging.getLogger(__name__)
# The FHIR issue type per status gunicorn answers with; anything else is "invalid".
ISSUE_CODES = {403: "forbidden", 414: "too-costly", 431: "too-costly", 500: "exception"}


def error_answer(status: int, reason: str, *, hsts: bool) -> bytes:
    """The whole HTTP answer for an error gunicorn found in a request."""
    body = json.dumps(
        operation_outcome(
            f"{status} {reason}: the request was refused before the service read it",
            code=ISSUE_CODES.get(status, "invalid"),
        )
    ).encode("utf-8")
    headers = {
        "Connection": "close",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        **SECURITY_HEADERS,
        **({"Strict-Transport-Security": HSTS} if hsts else {}),
    }
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "\r\n").encode("latin-1") + body


class SecureHeaders:
    """Mixed into a gunicorn worker class: in its process, gunicorn's own error answers go
    through ``error_answer``."""

    def init_process(self) -> None:
        hsts = wants_hsts(Settings.load().public_base_url)

        def write_error(sock: Any, status_int: int, reason: str, _mesg: str) -> None:
            util.write_nonblock(sock, error_answer(int(status_int), str(reason), hsts=hsts))

        util.write_error = write_error  # this worker process only: its own answers
        super().init_process()  # type: ignore[misc] # the gunicorn worker class mixed with


class LingerInBackground:
    """Mixed into a gunicorn worker class: answered connections wait for their client to close
    in a background thread (ops/lingering_close.py), not in the thread that accepts: a client
    that kept its connection open held the worker for 2 s."""

    def init_process(self) -> None:
        util.close_graceful = LingeringCloser().close  # this worker process only
        super().init_process()  # type: ignore[misc] # the gunicorn worker class mixed with


class SecureHeadersSyncWorker(SecureHeaders, LingerInBackground, SyncWorker):  # type: ignore[misc]
    """``CDS_THREADS=1``: one call per process (an EHR that always sends prefetch)."""


class SecureHeadersThreadWorker(SecureHeaders, LingerInBackground, ThreadWorker):  # type: ignore[misc] # untyped
    """``CDS_THREADS`` > 1 (the default, 16): calls wait on FHIR servers side by side; the CPU gate
    (ops/cpu_gate.py) lets one compute at a time."""

    def init_process(self) -> None:
        # How often the running thread offers the GIL to another (CDS_GIL_SWITCH_MS, 1 ms;
        # Python's default is 5 ms). The worker's main thread accepts connections and closes
        # answered ones, and each time it needs the GIL it waits for the computing call to offer
        # it: at 5 ms those waits delay accepting and calls queue unevenly between the workers
        # (small chart, 8 connections: p99 3-5x p50; at 1 ms 2.0-2.8x; bench.worker_models). The
        # CPU gate lets one thread compute at a time, so switching more often costs little.
        sys.setswitchinterval(Settings.load().gil_switch_ms / 1000)  # this worker process only
        super().init_process()
