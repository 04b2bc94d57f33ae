"""Loopback FHIR servers for the fetch-path tests: a healthy one and one that trickles."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TRICKLE_INTERVAL_S = 0.4
TRICKLE_FOR_S = 15.0  # a connection nobody closes is dropped after this (bounds the test)


class TrickleServer:
    """Answers every request with a status line and then one header line every 0.4 s.

    ``open_connections`` counts the connections whose client has not closed them yet: a client
    that abandons its read but keeps the socket open keeps this above zero.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = int(self.listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/fhir"
        self._lock = threading.Lock()
        self.open_connections = 0
        self.accepted = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.open_connections += 1
                self.accepted += 1
            threading.Thread(target=self._trickle, args=(client,), daemon=True).start()

    def _trickle(self, client: socket.socket) -> None:
        try:
            client.recv(65536)
            client.sendall(b"HTTP/1.1 200 OK\r\n")
            ends = time.monotonic() + TRICKLE_FOR_S
            line = 0
            while time.monotonic() < ends and not self._stop.is_set():
                time.sleep(TRICKLE_INTERVAL_S)
                client.sendall(f"X-Slow-{line}: x\r\n".encode())
                line += 1
        except OSError:
            pass  # the client closed the connection
        finally:
            client.close()
            with self._lock:
                self.open_connections -= 1

    def wait_until(self, condition: Any, timeout_s: float = 10.0) -> bool:
        ends = time.monotonic() + timeout_s
        while time.monotonic() < ends:
            if condition(self):
                return True
            time.sleep(0.05)
        return bool(condition(self))

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("/fhir/", 1)[-1]
        body: dict[str, Any]
        if path.startswith("Patient/"):
            body = {"resourceType": "Patient", "id": path.split("/")[1].split("?")[0]}
        else:
            body = {"resourceType": "Bundle", "type": "searchset", "entry": []}
        answer_json(self, json.dumps(body).encode())

    def log_message(self, *_args: Any) -> None:
        pass


def answer_json(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    """A 200 with a FHIR JSON body."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/fhir+json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@contextmanager
def healthy_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def trickle_server() -> Iterator[TrickleServer]:
    server = TrickleServer()
    try:
        yield server
    finally:
        server.close()
