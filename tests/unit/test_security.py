"""Unit tests for cds_service.security.client_auth (CDS client JWT verification).

No network: JWKS are served through a fake ``requests`` transport adapter or given inline.
Tokens are minted with the real (public, test-only) private keys of the CDS Hooks Sandbox and
the Inferno Da Vinci CRD test kit, and the spec's own example token is used as a vector.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import io
import json
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from cds_service.security.client_auth import (
    AuthError,
    ClientAuthenticator,
    InMemoryReplayCache,
    TrustedClient,
    load_trusted_clients,
)
from tests.conftest import MATERIAL

SPEC_DIR = MATERIAL / "HL7-cds-hooks" / "extracted-examples" / "v2.0.1" / "index"


def _load(relative: str) -> dict[str, Any]:
    data = json.loads((MATERIAL / relative).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


SANDBOX_PRIVATE = _load("cds-hooks-sandbox/keys/jwk-keypair.json")["keys"][0]
SANDBOX_JWKS = _load("cds-hooks-sandbox/build/.well-known/jwks.json")
CRD_JWKS_ALL = _load("davinci-crd-test-kit/lib/davinci_crd_test_kit/crd_jwks.json")
CRD_PUBLIC_JWKS = {"keys": [k for k in CRD_JWKS_ALL["keys"] if "d" not in k]}
CRD_EC_PRIVATE = next(k for k in CRD_JWKS_ALL["keys"] if k["kty"] == "EC" and "d" in k)
CRD_RSA_PRIVATE = next(k for k in CRD_JWKS_ALL["keys"] if k["kty"] == "RSA" and "d" in k)

SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
CRD_ISS = "https://inferno.example.org/custom/crd_server"
CRD_JKU = "https://inferno.example.org/custom/crd_server/jwks.json"
AUD = "https://cds.example.org/cds-services/aih-patient-view"

SPEC_HEADER = json.loads((SPEC_DIR / "22-example.json").read_text(encoding="utf-8"))
SPEC_PAYLOAD = json.loads((SPEC_DIR / "23-example.json").read_text(encoding="utf-8"))
SPEC_JWKS = json.loads((SPEC_DIR / "24-example.json").read_text(encoding="utf-8"))
SPEC_TOKEN = json.loads((SPEC_DIR / "25b-example-complete-jwt.json").read_text(encoding="utf-8"))

_DROP = object()  # marker: remove this claim / header


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64json(obj: Mapping[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def mint(
    private_jwk: Mapping[str, Any] = SANDBOX_PRIVATE,
    *,
    alg: str = "ES384",
    iss: str = SANDBOX_ISS,
    jku: object = SANDBOX_JKU,
    kid: object = None,
    now: float | None = None,
    lifetime: int = 300,
    **claims: object,
) -> str:
    """Sign a CDS Hooks client JWT like the Sandbox does (exp = iat + 300)."""
    issued = int(time.time() if now is None else now)
    payload: dict[str, object] = {
        "iss": iss,
        "aud": AUD,
        "exp": issued + lifetime,
        "iat": issued,
        "jti": str(uuid.uuid4()),
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not _DROP}
    headers: dict[str, object] = {"kid": private_jwk["kid"] if kid is None else kid, "jku": jku}
    headers = {k: v for k, v in headers.items() if v is not _DROP}
    key = jwt.PyJWK(dict(private_jwk), algorithm=alg).key
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def bearer(token: str) -> str:
    return f"Bearer {token}"


class FakeJwksAdapter(BaseAdapter):
    """requests transport serving JWKS documents from a dict; records every request."""

    def __init__(self, documents: dict[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        self.documents: dict[str, Mapping[str, Any]] = dict(documents or {})
        self.calls: list[tuple[str, object]] = []
        self.error: Exception | None = None
        self.status = 200

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        url = str(request.url)
        self.calls.append((url, kwargs.get("timeout")))
        if self.error is not None:
            raise self.error
        response = requests.Response()
        response.url = url
        response.request = request
        if url in self.documents and self.status == 200:
            response.status_code = 200
            response.raw = io.BytesIO(json.dumps(self.documents[url]).encode())
            response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
        else:
            response.status_code = 404 if self.status == 200 else self.status
            response.raw = io.BytesIO(b"{}")
        return response

    def close(self) -> None:
        pass

    @property
    def urls(self) -> list[str]:
        return [url for url, _ in self.calls]


def fake_session(adapter: FakeJwksAdapter) -> requests.Session:
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value


def make_auth(
    clients: list[TrustedClient] | None = None,
    adapter: FakeJwksAdapter | None = None,
    **kwargs: Any,
) -> ClientAuthenticator:
    if clients is None:
        clients = [TrustedClient(iss=SANDBOX_ISS, jku=(SANDBOX_JKU,))]
    if adapter is None:
        adapter = FakeJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS})
    return ClientAuthenticator(clients, session=fake_session(adapter), **kwargs)


def expect_auth_error(
    auth: ClientAuthenticator,
    header: str | None,
    match: str,
    *,
    audience: str = AUD,
    now: float | None = None,
) -> AuthError:
    """verify() must fail with a message matching ``match`` that never contains the token."""
    with pytest.raises(AuthError, match=match) as info:
        auth.verify(header, audience, now=now)
    token = (header or "").partition(" ")[2].strip()
    if len(token) > 20:
        parts = [str(info.value), repr(info.value)]
        cause: BaseException | None = info.value.__cause__ or info.value.__context__
        while cause is not None:
            parts.append(str(cause))
            cause = cause.__cause__ or cause.__context__
        segments = [segment for segment in token.split(".") if len(segment) > 8]
        for text in parts:
            assert token not in text
            assert not any(segment in text for segment in segments)
    return info.value


# ------------------------------------------------------------------------------------------
# accepted tokens
# ------------------------------------------------------------------------------------------


def test_valid_es384_sandbox_token_via_jku() -> None:
    adapter = FakeJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS})
    auth = make_auth(adapter=adapter)
    token = mint(jti="jti-es384-1")

    claims = auth.verify(bearer(token), AUD)

    assert claims["iss"] == SANDBOX_ISS
    assert claims["aud"] == AUD
    assert claims["jti"] == "jti-es384-1"
    assert adapter.calls == [(SANDBOX_JKU, 2.0)]  # fetched once, with the timeout


def test_valid_rs384_testkit_token_with_inline_jwks() -> None:
    adapter = FakeJwksAdapter()
    auth = make_auth([TrustedClient(iss=CRD_ISS, jwks=CRD_PUBLIC_JWKS)], adapter)
    token = mint(CRD_RSA_PRIVATE, alg="RS384", iss=CRD_ISS, jku=_DROP, jti="rs-1", sub="epic-x")

    claims = auth.verify(bearer(token), AUD)

    assert claims["jti"] == "rs-1"
    assert claims["sub"] == "epic-x"
    assert jwt.get_unverified_header(token)["alg"] == "RS384"
    assert adapter.calls == []  # inline keys: no network


def test_valid_es384_testkit_token_with_single_configured_jku_and_no_header_jku() -> None:
    adapter = FakeJwksAdapter({CRD_JKU: CRD_PUBLIC_JWKS})
    auth = make_auth([TrustedClient(iss=CRD_ISS, jku=(CRD_JKU,))], adapter)
    token = mint(CRD_EC_PRIVATE, iss=CRD_ISS, jku=_DROP)

    assert auth.verify(bearer(token), AUD)["iss"] == CRD_ISS
    assert adapter.urls == [CRD_JKU]


def test_aud_list_containing_endpoint_and_epic_style_extra_claims_accepted() -> None:
    auth = make_auth()
    issued = int(time.time())
    token = mint(aud=["https://other.example.org", AUD], nbf=issued - 300, sub="client-id")

    claims = auth.verify(bearer(token), AUD)

    assert claims["aud"] == ["https://other.example.org", AUD]
    assert claims["nbf"] == issued - 300


def test_lowercase_bearer_scheme_accepted() -> None:
    auth = make_auth()
    assert auth.verify(f"bearer {mint()}", AUD)["iss"] == SANDBOX_ISS


def test_tenant_allowlist_accepts_listed_tenant() -> None:
    auth = make_auth([TrustedClient(iss=SANDBOX_ISS, jku=(SANDBOX_JKU,), tenants=("t-1", "t-2"))])
    assert auth.verify(bearer(mint(tenant="t-2")), AUD)["tenant"] == "t-2"


# ------------------------------------------------------------------------------------------
# the spec's example token (HL7 CDS Hooks 2.0.1, "JWT Signing Algorithm > Example")
# ------------------------------------------------------------------------------------------

SPEC_ISS = "https://fhir-ehr.example.com/"
SPEC_AUD = "https://cds.example.org/cds-services/some-service"


def _spec_auth(**kwargs: Any) -> ClientAuthenticator:
    client = TrustedClient(iss=SPEC_ISS, jku=(SPEC_HEADER["jku"],), jwks=SPEC_JWKS)
    return make_auth([client], FakeJwksAdapter(), **kwargs)


def test_spec_example_token_is_rejected_as_expired() -> None:
    header = SPEC_TOKEN["authorizationHeader"]
    assert header == f"Bearer {SPEC_TOKEN['jwt']}"

    expect_auth_error(_spec_auth(), header, "expired", audience=SPEC_AUD)


def test_spec_example_token_signature_verifies_when_exp_is_ignored() -> None:
    token = SPEC_TOKEN["jwt"]
    # it is the spec's vector: header and payload are exactly examples 22 and 23
    assert jwt.get_unverified_header(token) == SPEC_HEADER
    public = jwt.PyJWK(SPEC_JWKS["keys"][0], algorithm="ES384")
    claims = jwt.decode(
        token, public, algorithms=["ES384"], audience=SPEC_AUD, options={"verify_exp": False}
    )
    assert claims == SPEC_PAYLOAD
    # ... and the signature really is checked: another key does not verify it
    other = jwt.PyJWK(SANDBOX_JWKS["keys"][0], algorithm="ES384")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other, algorithms=["ES384"], options={"verify_exp": False})
    # the authenticator accepts it at a time inside its (very long) validity window
    auth = _spec_auth(max_token_lifetime_s=200_000_000)
    accepted = auth.verify(SPEC_TOKEN["authorizationHeader"], SPEC_AUD, now=1422568800)
    assert accepted == SPEC_PAYLOAD


def test_spec_example_token_lifetime_exceeds_default_maximum() -> None:
    expect_auth_error(
        _spec_auth(),
        SPEC_TOKEN["authorizationHeader"],
        "lifetime",
        audience=SPEC_AUD,
        now=1422568800,
    )


# ------------------------------------------------------------------------------------------
# rejected tokens
# ------------------------------------------------------------------------------------------


def test_wrong_aud_rejected_before_any_jwks_fetch() -> None:
    adapter = FakeJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS})
    auth = make_auth(adapter=adapter)
    token = mint(aud="https://cds.example.org/cds-services/other-service")

    expect_auth_error(auth, bearer(token), "aud")
    assert adapter.calls == []


def test_aud_prefix_or_list_without_endpoint_rejected() -> None:
    auth = make_auth()
    expect_auth_error(auth, bearer(mint(aud=AUD + "/")), "aud")
    expect_auth_error(auth, bearer(mint(aud=["https://x.example.org"])), "aud")
    expect_auth_error(auth, bearer(mint(aud=_DROP)), "aud")


def test_unknown_iss_rejected() -> None:
    adapter = FakeJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS})
    auth = make_auth(adapter=adapter)
    expect_auth_error(auth, bearer(mint(iss="https://evil.example.org")), "untrusted iss")
    assert adapter.calls == []


def test_jku_not_allowlisted_rejected_without_fetch() -> None:
    evil = "https://evil.example.org/jwks.json"
    adapter = FakeJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS, evil: SANDBOX_JWKS})
    auth = make_auth(adapter=adapter)

    expect_auth_error(auth, bearer(mint(jku=evil)), "jku .* not allowlisted")
    assert adapter.calls == []


def test_alg_none_rejected() -> None:
    auth = make_auth()
    header = {"alg": "none", "typ": "JWT", "kid": SANDBOX_PRIVATE["kid"], "jku": SANDBOX_JKU}
    issued = int(time.time())
    payload = {"iss": SANDBOX_ISS, "aud": AUD, "exp": issued + 300, "iat": issued, "jti": "n"}
    unsigned = f"{_b64json(header)}.{_b64json(payload)}."

    expect_auth_error(auth, bearer(unsigned), "alg 'none' not allowed")


def test_hs256_signed_with_public_key_pem_rejected() -> None:
    """Classic algorithm confusion: HMAC keyed with the (public) verification key."""
    auth = make_auth()
    public_key = jwt.PyJWK(SANDBOX_JWKS["keys"][0], algorithm="ES384").key
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": SANDBOX_PRIVATE["kid"], "jku": SANDBOX_JKU}
    issued = int(time.time())
    payload = {"iss": SANDBOX_ISS, "aud": AUD, "exp": issued + 300, "iat": issued, "jti": "h"}
    signing_input = f"{_b64json(header)}.{_b64json(payload)}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{_b64(signature)}"

    expect_auth_error(auth, bearer(forged), "alg 'HS256' not allowed")


@pytest.mark.parametrize(
    "algorithms", [("HS256",), ("ES384", "none"), ("RS384", "HS384"), ("EdDSA",), ()]
)
def test_symmetric_none_or_unknown_algorithms_cannot_be_configured(
    algorithms: tuple[str, ...],
) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        make_auth(algorithms=algorithms)


def test_alg_not_configured_rejected() -> None:
    auth = make_auth(algorithms=("RS384",))
    expect_auth_error(auth, bearer(mint()), "alg 'ES384' not allowed")


def test_alg_kty_mismatch_rejected() -> None:
    """An RS384 header naming the EC key's kid must not be verified with that EC key."""
    adapter = FakeJwksAdapter({CRD_JKU: CRD_PUBLIC_JWKS})
    auth = make_auth([TrustedClient(iss=CRD_ISS, jku=(CRD_JKU,))], adapter)
    token = mint(CRD_RSA_PRIVATE, alg="RS384", iss=CRD_ISS, jku=CRD_JKU, kid=CRD_EC_PRIVATE["kid"])

    expect_auth_error(auth, bearer(token), "does not fit alg RS384")


