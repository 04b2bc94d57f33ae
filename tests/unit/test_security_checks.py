"""One negative test per JWT header, claim and JWK check of cds_service.security.client_auth that
had none.

Each test fails when its check is removed from the module (checked by deleting the check and
by mutation testing, see docs/testing.md): it matches the check's own message, or shows that
the token or key would otherwise be accepted. Keys with a problem are tried twice: in the
configuration (rejected at start-up, naming the problem) and in a fetched JWKS (skipped, so the
token signed with that key is refused as having an unknown kid).
"""

from __future__ import annotations

import base64
import copy
import io
import json
import time
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from jwt.warnings import InsecureKeyLengthWarning

from cds_service.security.client_auth import AuthError, ClientAuthenticator, TrustedClient
from tests.unit.test_security import (
    AUD,
    CRD_EC_PRIVATE,
    CRD_ISS,
    CRD_JKU,
    CRD_PUBLIC_JWKS,
    CRD_RSA_PRIVATE,
    SANDBOX_ISS,
    SANDBOX_JKU,
    SANDBOX_JWKS,
    SANDBOX_PRIVATE,
    FakeJwksAdapter,
    bearer,
    expect_auth_error,
    fake_session,
    make_auth,
    mint,
)

MAX_JWKS_BYTES = 512 * 1024  # cds_service.security.client_auth's cap on a fetched JWKS

#: The test kit's published EC public key: kty EC, crv P-384, alg ES384, use sig, key_ops verify.
CRD_EC_PUBLIC = next(k for k in CRD_PUBLIC_JWKS["keys"] if k["kty"] == "EC")
CRD_RSA_PUBLIC = next(k for k in CRD_PUBLIC_JWKS["keys"] if k["kty"] == "RSA")


def crd_auth(keys: list[Mapping[str, Any]], **kwargs: Any) -> ClientAuthenticator:
    """The test kit as a client whose keys are fetched from its jku."""
    adapter = FakeJwksAdapter({CRD_JKU: {"keys": keys}})
    return make_auth([TrustedClient(iss=CRD_ISS, jku=(CRD_JKU,))], adapter, **kwargs)


def config_error(key: Mapping[str, Any], problem: str) -> None:
    """A client configured with ``key`` inline is refused at start-up, naming ``problem``."""
    with pytest.raises(ValueError, match=rf"trusted client 0: field 'jwks': keys\[0\] {problem}"):
        ClientAuthenticator([TrustedClient(iss=CRD_ISS, jwks={"keys": [key]})])


def accepted_in_config(*keys: Mapping[str, Any]) -> bool:
    ClientAuthenticator([TrustedClient(iss=CRD_ISS, jwks={"keys": list(keys)})])
    return True


def ec_key(**changes: Any) -> dict[str, Any]:
    """The test kit's EC public key with members changed (``None`` removes one)."""
    key = copy.deepcopy(CRD_EC_PUBLIC)
    for name, value in changes.items():
        if value is None:
            key.pop(name, None)
        else:
            key[name] = value
    return key


def ec_token(**claims: Any) -> str:
    return mint(CRD_EC_PRIVATE, iss=CRD_ISS, jku=CRD_JKU, **claims)


# ------------------------------------------------------------------------------------------
# header: crit
# ------------------------------------------------------------------------------------------


def signed(header: Mapping[str, Any], payload: Mapping[str, Any]) -> str:
    """An ES384 JWS with exactly this header (PyJWT's encode would drop ``b64: true``)."""
    key = jwt.PyJWK(dict(SANDBOX_PRIVATE), algorithm="ES384").key
    signing_input = f"{b64json({'alg': 'ES384', **header})}.{b64json(payload)}"
    signature = jwt.get_algorithm_by_name("ES384").sign(signing_input.encode(), key)
    return f"{signing_input}.{b64url(signature)}"


def b64json(obj: Mapping[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sandbox_payload(now: float) -> dict[str, Any]:
    issued = int(now)
    return {"iss": SANDBOX_ISS, "aud": AUD, "iat": issued, "exp": issued + 300, "jti": "c-1"}


SANDBOX_HEADER = {"typ": "JWT", "kid": SANDBOX_PRIVATE["kid"], "jku": SANDBOX_JKU}


def test_crit_header_is_rejected_before_any_key_fetch() -> None:
    """``crit: ["b64"]`` with ``b64: true`` is a header PyJWT understands and accepts: only this
    module's own check refuses it (CDS Hooks defines no critical extension)."""
    adapter = FakeJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS})
    auth = make_auth(adapter=adapter)
    token = signed({**SANDBOX_HEADER, "crit": ["b64"], "b64": True}, sandbox_payload(time.time()))
    assert jwt.get_unverified_header(token)["crit"] == ["b64"]  # a well-formed header

    expect_auth_error(auth, bearer(token), "crit header not supported")
    assert adapter.calls == []
    # the same token without crit is fine: only crit was wrong
    assert auth.verify(bearer(signed(SANDBOX_HEADER, sandbox_payload(time.time()))), AUD)


