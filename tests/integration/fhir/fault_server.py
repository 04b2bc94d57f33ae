"""A small real HTTP FHIR server on 127.0.0.1 that serves one chart and misbehaves on demand.

Real FHIR servers cannot be made to loop their next links or send half a JSON document, so the
fault tests use this one: a real socket, real HTTP, real timing, with one chosen fault applied to
Observation searches (the other searches answer normally, as a partly failing EHR would).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Fault = Callable[["FaultHandler", dict[str, Any]], None]
SLOW_ANSWER_S = 30.0  # far beyond any budget the tests give the service


class ChartServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, resources: list[dict[str, Any]], token: str) -> None:
        super().__init__(("127.0.0.1", 0), FaultHandler)
        self.resources = resources
        self.token = token
        self.fault: Fault | None = None
        self.release = threading.Event()  # set at shutdown: frees handlers told to stall
        self.late_answers = 0  # stalled handlers that answered after all
        self.paths: list[str] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/fhir"


class FaultHandler(BaseHTTPRequestHandler):
    server: ChartServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            self.send_json(401, outcome("login", "bearer token required"))
            return
        parts = urlsplit(self.path).path.removeprefix("/fhir/").split("/")
        if len(parts) == 2:
            found = [r for r in self.server.resources if [r["resourceType"], r["id"]] == parts]
            if found:
                self.send_json(200, found[0])
            else:
                self.send_json(404, outcome("not-found", "no such resource"))
            return
        bundle = searchset([r for r in self.server.resources if r["resourceType"] == parts[0]])
        if parts[0] == "Observation" and self.server.fault is not None:
            self.server.fault(self, bundle)
        else:
            self.send_json(200, bundle)

    def send_json(self, status: int, body: Any) -> None:
        self.send_bytes(status, json.dumps(body).encode())

    def send_bytes(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with suppress(OSError):  # the service hung up first, as it should when it gives up
            self.wfile.write(data)

    def self_url(self) -> str:
        return f"{self.server.base_url}{self.path.removeprefix('/fhir')}"


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


def outcome(code: str, text: str, severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": text}],
    }


@contextmanager
def chart_server(resources: list[dict[str, Any]], token: str) -> Iterator[ChartServer]:
    server = ChartServer(resources, token)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