def test_tampered_payload_fails_signature() -> None:
    auth = make_auth()
    token = mint(sub="alice")
    head, payload_b64, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    payload["sub"] = "mallory"
    tampered = f"{head}.{_b64json(payload)}.{signature}"

    expect_auth_error(auth, bearer(tampered), "invalid signature")
    # the untampered token is fine
    assert auth.verify(bearer(token), AUD)["sub"] == "alice"


def test_signature_by_other_key_with_same_kid_rejected() -> None:
    auth = make_auth()
    forged = mint(CRD_EC_PRIVATE, kid=SANDBOX_PRIVATE["kid"])
    expect_auth_error(auth, bearer(forged), "invalid signature")


def test_missing_kid_rejected() -> None:
    auth = make_auth()
    key = jwt.PyJWK(SANDBOX_PRIVATE, algorithm="ES384").key
    issued = int(time.time())
    payload = {"iss": SANDBOX_ISS, "aud": AUD, "exp": issued + 300, "iat": issued, "jti": "k"}
    token = jwt.encode(payload, key, algorithm="ES384", headers={"jku": SANDBOX_JKU})
    assert "kid" not in jwt.get_unverified_header(token)

    expect_auth_error(auth, bearer(token), "kid header missing")


def test_unknown_kid_rejected_with_inline_jwks() -> None:
    auth = make_auth([TrustedClient(iss=SANDBOX_ISS, jwks=SANDBOX_JWKS)], FakeJwksAdapter())
    expect_auth_error(auth, bearer(mint(kid="not-a-known-kid", jku=_DROP)), "unknown kid")


