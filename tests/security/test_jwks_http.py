"""JWKS fetched over real HTTP from the token's jku: caching, key rotation, rate limit, timeout.

The JWKS is served by a real HTTP server on 127.0.0.1; the authenticator uses its own default
``requests`` session, as in production. Only the cache clock is injected, so that the refetch
interval and the cache lifetime can be crossed without waiting.
"""

from __future__ import annotations

import threading

import pytest

from cds_service.security.client_auth import AuthError, ClientAuthenticator, TrustedClient
from tests.security.support import (
    CRD_EC_PRIVATE,
    CRD_RSA_PRIVATE,
    LocalServer,
    Route,
    jwks,
    mint,
)

ISS = "https://ehr.example.org"
AUD = "https://cds.example.org/cds-services/aih-order-sign"
JWKS_PATH = "/.well-known/jwks.json"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def authenticator(jku: str, clock: Clock, **kwargs: float) -> ClientAuthenticator:
    return ClientAuthenticator([TrustedClient(iss=ISS, jku=(jku,))], clock=clock, **kwargs)  # type: ignore[arg-type]


def token(private: dict[str, str], jku: str, alg: str = "ES384") -> str:
    return "Bearer " + mint(private, iss=ISS, aud=AUD, alg=alg, jku=jku)


def test_keys_are_fetched_once_and_cached_until_the_ttl(http_server: LocalServer) -> None:
    jku = http_server.serve_json(JWKS_PATH, jwks(CRD_EC_PRIVATE, CRD_RSA_PRIVATE))
    clock = Clock()
    auth = authenticator(jku, clock, jwks_cache_ttl_s=300)

    assert auth.verify(token(CRD_EC_PRIVATE, jku), AUD)["iss"] == ISS
    assert auth.verify(token(CRD_RSA_PRIVATE, jku, "RS384"), AUD)["iss"] == ISS
    assert http_server.hits(JWKS_PATH) == 1

    clock.now += 301
    auth.verify(token(CRD_EC_PRIVATE, jku), AUD)
    assert http_server.hits(JWKS_PATH) == 2


def test_rotated_key_is_picked_up_by_one_rate_limited_refetch(http_server: LocalServer) -> None:
    jku = http_server.serve_json(JWKS_PATH, jwks(CRD_EC_PRIVATE))
    clock = Clock()
    auth = authenticator(jku, clock)
    auth.verify(token(CRD_EC_PRIVATE, jku), AUD)

    # The client rotates: its JWKS now also lists the RSA key.
    http_server.serve_json(JWKS_PATH, jwks(CRD_EC_PRIVATE, CRD_RSA_PRIVATE))
    # Within the refetch interval an unknown kid does not trigger a fetch (no amplification).
    with pytest.raises(AuthError, match="unknown kid"):
        auth.verify(token(CRD_RSA_PRIVATE, jku, "RS384"), AUD)
    assert http_server.hits(JWKS_PATH) == 1

    clock.now += 11
    assert auth.verify(token(CRD_RSA_PRIVATE, jku, "RS384"), AUD)["iss"] == ISS
    assert http_server.hits(JWKS_PATH) == 2

    # A kid nobody publishes: one more refetch after the interval, then rejection.
    clock.now += 11
    stranger = dict(CRD_EC_PRIVATE, kid="not-published")
    for _ in range(3):
        with pytest.raises(AuthError, match="unknown kid"):
            auth.verify(token(stranger, jku), AUD)
    assert http_server.hits(JWKS_PATH) == 3


def test_slow_jwks_server_times_out(http_server: LocalServer) -> None:
    release = threading.Event()
    http_server.routes[JWKS_PATH] = Route(b'{"keys": []}', hold=release)
    jku = http_server.base_url + JWKS_PATH
    auth = authenticator(jku, Clock(), jwks_timeout_s=0.2)
    try:
        with pytest.raises(AuthError, match="unavailable"):
            auth.verify(token(CRD_EC_PRIVATE, jku), AUD)
    finally:
        release.set()
    assert http_server.hits(JWKS_PATH) == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, b'{"keys": []}'),
        (200, b"not json"),
        (200, b'{"keys": "nope"}'),
        (200, b'{"keys": [' + b'{"kty": "EC"},' * 40_000 + b"{}]}"),  # over 512 KiB
    ],
    ids=["http-500", "not-json", "keys-not-list", "oversized"],
)
def test_unusable_jwks_answers_are_rejected(
    http_server: LocalServer, status: int, body: bytes
) -> None:
    http_server.routes[JWKS_PATH] = Route(body, status)
    jku = http_server.base_url + JWKS_PATH
    with pytest.raises(AuthError, match="unavailable"):
        authenticator(jku, Clock()).verify(token(CRD_EC_PRIVATE, jku), AUD)


def test_redirects_are_not_followed(http_server: LocalServer) -> None:
    """A jku that redirects could point the fetch anywhere: the allowlist would be bypassed."""
    elsewhere = http_server.serve_json("/elsewhere.json", jwks(CRD_EC_PRIVATE))
    http_server.routes[JWKS_PATH] = Route(b"", 302, headers={"Location": elsewhere})
    jku = http_server.base_url + JWKS_PATH
    with pytest.raises(AuthError, match="unavailable"):
        authenticator(jku, Clock()).verify(token(CRD_EC_PRIVATE, jku), AUD)
    assert http_server.hits("/elsewhere.json") == 0


# The JWKS endpoint down: keys fetched before keep verifying tokens until the cache lifetime
# ends; after it, tokens are refused with a reason that says the keys expired (logged with the
# 401).
def test_cached_keys_work_through_an_outage_until_they_expire(http_server: LocalServer) -> None:
    jku = http_server.serve_json(JWKS_PATH, jwks(CRD_EC_PRIVATE))
    clock = Clock()
    auth = authenticator(jku, clock, jwks_cache_ttl_s=300)

    def bearer() -> str:
        return token(CRD_EC_PRIVATE, jku)

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