def test_crit_naming_an_unknown_extension_is_rejected_as_malformed() -> None:
    """PyJWT itself refuses a crit extension it does not implement, before this module looks."""
    header = {**SANDBOX_HEADER, "crit": ["exp"], "exp": 1}
    token = signed(header, sandbox_payload(time.time()))
    expect_auth_error(make_auth(), bearer(token), "malformed JWT header")


# ------------------------------------------------------------------------------------------
# claims: exp after iat, backup aud check
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exp_minus_iat", [0, -10])
def test_exp_not_after_iat_is_rejected(exp_minus_iat: int) -> None:
    """iat a little ahead (inside the 60 s leeway), exp not after it but not yet expired."""
    now = 1_800_000_000.0
    iat = int(now) + 30
    auth = make_auth(leeway_s=60)
    token = mint(now=iat, lifetime=exp_minus_iat)

    expect_auth_error(auth, bearer(token), "exp is not after iat", now=now)
    assert auth.verify(bearer(mint(now=iat, lifetime=1)), AUD, now=now)  # one second is enough


def test_pyjwt_checks_aud_again_when_verifying_the_signature() -> None:
    """The second line of defence: the claim check runs first, so call the signature step
    directly with a token for another endpoint."""
    auth = make_auth()
    other = "https://cds.example.org/cds-services/other-service"
    token = mint(aud=other, jku=SANDBOX_JKU)
    candidates = list(SANDBOX_JWKS["keys"])

    with pytest.raises(AuthError, match=r"InvalidAudienceError"):
        auth._verify_signature(token, candidates, "ES384", AUD, SANDBOX_ISS)
    claims = auth._verify_signature(token, candidates, "ES384", other, SANDBOX_ISS)
    assert claims["aud"] == other


def test_pyjwt_checks_iss_again_when_verifying_the_signature() -> None:
    auth = make_auth()
    token = mint(jku=SANDBOX_JKU)
    candidates = list(SANDBOX_JWKS["keys"])
    with pytest.raises(AuthError, match=r"InvalidIssuerError"):
        auth._verify_signature(token, candidates, "ES384", AUD, "https://other.example.org")


# ------------------------------------------------------------------------------------------
# JWK checks
# ------------------------------------------------------------------------------------------


def test_the_reference_key_is_usable_so_each_change_below_is_the_only_problem() -> None:
    assert accepted_in_config(CRD_EC_PUBLIC, CRD_RSA_PUBLIC)
    assert crd_auth([CRD_EC_PUBLIC]).verify(bearer(ec_token()), AUD)["iss"] == CRD_ISS


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"use": "enc"}, r"use is 'enc', not 'sig'"),
        ({"use": ""}, r"use is '', not 'sig'"),
        ({"key_ops": ["encrypt"]}, r"key_ops does not allow 'verify'"),
        ({"key_ops": []}, r"key_ops does not allow 'verify'"),
        ({"key_ops": "verify"}, r"key_ops does not allow 'verify'"),  # a string, not a list
        ({"alg": "ES256"}, r"alg ES256 does not match crv 'P-384'"),
        ({"alg": "ES512"}, r"alg ES512 does not match crv 'P-384'"),
        ({"alg": "RS384"}, r"alg 'RS384' is not a supported signature algorithm for kty EC"),
        ({"alg": "HS256"}, r"alg 'HS256' is not a supported signature algorithm for kty EC"),
        ({"crv": "P-256"}, r"alg ES384 does not match crv 'P-256'"),
        ({"crv": "secp256k1", "alg": None}, r"unsupported crv 'secp256k1'"),
        ({"x": "AAAA"}, r"cannot be parsed as a public key"),
        ({"y": None}, r"cannot be parsed as a public key"),
        ({"kid": None}, r"has no kid"),
        ({"kid": ""}, r"has no kid"),
        ({"kid": 7}, r"has no kid"),
    ],
)
def test_unusable_jwk_is_refused_in_configuration_and_skipped_when_fetched(
    changes: dict[str, Any], problem: str
) -> None:
    key = ec_key(**changes)
    config_error(key, problem)
    # fetched: the key is skipped, so a token signed with its private half has an unknown kid
    expect_auth_error(crd_auth([key]), bearer(ec_token()), "unknown kid")