def test_unknown_kid_rejected_after_single_fetch_from_jku() -> None:
    adapter = FakeJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS})
    auth = make_auth(adapter=adapter)
    expect_auth_error(auth, bearer(mint(kid="not-a-known-kid")), "unknown kid")
    assert adapter.urls == [SANDBOX_JKU]  # first fetch: kid absent; no immediate refetch


def test_typ_other_than_jwt_rejected() -> None:
    auth = make_auth()
    key = jwt.PyJWK(SANDBOX_PRIVATE, algorithm="ES384").key
    issued = int(time.time())
    payload = {"iss": SANDBOX_ISS, "aud": AUD, "exp": issued + 300, "iat": issued, "jti": "t"}
    headers = {"kid": SANDBOX_PRIVATE["kid"], "typ": "at+jwt"}
    token = jwt.encode(payload, key, algorithm="ES384", headers=headers)

    expect_auth_error(auth, bearer(token), "typ 'at\\+jwt' is not JWT")


def test_replayed_jti_rejected() -> None:
    auth = make_auth()
    token = mint(jti="once-only")
    assert auth.verify(bearer(token), AUD)["jti"] == "once-only"

    expect_auth_error(auth, bearer(token), "replayed jti")
    # a new token reusing the jti is a replay too
    expect_auth_error(auth, bearer(mint(jti="once-only")), "replayed jti")


