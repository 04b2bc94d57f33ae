"""Client JWT verification at run time: the replay cache, the JWKS cache and what each refusal
says.

Written for the survivors of a mutation run over cds_service.security.client_auth
(docs/testing.md): the refusal messages are what an operator reads in the log (the client only
gets a bare 401), so each is matched whole.
"""

from __future__ import annotations

import io
import logging
import re
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from cds_service.security.client_auth import (
    AuthError,
    ClientAuthenticator,
    InMemoryReplayCache,
    TrustedClient,
)
from tests.unit.test_security import (
    _DROP,
    AUD,
    CRD_EC_PRIVATE,
    CRD_ISS,
    CRD_JKU,
    CRD_PUBLIC_JWKS,
    SANDBOX_ISS,
    SANDBOX_JKU,
    SANDBOX_JWKS,
    FakeClock,
    FakeJwksAdapter,
    bearer,
    make_auth,
    mint,
)
from tests.unit.test_security_checks import SANDBOX_HEADER, b64json, b64url, sandbox_payload, signed

LOGGER = "cds_service.security.client_auth"


# ------------------------------------------------------------------------------------------
# replay cache
# ------------------------------------------------------------------------------------------


def test_a_full_replay_cache_warns_with_its_size(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    cache = InMemoryReplayCache(max_entries=2, clock=FakeClock(0.0))
    cache.seen_before("j1", "iss", expires_at=10.0)
    cache.seen_before("j2", "iss", expires_at=20.0)
    assert caplog.messages == []
    cache.seen_before("j3", "iss", expires_at=30.0)
    assert caplog.messages == ["replay cache full (2 entries): evicted an entry"]


def test_an_entry_is_forgotten_at_its_expiry_time() -> None:
    """At ``exp + leeway`` the token is refused as expired: its jti need not be kept."""
    clock = FakeClock(100.0)
    cache = InMemoryReplayCache(clock=clock)
    assert cache.seen_before("a", "iss", expires_at=150.0) is False
    clock.value = 149.9
    assert cache.seen_before("a", "iss", expires_at=150.0) is True
    clock.value = 150.0
    assert cache.seen_before("b", "iss", expires_at=300.0) is False
    assert len(cache) == 1


# ------------------------------------------------------------------------------------------
# refusal messages
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("iss", "shown"),
    [
        ("h" * 62, "'" + "h" * 62 + "'"),  # its repr fills the 64 characters
        ("h" * 63, "'" + "h" * 60 + "..."),  # one more: cut to 61 and marked
    ],
)
def test_an_attacker_chosen_value_is_cut_to_64_characters_in_the_message(
    iss: str, shown: str
) -> None:
    with pytest.raises(AuthError) as info:
        make_auth().verify(bearer(mint(iss=iss)), AUD)
    assert str(info.value) == f"untrusted iss {shown}"


# ------------------------------------------------------------------------------------------
# JWKS fetches: one at a time per URL, never one URL waiting for another
# ------------------------------------------------------------------------------------------

#: How long a test waits for something that happens at once when the code is right (a fetch
#: from a free URL, a released fetch finishing): only a broken lock reaches it.
WAIT_S = 5.0
#: How long a test watches for a second fetch of a URL that must not happen: without the lock
#: it starts within milliseconds; with it, never (a loaded machine can only hide the fault).
NO_SECOND_FETCH_S = 0.5


class HeldJwksAdapter(FakeJwksAdapter):
    """Holds every fetch of ``held_url`` until ``release`` is set; says when one started."""

    def __init__(self, documents: dict[str, Mapping[str, Any]], held_url: str) -> None:
        super().__init__(documents)
        self.held_url = held_url
        self.release = threading.Event()
        self.fetches_of_held_url = threading.Semaphore(0)

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        if request.url == self.held_url:
            self.fetches_of_held_url.release()
            assert self.release.wait(WAIT_S * 4), "test never released the held fetch"
        return super().send(request, **kwargs)


