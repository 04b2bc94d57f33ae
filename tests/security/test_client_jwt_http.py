"""Client JWTs end to end over HTTP, with the real published test keys.

Trusted clients come from a YAML ``CDS_TRUSTED_CLIENTS_FILE``: the CDS Hooks Sandbox with its
JWKS as a file (air-gapped style), the Inferno CRD test kit with its JWKS fetched over real
HTTP from its ``jku`` (a server on 127.0.0.1), and the spec's example issuer. Every rejected
token gets a bare 401, and the log says why, so each case fails for the reason it claims.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from flask import Flask

from cds_service.security.client_auth import AuthError
from tests import factories as f
from tests.conftest import MATERIAL
from tests.security.support import (
    CRD_EC_PRIVATE,
    CRD_RSA_PRIVATE,
    PUBLISHED,
    SANDBOX_PRIVATE,
    SPEC_TOKEN,
    LocalServer,
    b64url,
    jwks,
    local_server,
    mint,
    unsigned_token,
)

BASE = "https://cds.example.org"
SERVICE = "/cds-services/aih-order-sign"
SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
CRD_ISS = "https://inferno.example.org/custom/crd_server"
CRD_JWKS_PATH = "/custom/crd_server/jwks.json"
TENANT = "hospital-a"


@dataclass
class Secured:
    app: Flask
    crd_jku: str
    jwks_server: LocalServer

    def post(self, header: str | None, path: str = SERVICE, body: Any = None) -> Any:
        headers = {"Authorization": header} if header is not None else {}
        payload = body if body is not None else order_sign_body()
        return self.app.test_client().post(path, json=payload, headers=headers)


def order_sign_body() -> dict[str, Any]:
    return f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())


@pytest.fixture
def secured(app_factory: Callable[..., Flask], tmp_path: Path) -> Iterator[Secured]:
    with local_server() as server:
        crd_jku = server.serve_json(CRD_JWKS_PATH, jwks(CRD_EC_PRIVATE, CRD_RSA_PRIVATE))
        spec_dir = MATERIAL / "HL7-cds-hooks" / "extracted-examples" / "v2.0.1" / "index"
        trusted = tmp_path / "trusted-clients.yaml"
        trusted.write_text(
            f"""
- iss: {SANDBOX_ISS}
  jku: [{SANDBOX_JKU}]
  jwks_file: {MATERIAL / "cds-hooks-sandbox/build/.well-known/jwks.json"}
- iss: {CRD_ISS}
  jku: [{crd_jku}]
  tenants: [{TENANT}]