def test_same_jti_from_other_issuer_is_not_a_replay() -> None:
    clients = [
        TrustedClient(iss=SANDBOX_ISS, jku=(SANDBOX_JKU,)),
        TrustedClient(iss=CRD_ISS, jwks=CRD_PUBLIC_JWKS),
    ]
    auth = make_auth(clients)
    assert auth.verify(bearer(mint(jti="shared")), AUD)["iss"] == SANDBOX_ISS
    crd_token = mint(CRD_RSA_PRIVATE, alg="RS384", iss=CRD_ISS, jku=_DROP, jti="shared")
    assert auth.verify(bearer(crd_token), AUD)["iss"] == CRD_ISS


def test_invalid_token_does_not_consume_jti() -> None:
    auth = make_auth()
    expect_auth_error(
        auth, bearer(mint(CRD_EC_PRIVATE, kid=SANDBOX_PRIVATE["kid"], jti="j")), "sig"
    )
    assert auth.verify(bearer(mint(jti="j")), AUD)["jti"] == "j"


def test_expired_token_rejected_and_leeway_honoured() -> None:
    auth = make_auth(leeway_s=60)
    now = time.time()
    expect_auth_error(auth, bearer(mint(now=now - 400, lifetime=300)), "expired", now=now)
    # expired 30 s ago: inside the 60 s leeway
    assert auth.verify(bearer(mint(now=now - 330, lifetime=300)), AUD, now=now)