def verify_in_thread(
    auth: ClientAuthenticator, token: str
) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(auth.verify(bearer(token), AUD))
        except AuthError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_concurrent_verifies_fetch_a_jwks_url_once() -> None:
    adapter = HeldJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS}, held_url=SANDBOX_JKU)
    auth = make_auth(adapter=adapter)
    first, first_outcome = verify_in_thread(auth, mint())
    assert adapter.fetches_of_held_url.acquire(timeout=WAIT_S)  # the first fetch is in flight
    second, second_outcome = verify_in_thread(auth, mint())

    # the second verify waits for the first fetch instead of fetching again
    assert not adapter.fetches_of_held_url.acquire(timeout=NO_SECOND_FETCH_S)
    adapter.release.set()
    first.join(WAIT_S)
    second.join(WAIT_S)
    assert len(adapter.calls) == 1
    assert [type(o) for o in first_outcome + second_outcome] == [dict, dict]


def test_a_slow_jwks_url_does_not_hold_up_another_client() -> None:
    adapter = HeldJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS, CRD_JKU: CRD_PUBLIC_JWKS}, SANDBOX_JKU)
    clients = [
        TrustedClient(iss=SANDBOX_ISS, jku=(SANDBOX_JKU,)),
        TrustedClient(iss=CRD_ISS, jku=(CRD_JKU,)),
    ]
    auth = make_auth(clients, adapter)
    held, held_outcome = verify_in_thread(auth, mint())
    assert adapter.fetches_of_held_url.acquire(timeout=WAIT_S)
    try:
        other, other_outcome = verify_in_thread(
            auth, mint(CRD_EC_PRIVATE, iss=CRD_ISS, jku=CRD_JKU)
        )
        other.join(WAIT_S)
        assert [type(o) for o in other_outcome] == [dict]  # done while the other URL hangs
    finally:
        adapter.release.set()
        held.join(WAIT_S)
    assert [type(o) for o in held_outcome] == [dict]


# ------------------------------------------------------------------------------------------
# JWKS cache: its boundaries, a rotation, an endpoint that goes down
# ------------------------------------------------------------------------------------------


def cached_auth(**kwargs: Any) -> tuple[ClientAuthenticator, FakeJwksAdapter, FakeClock]:
    clock = FakeClock()
    adapter = FakeJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS})
    return make_auth(adapter=adapter, clock=clock, **kwargs), adapter, clock


def refusal(auth: ClientAuthenticator, token: str) -> str:
    with pytest.raises(AuthError) as info:
        auth.verify(bearer(token), AUD)
    return str(info.value)


def test_cached_keys_are_refetched_when_exactly_the_ttl_has_passed() -> None:
    auth, adapter, clock = cached_auth(jwks_cache_ttl_s=300)
    assert auth.verify(bearer(mint()), AUD)
    clock.value += 300
    assert auth.verify(bearer(mint()), AUD)
    assert len(adapter.calls) == 2


def test_a_failed_fetch_is_retried_when_exactly_10_s_have_passed() -> None:
    auth, adapter, clock = cached_auth()
    adapter.status = 503
    assert refusal(auth, mint()) == f"JWKS {SANDBOX_JKU} unavailable"
    adapter.status = 200
    clock.value += 10
    assert auth.verify(bearer(mint()), AUD)
    assert len(adapter.calls) == 2


def test_an_unknown_kid_refetch_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    auth, _, clock = cached_auth()
    assert auth.verify(bearer(mint()), AUD)
    clock.value += 11
    assert refusal(auth, mint(kid="new-kid")).startswith("unknown kid 'new-kid'")
    assert f"unknown kid 'new-kid' for JWKS {SANDBOX_JKU}: refetching (key rotation)" in (
        caplog.messages
    )


