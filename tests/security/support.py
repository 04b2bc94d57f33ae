"""Real keys, token minting and a real local HTTP server for the security tests.

Keys: the CDS Hooks Sandbox ES384 pair and the Inferno CRD test kit ES384/RS384 pairs (all
published for testing). The HTTP server binds 127.0.0.1 on a free port and serves whatever
routes a test gives it, counting requests; the fixture that starts it stops it.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt

from tests.conftest import MATERIAL


def _load(relative: str) -> dict[str, Any]:
    data = json.loads((MATERIAL / relative).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


SANDBOX_PRIVATE = _load("cds-hooks-sandbox/keys/jwk-keypair.json")["keys"][0]
SANDBOX_PUBLIC_JWKS = _load("cds-hooks-sandbox/build/.well-known/jwks.json")
_CRD_ALL = _load("davinci-crd-test-kit/lib/davinci_crd_test_kit/crd_jwks.json")["keys"]
CRD_EC_PRIVATE = next(k for k in _CRD_ALL if k["kty"] == "EC" and "d" in k)
CRD_RSA_PRIVATE = next(k for k in _CRD_ALL if k["kty"] == "RSA" and "d" in k)
SPEC_DIR = MATERIAL / "HL7-cds-hooks" / "extracted-examples" / "v2.0.1" / "index"
SPEC_TOKEN: str = json.loads((SPEC_DIR / "25b-example-complete-jwt.json").read_text())["jwt"]
SPEC_JWKS: dict[str, Any] = json.loads((SPEC_DIR / "24-example.json").read_text())
SPEC_PAYLOAD: dict[str, Any] = json.loads((SPEC_DIR / "23-example.json").read_text())

# The public halves as their owners publish them, by kid.
PUBLISHED = {k["kid"]: k for k in [*SANDBOX_PUBLIC_JWKS["keys"], *_CRD_ALL] if "d" not in k}


def jwks(*private_keys: Mapping[str, Any]) -> dict[str, Any]:
    """The JWKS publishing the public halves of ``private_keys``."""
    return {"keys": [PUBLISHED[k["kid"]] for k in private_keys]}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint(
    private: Mapping[str, Any],
    *,
    iss: str,
    aud: str,
    alg: str = "ES384",
    jku: str | None = None,
    kid: str | None = None,
    lifetime: int = 300,
    now: float | None = None,
    **claims: Any,
) -> str:
    """Sign a client JWT the way the Sandbox and Inferno do (typ JWT, kid, optional jku)."""
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {
        "iss": iss,
        "aud": aud,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    headers: dict[str, Any] = {"typ": "JWT", "kid": private["kid"] if kid is None else kid}
    if jku is not None:
        headers["jku"] = jku
    key = jwt.PyJWK(dict(private), algorithm=alg).key
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def unsigned_token(header: Mapping[str, Any], payload: Mapping[str, Any], signature: str) -> str:
    def part(obj: Mapping[str, Any]) -> str:
        return b64url(json.dumps(obj, separators=(",", ":")).encode())

    return f"{part(header)}.{part(payload)}.{signature}"


@dataclass
class Route:
    """What the server answers on one path; ``hold`` makes the handler wait before answering."""

    body: bytes
    status: int = 200
    content_type: str = "application/json"
    hold: threading.Event | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class LocalServer:
    base_url: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, str, Mapping[str, str]]] = field(default_factory=list)

    def serve_json(self, path: str, document: Any, status: int = 200) -> str:
        self.routes[path] = Route(json.dumps(document).encode(), status)
        return self.base_url + path

    def hits(self, path: str) -> int:
        return sum(1 for _, p, _ in self.requests if p.split("?")[0] == path)


def _handler(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.requests.append(("GET", self.path, dict(self.headers)))
            route = server.routes.get(self.path.split("?")[0])
            if route is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if route.hold is not None:
                route.hold.wait(timeout=10)
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            for name, value in route.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            self.wfile.write(route.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet; requests are recorded above

    return Handler


@contextmanager
def local_server(
    configure: Callable[[LocalServer], None] | None = None,
) -> Iterator[LocalServer]:
    """A real HTTP server on 127.0.0.1 and a free port, stopped on exit."""
    state = LocalServer(base_url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    if configure is not None:
        configure(state)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        for route in state.routes.values():
            if route.hold is not None:
                route.hold.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