@pytest.mark.parametrize(
    "changes",
    [
        {"use": None},
        {"key_ops": None},
        {"alg": None},
        {"key_ops": ["sign", "verify"]},
    ],
)
def test_optional_jwk_members_absent_or_allowing_verify_are_accepted(
    changes: dict[str, Any],
) -> None:
    key = ec_key(**changes)
    assert accepted_in_config(key)
    assert crd_auth([key]).verify(bearer(ec_token()), AUD)["iss"] == CRD_ISS


@pytest.fixture(scope="module")
def rsa_2047() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2047)  # noqa: S505 - the point


def test_rsa_key_shorter_than_2048_bits_is_refused(rsa_2047: rsa.RSAPrivateKey) -> None:
    public = json.loads(RSAAlgorithm.to_jwk(rsa_2047.public_key()))
    public.update({"kid": "short-rsa", "use": "sig", "alg": "RS384"})
    config_error(public, "RSA key shorter than 2048 bits")

    adapter = FakeJwksAdapter({CRD_JKU: {"keys": [public]}})
    auth = make_auth([TrustedClient(iss=CRD_ISS, jku=(CRD_JKU,))], adapter)
    issued = int(time.time())
    payload = {"iss": CRD_ISS, "aud": AUD, "iat": issued, "exp": issued + 300, "jti": "r"}
    with pytest.warns(InsecureKeyLengthWarning):  # PyJWT signs with it, but warns
        token = jwt.encode(
            payload, rsa_2047, algorithm="RS384", headers={"kid": "short-rsa", "jku": CRD_JKU}
        )
    expect_auth_error(auth, bearer(token), "unknown kid")


def test_rsa_key_of_exactly_2048_bits_is_accepted() -> None:
    assert jwt.PyJWK(CRD_RSA_PUBLIC, algorithm="RS384").key.key_size == 2048
    assert accepted_in_config(CRD_RSA_PUBLIC)
    token = mint(CRD_RSA_PRIVATE, alg="RS384", iss=CRD_ISS, jku=CRD_JKU)
    assert crd_auth([CRD_RSA_PUBLIC]).verify(bearer(token), AUD)["iss"] == CRD_ISS


# ------------------------------------------------------------------------------------------
# JWKS fetch deadline
# ------------------------------------------------------------------------------------------


class TrickledBody(io.RawIOBase):
    """A body that arrives one byte every ``gap_s``: each read is quick, the whole is slow."""

    def __init__(self, data: bytes, gap_s: float) -> None:
        self._data = data
        self._gap_s = gap_s
        self._position = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._position >= len(self._data):
            return b""
        time.sleep(self._gap_s)
        self._position += 1
        return self._data[self._position - 1 : self._position]


class ServedBody(FakeJwksAdapter):
    """Serves these exact bytes as the JWKS, trickled one byte every ``gap_s`` if given."""

    def __init__(self, body: bytes, gap_s: float = 0.0) -> None:
        super().__init__({SANDBOX_JKU: {}})
        self.body = body
        self.gap_s = gap_s

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        response = super().send(request, **kwargs)
        response.raw = TrickledBody(self.body, self.gap_s) if self.gap_s else io.BytesIO(self.body)
        return response


SANDBOX_JWKS_BYTES = json.dumps(SANDBOX_JWKS).encode()


def sandbox_auth(adapter: FakeJwksAdapter, jwks_timeout_s: float) -> ClientAuthenticator:
    return ClientAuthenticator(
        [TrustedClient(iss=SANDBOX_ISS, jku=(SANDBOX_JKU,))],
        session=fake_session(adapter),
        jwks_timeout_s=jwks_timeout_s,
    )