def test_fresh_keys_are_kept_when_a_rotation_refetch_fails() -> None:
    auth, adapter, clock = cached_auth()
    assert auth.verify(bearer(mint()), AUD)
    adapter.status = 503
    clock.value += 11
    assert refusal(auth, mint(kid="new-kid")) == f"unknown kid 'new-kid' for iss {SANDBOX_ISS!r}"
    assert auth.verify(bearer(mint()), AUD)  # the cached key still verifies, without a fetch
    assert len(adapter.calls) == 2


def test_expired_keys_are_not_used_when_the_endpoint_is_down() -> None:
    auth, adapter, clock = cached_auth(jwks_cache_ttl_s=300)
    assert auth.verify(bearer(mint()), AUD)
    adapter.status = 503
    clock.value += 305
    assert refusal(auth, mint()) == (
        f"JWKS {SANDBOX_JKU} unavailable and its cached keys expired 5 s ago (CDS_JWKS_CACHE_TTL_S)"
    )
    clock.value += 1  # within 10 s of the failed fetch: not fetched again
    assert refusal(auth, mint()) == f"JWKS {SANDBOX_JKU} unavailable (recent fetch failed)"
    assert len(adapter.calls) == 2


# ------------------------------------------------------------------------------------------
# the JWKS request and why a fetch failed
# ------------------------------------------------------------------------------------------


class CountedBody(io.RawIOBase):
    """``size`` bytes of JSON-ish filler that count how much was read; ``error`` on a read."""

    def __init__(self, size: int, error: Exception | None = None) -> None:
        self.remaining = size
        self.read_bytes = 0
        self.error = error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.error is not None:
            raise self.error
        count = min(len(buffer), self.remaining)
        buffer[:count] = b" " * count
        self.remaining -= count
        self.read_bytes += count
        return count


class ScriptedJwksAdapter(FakeJwksAdapter):
    """Records each request's headers; answers with ``body`` or a redirect when set."""

    def __init__(self, documents: dict[str, Mapping[str, Any]]) -> None:
        super().__init__(documents)
        self.headers: list[Mapping[str, str]] = []
        self.body: CountedBody | None = None
        self.redirect_to: str | None = None

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        self.headers.append(request.headers.copy())  # names are case-insensitive
        if self.redirect_to is not None and request.url != self.redirect_to:
            self.calls.append((str(request.url), kwargs.get("timeout")))
            response = requests.Response()
            response.url, response.request = str(request.url), request
            response.status_code = 302
            response.headers = CaseInsensitiveDict({"Location": self.redirect_to})
            response.raw = io.BytesIO(b"")
            return response
        response = super().send(request, **kwargs)
        if self.body is not None:
            response.raw = self.body
        return response


def scripted_auth() -> tuple[ClientAuthenticator, ScriptedJwksAdapter]:
    adapter = ScriptedJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS})
    return make_auth(adapter=adapter), adapter


def test_the_jwks_is_requested_as_json() -> None:
    auth, adapter = scripted_auth()
    assert auth.verify(bearer(mint()), AUD)
    assert adapter.headers[0]["Accept"] == "application/json"


def test_a_redirect_from_the_jku_is_not_followed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    auth, adapter = scripted_auth()
    elsewhere = "https://elsewhere.example.org/jwks.json"
    adapter.documents[elsewhere] = SANDBOX_JWKS
    adapter.redirect_to = elsewhere
    assert refusal(auth, mint()) == f"JWKS {SANDBOX_JKU} unavailable"
    assert adapter.urls == [SANDBOX_JKU]
    assert caplog.messages == [f"JWKS fetch from {SANDBOX_JKU}: HTTP 302"]


def test_an_oversized_jwks_is_not_read_past_the_limit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    auth, adapter = scripted_auth()
    adapter.body = CountedBody(16 * 1024 * 1024)
    assert refusal(auth, mint()) == f"JWKS {SANDBOX_JKU} unavailable"
    assert adapter.body.read_bytes <= 1024 * 1024
    assert caplog.messages == [
        f"JWKS from {SANDBOX_JKU} is invalid: larger than {512 * 1024} bytes"
    ]