def test_iat_in_future_rejected() -> None:
    auth = make_auth(leeway_s=60)
    now = time.time()
    expect_auth_error(auth, bearer(mint(now=now + 120)), "future", now=now)
    assert auth.verify(bearer(mint(now=now + 30)), AUD, now=now)  # skew inside leeway


def test_nbf_in_future_rejected() -> None:
    auth = make_auth()
    now = int(time.time())
    expect_auth_error(auth, bearer(mint(nbf=now + 600, lifetime=900)), "nbf", now=now)


def test_lifetime_too_long_rejected() -> None:
    auth = make_auth(max_token_lifetime_s=3600)
    expect_auth_error(auth, bearer(mint(lifetime=3601)), "lifetime 3601s exceeds maximum 3600s")
    assert auth.verify(bearer(mint(lifetime=3600)), AUD)


@pytest.mark.parametrize("claim", ["exp", "iat", "jti"])
def test_required_claim_missing_rejected(claim: str) -> None:
    auth = make_auth()
    dropped: dict[str, Any] = {claim: _DROP}
    token = mint(**dropped)
    assert claim not in jwt.decode(token, options={"verify_signature": False})
    expect_auth_error(auth, bearer(token), f"claim {claim}")


@pytest.mark.parametrize(("tenant", "label"), [("t-9", "'t-9'"), (_DROP, "None")])
def test_tenant_not_allowed_rejected(tenant: object, label: str) -> None:
    auth = make_auth([TrustedClient(iss=SANDBOX_ISS, jku=(SANDBOX_JKU,), tenants=("t-1",))])
    expect_auth_error(auth, bearer(mint(tenant=tenant)), f"tenant {label} not allowed")


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (None, "missing Authorization"),
        ("", "missing Authorization"),
        ("   ", "missing Authorization"),
        ("Bearer", "empty Bearer token"),
        ("Bearer    ", "empty Bearer token"),
        ("Basic dXNlcjpwYXNz", "not Bearer"),
        ("Token abc.def.ghi", "not Bearer"),
        ("Bearer not-a-jwt", "not a compact JWS"),
        ("Bearer a.b.c", "malformed JWT header"),
    ],
)
def test_missing_or_malformed_authorization_header_rejected(header: str | None, match: str) -> None:
    expect_auth_error(make_auth(), header, match)


def test_token_without_bearer_prefix_rejected() -> None:
    token = mint()
    expect_auth_error(make_auth(), token, "not Bearer")


def test_oversized_token_rejected() -> None:
    expect_auth_error(make_auth(), bearer(mint(padding="x" * 20_000)), "too large")


# ------------------------------------------------------------------------------------------
# JWKS retrieval: timeout, errors, cache, rotation
# ------------------------------------------------------------------------------------------


def test_jwks_fetch_timeout_rejected() -> None:
    adapter = FakeJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS})
    adapter.error = requests.exceptions.ConnectTimeout("simulated timeout")
    auth = make_auth(adapter=adapter, jwks_timeout_s=0.5)

    expect_auth_error(auth, bearer(mint()), "JWKS .* unavailable")
    assert adapter.calls == [(SANDBOX_JKU, 0.5)]