def test_jwks_body_not_complete_within_the_timeout_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every read is quick (so the per-read timeout never fires); the whole body takes about
    three seconds, well past the 0.3 s budget: the fetch is abandoned at the deadline. Without
    the deadline the body would complete and the token be accepted."""
    adapter = ServedBody(SANDBOX_JWKS_BYTES, gap_s=3.0 / len(SANDBOX_JWKS_BYTES))
    expect_auth_error(sandbox_auth(adapter, 0.3), bearer(mint()), "JWKS .* unavailable")
    assert adapter.calls == [(SANDBOX_JKU, 0.3)]
    assert f"JWKS from {SANDBOX_JKU} is invalid: not received within the timeout" in caplog.text


def test_jwks_body_trickled_within_the_timeout_is_accepted() -> None:
    adapter = ServedBody(SANDBOX_JWKS_BYTES, gap_s=1e-6)
    assert sandbox_auth(adapter, 30.0).verify(bearer(mint()), AUD)["iss"] == SANDBOX_ISS


def test_jwks_body_may_fill_the_size_limit_but_not_exceed_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    padding = MAX_JWKS_BYTES - len(SANDBOX_JWKS_BYTES)
    exactly = ServedBody(SANDBOX_JWKS_BYTES + b" " * padding)  # JSON allows trailing spaces
    assert sandbox_auth(exactly, 30.0).verify(bearer(mint()), AUD)["iss"] == SANDBOX_ISS

    one_more = ServedBody(SANDBOX_JWKS_BYTES + b" " * (padding + 1))
    expect_auth_error(sandbox_auth(one_more, 30.0), bearer(mint()), "JWKS .* unavailable")
    assert f"JWKS from {SANDBOX_JKU} is invalid: larger than {MAX_JWKS_BYTES} bytes" in caplog.text


# ------------------------------------------------------------------------------------------
# signature step
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS384"])
def test_rsa_key_without_alg_verifies_with_the_token_alg(alg: str) -> None:
    """The key is bound to the token's (allowlisted) alg, not to a default guessed from its kty
    (RS256 for RSA): otherwise a key published without ``alg`` verifies nothing."""
    key = {k: v for k, v in CRD_RSA_PUBLIC.items() if k != "alg"}
    token = mint(CRD_RSA_PRIVATE, alg=alg, iss=CRD_ISS, jku=CRD_JKU)
    auth = crd_auth([key], algorithms=(alg,))
    assert auth.verify(bearer(token), AUD)["iss"] == CRD_ISS


def test_signature_failure_message_is_exact() -> None:
    """Operators search logs for it: the reason, then the issuer."""
    forged = mint(CRD_EC_PRIVATE, kid=SANDBOX_PRIVATE["kid"])
    error = expect_auth_error(make_auth(), bearer(forged), "invalid signature")
    assert str(error) == f"invalid signature (iss {SANDBOX_ISS!r})"


def test_every_published_key_with_the_kid_is_tried() -> None:
    """A fetched JWKS may publish two keys under one kid (a careless rotation): the token is
    accepted if any of them verifies it, not only the first."""
    impostor = {**SANDBOX_JWKS["keys"][0], "kid": CRD_EC_PUBLIC["kid"]}  # another P-384 key
    auth = crd_auth([impostor, CRD_EC_PUBLIC])
    assert auth.verify(bearer(ec_token()), AUD)["iss"] == CRD_ISS
    # and with only the other key under that kid, the signature does not verify
    expect_auth_error(crd_auth([impostor]), bearer(ec_token()), "invalid signature")


def test_jwk_that_is_not_an_object_is_refused_in_configuration() -> None:
    config_error("not-a-key", "is not a JSON object")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# which published key may verify which token alg
# ------------------------------------------------------------------------------------------


def test_rsa_key_declared_for_one_alg_does_not_verify_another() -> None:
    """The key says alg RS384: a token signed RS512 with the same private key is refused."""
    token = mint(CRD_RSA_PRIVATE, alg="RS512", iss=CRD_ISS, jku=CRD_JKU)
    auth = crd_auth([CRD_RSA_PUBLIC], algorithms=("RS384", "RS512"))
    expect_auth_error(auth, bearer(token), "does not fit alg RS512")


def test_ec_key_without_alg_does_not_verify_an_rsa_token() -> None:
    ec_without_alg = ec_key(alg=None)
    token = mint(CRD_RSA_PRIVATE, alg="RS384", iss=CRD_ISS, jku=CRD_JKU, kid=CRD_EC_PUBLIC["kid"])
    expect_auth_error(crd_auth([ec_without_alg]), bearer(token), "does not fit alg RS384")


def test_ec_key_of_another_curve_does_not_verify() -> None:
    """An ES256 header naming a P-384 key published without alg: refused before any
    signature check (the signature below is not even valid)."""
    issued = int(time.time())
    header = {"alg": "ES256", "typ": "JWT", "kid": CRD_EC_PUBLIC["kid"], "jku": CRD_JKU}
    payload = {"iss": CRD_ISS, "aud": AUD, "iat": issued, "exp": issued + 300, "jti": "curve"}
    token = f"{b64json(header)}.{b64json(payload)}.{b64url(b'x' * 64)}"
    auth = crd_auth([ec_key(alg=None)], algorithms=("ES256", "ES384"))
    expect_auth_error(auth, bearer(token), "does not fit alg ES256")