@pytest.mark.parametrize("while_reading", [False, True])
def test_a_failed_jwks_request_is_logged_with_the_error_type(
    caplog: pytest.LogCaptureFixture, *, while_reading: bool
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    auth, adapter = scripted_auth()
    if while_reading:
        adapter.body = CountedBody(10, error=requests.exceptions.ConnectionError("reset"))
    else:
        adapter.error = requests.exceptions.ConnectTimeout("no answer")
    assert refusal(auth, mint()) == f"JWKS {SANDBOX_JKU} unavailable"
    error = "ConnectionError" if while_reading else "ConnectTimeout"
    assert caplog.messages == [f"JWKS fetch from {SANDBOX_JKU} failed: {error}"]


# ------------------------------------------------------------------------------------------
# claims: each time boundary, and what each refusal says
# ------------------------------------------------------------------------------------------

T = 1_800_000_000.0  # iat of the tokens below (epoch s); leeway 60 s, lifetime 300 s


def at(now: float, **claims: Any) -> dict[str, Any]:
    """verify() at ``now`` of a token issued at T: its claims, or the refusal's message."""
    try:
        return make_auth(leeway_s=60).verify(bearer(mint(now=T, **claims)), AUD, now=now)
    except AuthError as exc:
        return {"refused": str(exc)}


def test_exp_is_honoured_up_to_the_leeway() -> None:
    exp = T + 300
    assert "jti" in at(exp + 59)
    assert at(exp + 60) == {"refused": "token expired (exp)"}


def test_iat_may_be_in_the_future_by_the_leeway() -> None:
    assert "jti" in at(T - 60)
    assert at(T - 61) == {"refused": "token issued in the future (iat)"}


def test_nbf_is_honoured_with_the_leeway() -> None:
    assert "jti" in at(T, nbf=T)
    assert "jti" in at(T, nbf=T + 60)
    assert at(T, nbf=T + 61) == {"refused": "token not yet valid (nbf)"}


def test_exp_not_after_iat_is_named() -> None:
    assert at(T, exp=T) == {"refused": "exp is not after iat"}


@pytest.mark.parametrize(
    ("exp", "message"),
    [
        (10**400, "claim exp is out of range"),
        (float("inf"), "claim exp is not finite"),
        ("soon", "claim exp missing or not a number"),
    ],
)
def test_an_unusable_exp_is_named(exp: object, message: str) -> None:
    assert at(T, exp=exp) == {"refused": message}


@pytest.mark.parametrize(
    ("aud", "message"),
    [
        ([], "claim aud missing or malformed"),
        ([AUD, 1], "claim aud missing or malformed"),
        (
            "https://other.example.org",
            f"aud 'https://other.example.org' does not match this endpoint {AUD!r}",
        ),
    ],
)
def test_a_wrong_aud_is_named(aud: object, message: str) -> None:
    assert at(T, aud=aud) == {"refused": message}


def test_jti_up_to_256_characters_is_accepted() -> None:
    assert at(T, jti="j" * 256)["jti"] == "j" * 256
    assert at(T, jti="j" * 257) == {"refused": "claim jti missing, empty or too long"}


@pytest.mark.parametrize("jti", ["", 5, None])
def test_an_empty_or_non_string_jti_is_refused(jti: object) -> None:
    assert at(T, jti=jti) == {"refused": "claim jti missing, empty or too long"}


@pytest.mark.parametrize("jti", ["caf\u00e9", "a\x01b", "a\tb"])
def test_a_jti_of_other_than_printable_ascii_is_refused(jti: str) -> None:
    assert at(T, jti=jti) == {"refused": "claim jti has characters other than printable ASCII"}


# ------------------------------------------------------------------------------------------
# header and payload: what each refusal says
# ------------------------------------------------------------------------------------------


def sandbox_signed(header: Mapping[str, Any], **claims: Any) -> str:
    """An ES384 token of the Sandbox with these header members and claims (``_DROP``: left out)."""
    payload = {**sandbox_payload(time.time()), **claims}
    merged = {**SANDBOX_HEADER, **header}
    return signed(
        {k: v for k, v in merged.items() if v is not _DROP},
        {k: v for k, v in payload.items() if v is not _DROP},
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"kid": ""}, "kid header missing"),
        ({"kid": _DROP}, "kid header missing"),
        ({"crit": ["b64"], "b64": True}, "crit header not supported"),
        ({"jku": 5}, "jku header is not a string"),
    ],
)
def test_a_refused_header_is_named(header: dict[str, Any], message: str) -> None:
    assert refusal(make_auth(), sandbox_signed(header)) == message