def test_jwks_failure_is_not_retried_within_10_s_then_recovers() -> None:
    clock = FakeClock()
    adapter = FakeJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS})
    adapter.status = 503
    auth = make_auth(adapter=adapter, clock=clock)

    expect_auth_error(auth, bearer(mint()), "unavailable")
    clock.value += 5
    expect_auth_error(auth, bearer(mint()), "recent fetch failed")
    assert len(adapter.calls) == 1
    adapter.status = 200
    clock.value += 6
    assert auth.verify(bearer(mint()), AUD)
    assert len(adapter.calls) == 2


def test_jwks_with_invalid_content_rejected() -> None:
    adapter = FakeJwksAdapter({SANDBOX_JKU: {"not": "a jwks"}})
    expect_auth_error(make_auth(adapter=adapter), bearer(mint()), "unavailable")


def test_jwks_cache_used_for_second_verify_and_refreshed_after_ttl() -> None:
    clock = FakeClock()
    adapter = FakeJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS})
    auth = make_auth(adapter=adapter, clock=clock, jwks_cache_ttl_s=300)

    assert auth.verify(bearer(mint()), AUD)
    clock.value += 299
    assert auth.verify(bearer(mint()), AUD)
    assert len(adapter.calls) == 1  # second verify served from the cache

    clock.value += 2  # TTL elapsed
    assert auth.verify(bearer(mint()), AUD)
    assert len(adapter.calls) == 2


def test_key_rotation_unknown_kid_triggers_one_rate_limited_refetch() -> None:
    clock = FakeClock()
    old_jwks = copy.deepcopy(SANDBOX_JWKS)
    adapter = FakeJwksAdapter({SANDBOX_JKU: old_jwks})
    auth = make_auth(adapter=adapter, clock=clock)
    assert auth.verify(bearer(mint()), AUD)
    assert len(adapter.calls) == 1

    # The client rotates: publishes a new key (the test kit's ES384 key) under a new kid.
    new_public = next(k for k in CRD_PUBLIC_JWKS["keys"] if k["kty"] == "EC")
    adapter.documents[SANDBOX_JKU] = {"keys": [*old_jwks["keys"], new_public]}
    new_token = mint(CRD_EC_PRIVATE)

    clock.value += 5  # within 10 s of the last fetch: no refetch yet
    expect_auth_error(auth, bearer(new_token), "unknown kid")
    assert len(adapter.calls) == 1

    clock.value += 6  # 11 s after the last fetch: exactly one refetch finds the new key
    assert auth.verify(bearer(new_token), AUD)["iss"] == SANDBOX_ISS
    assert len(adapter.calls) == 2

    # the refreshed set is cached: both keys now verify without fetching
    assert auth.verify(bearer(mint()), AUD)
    assert auth.verify(bearer(mint(CRD_EC_PRIVATE)), AUD)
    expect_auth_error(auth, bearer(mint(kid="still-unknown")), "unknown kid")
    assert len(adapter.calls) == 2


def test_jwks_private_and_unusable_keys_are_ignored_when_fetched() -> None:
    adapter = FakeJwksAdapter({CRD_JKU: CRD_JWKS_ALL})  # private entries share the kids
    auth = make_auth([TrustedClient(iss=CRD_ISS, jku=(CRD_JKU,))], adapter)
    token = mint(CRD_RSA_PRIVATE, alg="RS384", iss=CRD_ISS, jku=CRD_JKU)
    assert auth.verify(bearer(token), AUD)["iss"] == CRD_ISS


def test_header_jku_choice_when_client_has_several_jku() -> None:
    second = "https://sandbox.cds-hooks.org/keys-2.json"
    adapter = FakeJwksAdapter({SANDBOX_JKU: {"keys": []}, second: SANDBOX_JWKS})
    auth = make_auth([TrustedClient(iss=SANDBOX_ISS, jku=(SANDBOX_JKU, second))], adapter)

    assert auth.verify(bearer(mint(jku=second)), AUD)
    assert adapter.urls == [second]
    expect_auth_error(auth, bearer(mint(jku=_DROP)), "no jku header")


# ------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------


def test_authenticator_rejects_private_keys_in_inline_jwks() -> None:
    with pytest.raises(ValueError, match=r"trusted client 0: field 'jwks': keys\[1\] contains"):
        make_auth([TrustedClient(iss=CRD_ISS, jwks=CRD_JWKS_ALL)])


