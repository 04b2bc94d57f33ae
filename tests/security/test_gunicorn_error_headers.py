"""gunicorn answers some requests itself, before the application runs (a header over
``limit_request_field_size``, too many headers, a malformed request line): those answers carry
the same security headers as every other, and an OperationOutcome that echoes nothing of the
request. Served with the shipped ``deploy/gunicorn.conf.py``."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from cds_service.common.security_headers import HSTS, SECURITY_HEADERS
from tests.security.served import gunicorn_served

SECRET = "s3cr3t-header-value"


@pytest.fixture(scope="module", params=["1", "4"], ids=["sync", "gthread"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """The shipped configuration with either worker class (CDS_THREADS 1 or 4)."""
    env = {
        "CDS_AUTH": "off",
        "CDS_PUBLIC_BASE_URL": "https://cds.example.org",
        "CDS_THREADS": request.param,
    }
    with gunicorn_served(env) as url:
        parts = urlsplit(url)
        yield str(parts.hostname), int(parts.port or 80)


def exchange(address: tuple[str, int], request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (gunicorn closes after its own errors)."""
    with socket.create_connection(address, timeout=30) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def get(extra_headers: str) -> bytes:
    return (f"GET /healthz HTTP/1.1\r\nHost: x\r\n{extra_headers}\r\n").encode("latin-1")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (get(f"X-Big: {SECRET}{'a' * 9000}\r\n"), "431"),  # over limit_request_field_size
        (get("".join(f"X-{n}: {SECRET}\r\n" for n in range(120))), "431"),  # too many fields
        (f"GET /{SECRET} HTTP/1.1 junk\r\n\r\n".encode(), "400"),  # malformed request line
        (get(f"Bad Name: {SECRET}\r\n"), "400"),  # a space in a header name
    ],
)
def test_gunicorns_own_error_answers_carry_the_security_headers(
    served: tuple[str, int], request_bytes: bytes, status: str
) -> None:
    line, headers, body = exchange(served, request_bytes)
    assert line.split()[1] == status
    for name, value in {**SECURITY_HEADERS, "Strict-Transport-Security": HSTS}.items():
        assert headers.get(name.lower()) == value, name
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert SECRET not in body.decode()  # nothing of the request is echoed


def test_answers_of_the_application_still_carry_them(served: tuple[str, int]) -> None:
    line, headers, _ = exchange(served, get("Connection: close\r\n"))
    assert line.split()[1] == "200"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["strict-transport-security"] == HSTS