HEADER = b64json({"alg": "ES384", "kid": "k"})


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("!!.e30.c2ln", "malformed JWT header (DecodeError)"),
        (f"{HEADER}.{b64url(b'not json')}.c2ln", "malformed JWT payload (DecodeError)"),
        (f"{HEADER}.{b64url(b'[1, 2]')}.c2ln", "malformed JWT payload (DecodeError)"),
    ],
)
def test_a_malformed_token_is_named(token: str, message: str) -> None:
    assert refusal(make_auth(), token) == message


@pytest.mark.parametrize("iss", [_DROP, 5])
def test_a_missing_or_non_string_iss_is_named(iss: object) -> None:
    assert refusal(make_auth(), sandbox_signed({}, iss=iss)) == "claim iss missing or not a string"


def test_the_audience_to_check_is_required() -> None:
    with pytest.raises(ValueError, match=r"^audience must be the endpoint URL$"):
        make_auth().verify(bearer(mint()), "")


# ------------------------------------------------------------------------------------------
# the Authorization header, keys and replays: what each refusal says
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing Authorization header"),
        ("Basic dXNlcjpwdw==", "Authorization scheme is not Bearer"),
        ("Bearer    ", "empty Bearer token"),
        ("Bearer \u00a0\u00a0", "empty Bearer token"),
        ("Bearer " + "x" * 16_384, "Bearer token is not a compact JWS"),  # the largest allowed
        ("Bearer " + "x" * 16_385, "Bearer token too large"),
    ],
)
def test_a_refused_authorization_header_is_named(header: str | None, message: str) -> None:
    with pytest.raises(AuthError) as info:
        make_auth().verify(header, AUD)
    assert str(info.value) == message


def test_key_and_replay_refusals_are_named() -> None:
    auth = make_auth([TrustedClient(iss=CRD_ISS, jwks=CRD_PUBLIC_JWKS)])
    rsa_kid = next(k["kid"] for k in CRD_PUBLIC_JWKS["keys"] if k["kty"] == "RSA")
    assert refusal(auth, mint(CRD_EC_PRIVATE, iss=CRD_ISS, jku=_DROP, kid=rsa_kid)) == (
        f"key {rsa_kid!r} of iss {CRD_ISS!r} does not fit alg ES384"
    )
    assert refusal(auth, mint(CRD_EC_PRIVATE, iss=CRD_ISS, jku=_DROP, kid="nope")) == (
        f"unknown kid 'nope' for iss {CRD_ISS!r}"
    )
    token = mint(CRD_EC_PRIVATE, iss=CRD_ISS, jku=_DROP, jti="once")
    assert auth.verify(bearer(token), AUD)
    assert refusal(auth, token) == f"replayed jti 'once' from iss {CRD_ISS!r}"


def test_a_jku_not_allowlisted_is_named() -> None:
    other = "https://elsewhere.example.org/jwks.json"
    assert refusal(make_auth(), mint(jku=other)) == (
        f"jku {other!r} not allowlisted for iss {SANDBOX_ISS!r}"
    )