def test_authenticator_rejects_client_without_keys_source_and_duplicate_iss() -> None:
    with pytest.raises(ValueError, match="field 'jku': required"):
        make_auth([TrustedClient(iss=SANDBOX_ISS)])
    client = TrustedClient(iss=SANDBOX_ISS, jku=(SANDBOX_JKU,))
    with pytest.raises(ValueError, match="trusted client 1: duplicate iss"):
        make_auth([client, client])


def test_load_trusted_clients_from_inline_json() -> None:
    source = json.dumps(
        [
            {"iss": SANDBOX_ISS, "jku": [SANDBOX_JKU]},
            {"iss": CRD_ISS, "jku": [CRD_JKU], "jwks": CRD_PUBLIC_JWKS, "tenants": ["a", "b"]},
        ]
    )

    clients = load_trusted_clients(source)

    assert clients == (
        TrustedClient(iss=SANDBOX_ISS, jku=(SANDBOX_JKU,)),
        TrustedClient(iss=CRD_ISS, jku=(CRD_JKU,), jwks=CRD_PUBLIC_JWKS, tenants=("a", "b")),
    )


def test_load_trusted_clients_from_yaml_with_relative_jwks_file(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "crd.json").write_text(json.dumps(CRD_PUBLIC_JWKS), encoding="utf-8")
    config = tmp_path / "clients.yaml"
    config.write_text(
        f"""
- iss: {SANDBOX_ISS}
  jku:
    - {SANDBOX_JKU}
- iss: {CRD_ISS}
  jwks_file: keys/crd.json
  tenants: [tenant-1]
""",
        encoding="utf-8",
    )

    clients = load_trusted_clients(str(config))

    assert [c.iss for c in clients] == [SANDBOX_ISS, CRD_ISS]
    assert clients[0].jku == (SANDBOX_JKU,)
    assert clients[0].jwks is None
    assert clients[1].jwks == CRD_PUBLIC_JWKS
    assert clients[1].tenants == ("tenant-1",)
    # the loaded configuration works end to end
    auth = make_auth(list(clients))
    token = mint(CRD_RSA_PRIVATE, alg="RS384", iss=CRD_ISS, jku=_DROP, tenant="tenant-1")
    assert auth.verify(bearer(token), AUD)["tenant"] == "tenant-1"


def test_load_trusted_clients_from_json_file(tmp_path: Path) -> None:
    config = tmp_path / "clients.json"
    config.write_text(json.dumps([{"iss": SANDBOX_ISS, "jwks": SANDBOX_JWKS}]), encoding="utf-8")
    assert load_trusted_clients(str(config)) == (TrustedClient(iss=SANDBOX_ISS, jwks=SANDBOX_JWKS),)


_GOOD = {"iss": SANDBOX_ISS, "jku": [SANDBOX_JKU]}


