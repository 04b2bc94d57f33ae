"""The JWKS endpoint down: keys fetched before keep verifying tokens until the cache lifetime
ends; after it, tokens are refused with a reason that says the keys expired (logged with the
401). Real HTTP on 127.0.0.1; only the cache clock is injected."""

from __future__ import annotations

import pytest

from cds_service.security import AuthError, ClientAuthenticator, TrustedClient
from tests.security.support import CRD_EC_PRIVATE, LocalServer, Route, jwks, mint

ISS = "https://ehr.example.org"
AUD = "https://cds.example.org/cds-services/aih-order-sign"
JWKS_PATH = "/.well-known/jwks.json"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cached_keys_work_through_an_outage_until_they_expire(http_server: LocalServer) -> None:
    jku = http_server.serve_json(JWKS_PATH, jwks(CRD_EC_PRIVATE))
    clock = Clock()
    auth = ClientAuthenticator(
        [TrustedClient(iss=ISS, jku=(jku,))], clock=clock, jwks_cache_ttl_s=300
    )

    def bearer() -> str:
        return "Bearer " + mint(CRD_EC_PRIVATE, iss=ISS, aud=AUD, alg="ES384", jku=jku)

    assert auth.verify(bearer(), AUD)["iss"] == ISS
    http_server.routes[JWKS_PATH] = Route(b"down", status=503)  # the endpoint goes down
    clock.now += 299
    assert auth.verify(bearer(), AUD)["iss"] == ISS  # cached keys still verify
    assert http_server.hits(JWKS_PATH) == 1
    clock.now += 31
    with pytest.raises(AuthError, match=r"unavailable and its cached keys expired 30 s ago"):
        auth.verify(bearer(), AUD)
    assert http_server.hits(JWKS_PATH) == 2
    http_server.serve_json(JWKS_PATH, jwks(CRD_EC_PRIVATE))  # back
    clock.now += 11  # after the refetch interval
    assert auth.verify(bearer(), AUD)["iss"] == ISS