def test_an_accepted_token_is_logged_with_its_iss_kid_and_jti(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    auth = make_auth([TrustedClient(iss=CRD_ISS, jwks=CRD_PUBLIC_JWKS)])
    assert auth.verify(bearer(mint(CRD_EC_PRIVATE, iss=CRD_ISS, jku=_DROP, jti="j-1")), AUD)
    kid = CRD_EC_PRIVATE["kid"]
    assert caplog.messages == [f"accepted client JWT iss={CRD_ISS!r} kid={kid!r} jti='j-1'"]


# ------------------------------------------------------------------------------------------
# the authenticator's and the replay cache's settings: defaults and limits
# ------------------------------------------------------------------------------------------


def test_default_leeway_is_60_s_and_default_lifetime_3600_s() -> None:
    auth = make_auth()
    assert auth.verify(bearer(mint(now=T)), AUD, now=T + 300 + 59)
    assert refusal_at(auth, mint(now=T), T + 300 + 60) == "token expired (exp)"
    assert auth.verify(bearer(mint(now=T, lifetime=3600)), AUD, now=T)
    assert refusal_at(auth, mint(now=T, lifetime=3601), T) == (
        "token lifetime 3601s exceeds maximum 3600s"
    )


def refusal_at(auth: ClientAuthenticator, token: str, now: float) -> str:
    with pytest.raises(AuthError) as info:
        auth.verify(bearer(token), AUD, now=now)
    return str(info.value)


def test_default_jwks_cache_lifetime_is_300_s() -> None:
    clock = FakeClock()
    adapter = FakeJwksAdapter({SANDBOX_JKU: SANDBOX_JWKS})
    auth = make_auth(adapter=adapter, clock=clock)
    assert auth.verify(bearer(mint()), AUD)
    clock.value += 299
    assert auth.verify(bearer(mint()), AUD)
    assert len(adapter.calls) == 1
    clock.value += 1
    assert auth.verify(bearer(mint()), AUD)
    assert len(adapter.calls) == 2


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"algorithms": ()}, "algorithms must be a non-empty sequence of algorithm names"),
        ({"algorithms": "ES384"}, "algorithms must be a non-empty sequence of algorithm names"),
        (
            {"algorithms": ("ES384", "HS256")},
            "algorithm 'HS256' is not allowed: only asymmetric JWS algorithms (ES256, ES384, "
            "ES512, RS256, RS384, RS512, PS256, PS384, PS512) may be used",
        ),
        ({"leeway_s": -1}, "leeway_s must be >= 0"),
        ({"max_token_lifetime_s": 0}, "max_token_lifetime_s must be > 0"),
        ({"jwks_timeout_s": 0}, "jwks_timeout_s must be > 0"),
        ({"jwks_cache_ttl_s": -1}, "jwks_cache_ttl_s must be >= 0"),
    ],
)
def test_an_unusable_setting_is_refused_by_name(setting: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        make_auth(**setting)


def test_the_smallest_settings_are_usable() -> None:
    auth = make_auth(leeway_s=0, max_token_lifetime_s=1, jwks_cache_ttl_s=0, jwks_timeout_s=0.01)
    assert auth.verify(bearer(mint(now=T, lifetime=1)), AUD, now=T)


def test_the_replay_cache_holds_at_least_one_and_100_000_by_default() -> None:
    with pytest.raises(ValueError, match=r"^max_entries must be >= 1$"):
        InMemoryReplayCache(max_entries=0)
    single = InMemoryReplayCache(max_entries=1, clock=FakeClock(0.0))
    assert single.seen_before("a", "iss", expires_at=10.0) is False
    assert single.seen_before("a", "iss", expires_at=10.0) is True
    default = InMemoryReplayCache(clock=FakeClock(0.0))
    for number in range(100_001):
        default.seen_before(str(number), "iss", expires_at=10.0 + number)
    assert len(default) == 100_000


def test_without_a_session_the_authenticator_fetches_with_its_own() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on: the fetch is refused
        probe.bind(("127.0.0.1", 0))
        jku = f"http://127.0.0.1:{probe.getsockname()[1]}/jwks.json"
    auth = ClientAuthenticator([TrustedClient(iss=SANDBOX_ISS, jku=(jku,))], jwks_timeout_s=5)
    assert refusal(auth, mint(jku=jku)) == f"JWKS {jku} unavailable"