@pytest.mark.parametrize(
    ("bad_entry", "match"),
    [
        ({"jku": [CRD_JKU]}, r"entry 1: field 'iss': missing"),
        ({"iss": 42, "jku": [CRD_JKU]}, r"entry 1: field 'iss': must be a string"),
        ({"iss": "", "jku": [CRD_JKU]}, r"entry 1: field 'iss': must be a non-empty"),
        ({"iss": CRD_ISS}, r"entry 1: field 'jku': required when no jwks"),
        ({"iss": CRD_ISS, "jku": CRD_JKU}, r"entry 1: field 'jku': must be a list"),
        ({"iss": CRD_ISS, "jku": ["http://inferno.example.org/j"]}, r"entry 1: field 'jku'.*https"),
        ({"iss": CRD_ISS, "jku": ["jwks.json"]}, r"entry 1: field 'jku'.*absolute"),
        ({"iss": CRD_ISS, "jku": [CRD_JKU], "tenant": ["x"]}, r"entry 1: field 'tenant': unknown"),
        ({"iss": CRD_ISS, "jku": [CRD_JKU], "tenants": "x"}, r"entry 1: field 'tenants': must"),
        ({"iss": CRD_ISS, "jwks": {"keys": []}}, r"entry 1: field 'jwks': JWKS contains no keys"),
        ({"iss": CRD_ISS, "jwks": [1]}, r"entry 1: field 'jwks': must be a mapping"),
        ({"iss": CRD_ISS, "jwks": CRD_JWKS_ALL}, r"entry 1: field 'jwks'.*private key material"),
        (
            {"iss": CRD_ISS, "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}},
            r"entry 1: field 'jwks': keys\[0\] unsupported kty 'oct'",
        ),
        (
            {"iss": CRD_ISS, "jwks": SANDBOX_JWKS, "jwks_file": "x.json"},
            r"entry 1: field 'jwks_file': give either",
        ),
        ({"iss": CRD_ISS, "jwks_file": "does-not-exist.json"}, r"entry 1: field 'jwks_file'.*read"),
        ({"iss": SANDBOX_ISS, "jku": [CRD_JKU]}, r"entry 1: field 'iss': duplicates entry 0"),
        ("just-a-string", r"entry 1: field '<entry>': must be a mapping"),
    ],
)
def test_load_trusted_clients_error_names_entry_and_field(bad_entry: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_trusted_clients(json.dumps([_GOOD, bad_entry]))


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("", "empty source"),
        ('{"iss": "x"}', "must be a list"),
        ("[{", "invalid JSON"),
        ("/nonexistent/clients.yaml", "cannot read file"),
    ],
)
def test_load_trusted_clients_document_errors(source: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_trusted_clients(source)


def test_load_trusted_clients_empty_list_trusts_nobody() -> None:
    assert load_trusted_clients("[]") == ()
    auth = ClientAuthenticator(load_trusted_clients(" [ ] "))
    expect_auth_error(auth, bearer(mint()), "untrusted iss")


def test_load_trusted_clients_allows_http_jku_on_localhost() -> None:
    local = "http://localhost:4567/custom/crd_server/jwks.json"
    clients = load_trusted_clients(json.dumps([{"iss": "http://localhost:4567", "jku": [local]}]))
    assert clients[0].jku == (local,)


# ------------------------------------------------------------------------------------------
# replay cache
# ------------------------------------------------------------------------------------------


def test_in_memory_replay_cache_records_and_expires() -> None:
    clock = FakeClock(100.0)
    cache = InMemoryReplayCache(clock=clock)

    assert cache.seen_before("a", "iss-1", expires_at=150.0) is False
    assert cache.seen_before("a", "iss-1", expires_at=150.0) is True
    assert cache.seen_before("a", "iss-2", expires_at=150.0) is False  # keyed by iss + jti
    clock.value = 151.0
    assert cache.seen_before("b", "iss-1", expires_at=300.0) is False
    assert len(cache) == 1  # both "a" entries evicted
    assert cache.seen_before("a", "iss-1", expires_at=300.0) is False


def test_in_memory_replay_cache_is_bounded() -> None:
    cache = InMemoryReplayCache(max_entries=3, clock=FakeClock(0.0))
    for number in range(5):
        assert cache.seen_before(f"j{number}", "iss", expires_at=100.0 + number) is False
    assert len(cache) == 3
    # the entries closest to expiry (j0, j1) were dropped; the newest are still remembered
    assert cache.seen_before("j4", "iss", expires_at=104.0) is True
    assert cache.seen_before("j3", "iss", expires_at=103.0) is True


def test_supplied_replay_cache_is_used_even_when_empty() -> None:
    cache = InMemoryReplayCache()
    auth = make_auth(replay_cache=cache)
    assert auth.verify(bearer(mint(jti="shared-cache")), AUD)
    assert len(cache) == 1
    assert cache.seen_before("shared-cache", SANDBOX_ISS, time.time() + 600) is True


def test_replay_cache_entry_kept_until_exp_plus_leeway() -> None:
    recorded: list[tuple[str, str, float]] = []

    class Recorder:
        def seen_before(self, jti: str, iss: str, expires_at: float) -> bool:
            recorded.append((jti, iss, expires_at))
            return False

    auth = make_auth(replay_cache=Recorder(), leeway_s=45)
    token = mint(jti="r-1")
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert auth.verify(bearer(token), AUD)
    assert recorded == [("r-1", SANDBOX_ISS, exp + 45)]


def test_log_output_never_contains_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="cds_service.security.client_auth")
    adapter = FakeJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS})
    auth = make_auth(adapter=adapter)
    token = mint()
    assert auth.verify(bearer(token), AUD)
    expect_auth_error(auth, bearer(token), "replayed")
    expect_auth_error(auth, bearer(mint(kid="nope")), "unknown kid")
    assert caplog.records  # something was logged ...
    assert token.split(".")[2] not in caplog.text  # ... but never the token