- iss: https://fhir-ehr.example.com/
  jku: [https://fhir-ehr.example.com/jwk_uri]
  jwks_file: {spec_dir / "24-example.json"}
""",
            encoding="utf-8",
        )
        app = app_factory(auth=True, trusted_clients_file=str(trusted), public_base_url=BASE)
        yield Secured(app, crd_jku, server)


def sandbox(aud_path: str = SERVICE, **claims: Any) -> str:
    return mint(SANDBOX_PRIVATE, iss=SANDBOX_ISS, aud=BASE + aud_path, jku=SANDBOX_JKU, **claims)


def crd(jku: str, private: dict[str, Any] = CRD_EC_PRIVATE, **claims: Any) -> str:
    alg = "RS384" if private["kty"] == "RSA" else "ES384"
    claims.setdefault("tenant", TENANT)
    claims = {name: value for name, value in claims.items() if value is not None}
    return mint(private, iss=CRD_ISS, aud=BASE + SERVICE, alg=alg, jku=jku, **claims)


def valid_claims() -> dict[str, Any]:
    now = int(time.time())
    return {"iss": SANDBOX_ISS, "aud": BASE + SERVICE, "iat": now, "exp": now + 300, "jti": "j1"}


def alg_none(_: Secured) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": SANDBOX_PRIVATE["kid"], "jku": SANDBOX_JKU}
    return unsigned_token(header, valid_claims(), "")


def hs256_with_public_key(_: Secured) -> str:
    """Algorithm confusion: HMAC keyed with the issuer's public key, which anyone can fetch."""
    public = jwt.PyJWK(PUBLISHED[SANDBOX_PRIVATE["kid"]], algorithm="ES384").key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": SANDBOX_PRIVATE["kid"], "jku": SANDBOX_JKU}
    unsigned = unsigned_token(header, valid_claims(), "")[:-1]
    signature = hmac.new(pem, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64url(signature)}"


def bad_signature(_: Secured) -> str:
    """A real signature by the right key, but over another payload."""
    header, payload, _sig = sandbox().split(".")
    other_signature = sandbox().split(".")[2]
    return f"{header}.{payload}.{other_signature}"


def missing_kid(_: Secured) -> str:
    key = jwt.PyJWK(SANDBOX_PRIVATE, algorithm="ES384").key
    return jwt.encode(valid_claims(), key, algorithm="ES384", headers={"jku": SANDBOX_JKU})


def jku_not_allowlisted(ctx: Secured) -> str:
    rogue = ctx.jwks_server.serve_json("/rogue.json", jwks(CRD_EC_PRIVATE))
    return crd(rogue)


REJECTED: dict[str, tuple[Callable[[Secured], str | None], str]] = {
    "missing-header": (lambda _: None, "missing Authorization header"),
    "spec-example-expired": (lambda _: SPEC_TOKEN, "does not match this endpoint"),
    "wrong-aud": (lambda _: sandbox("/cds-services/aih-order-select"), "does not match"),
    "discovery-token-on-service": (lambda _: sandbox("/cds-services"), "does not match"),
    "unknown-iss": (
        lambda _: mint(SANDBOX_PRIVATE, iss="https://evil.example", aud=BASE + SERVICE),
        "untrusted iss",
    ),
    "jku-not-allowlisted": (jku_not_allowlisted, "not allowlisted"),
    "alg-none": (alg_none, "alg 'none' not allowed"),
    "hs256-public-key-as-secret": (hs256_with_public_key, "alg 'HS256' not allowed"),
    "bad-signature": (bad_signature, "invalid signature"),
    "missing-kid": (missing_kid, "kid header missing"),
    "expired": (lambda _: sandbox(now=time.time() - 1000), "expired"),
    "future-iat": (lambda _: sandbox(now=time.time() + 1000), "issued in the future"),
    "tenant-not-allowed": (lambda ctx: crd(ctx.crd_jku, tenant="hospital-b"), "tenant"),
    "no-tenant": (lambda ctx: crd(ctx.crd_jku, tenant=None), "tenant"),
    "unknown-kid": (
        lambda _: mint(dict(SANDBOX_PRIVATE, kid="k2"), iss=SANDBOX_ISS, aud=BASE + SERVICE),
        "unknown kid",
    ),
}


@pytest.mark.parametrize("case", REJECTED, ids=list(REJECTED))
def test_rejected_token_gets_a_bare_401(
    secured: Secured, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    make, reason = REJECTED[case]
    header_value = make(secured)
    with caplog.at_level(logging.WARNING, logger="cds_service"):
        response = secured.post(None if header_value is None else f"Bearer {header_value}")
    assert response.status_code == 401
    assert response.data == b""
    assert response.headers["WWW-Authenticate"] == "Bearer"
    failures = [r.getMessage() for r in caplog.records if "authentication failed" in r.getMessage()]
    assert len(failures) == 1
    assert reason in failures[0]
    if header_value:
        assert header_value not in caplog.text


def test_spec_example_token_is_rejected_as_expired_by_the_configured_authenticator(
    secured: Secured,
) -> None:
    """Its signature is valid and its aud is its own endpoint: only exp (2015) stops it."""
    authenticator = secured.app.extensions["aih_cds"].authenticator
    with pytest.raises(AuthError, match="expired"):
        authenticator.verify(
            f"Bearer {SPEC_TOKEN}", "https://cds.example.org/cds-services/some-service"
        )


@pytest.mark.parametrize(
    "make",
    [
        lambda ctx: sandbox(),
        lambda ctx: crd(ctx.crd_jku),
        lambda ctx: crd(ctx.crd_jku, CRD_RSA_PRIVATE),
        lambda ctx: crd(ctx.crd_jku, nbf=int(time.time()) - 300, sub="cds-client-id"),
    ],
    ids=["sandbox-es384-jwks-file", "testkit-es384-jku", "testkit-rs384-jku", "epic-extra-claims"],
)
def test_valid_token_is_accepted(secured: Secured, make: Callable[[Secured], str]) -> None:
    response = secured.post(f"Bearer {make(secured)}")
    assert response.status_code == 200
    assert response.get_json()["cards"][0]["indicator"] == "warning"


def test_replayed_token_is_refused(secured: Secured) -> None:
    header = f"Bearer {sandbox()}"
    assert secured.post(header).status_code == 200
    assert secured.post(header).status_code == 401


def test_discovery_and_feedback_need_their_own_audience(secured: Secured) -> None:
    client = secured.app.test_client()
    assert client.get("/cds-services").status_code == 401
    discovery = client.get(
        "/cds-services", headers={"Authorization": f"Bearer {sandbox('/cds-services')}"}
    )
    assert discovery.status_code == 200
    card = secured.post(f"Bearer {sandbox()}").get_json()["cards"][0]
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": f.when(0)}
    feedback = {"feedback": [item]}
    path = SERVICE + "/feedback"
    assert secured.post(f"Bearer {sandbox()}", path, feedback).status_code == 401  # service aud
    accepted = secured.post(f"Bearer {sandbox(path)}", path, feedback)
    assert accepted.status_code == 200
    assert accepted.get_json()["stored"] == 1


def test_openapi_document_is_protected_like_discovery(secured: Secured) -> None:
    client = secured.app.test_client()
    assert client.get("/openapi.json").status_code == 401
    token = sandbox("/openapi.json")
    answer = client.get("/openapi.json", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert json.loads(answer.data)["openapi"].startswith("3.")


def test_testkit_jwks_fetched_once_over_http(secured: Secured) -> None:
    for _ in range(3):
        assert secured.post(f"Bearer {crd(secured.crd_jku)}").status_code == 200
    assert secured.jwks_server.hits(CRD_JWKS_PATH) == 1
