from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.support import LocalServer, local_server


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    """A real HTTP server on 127.0.0.1 (free port) for JWKS documents or FHIR responses."""
    with local_server() as server:
        yield server
