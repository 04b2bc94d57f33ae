"""Verification of the CDS client's JWT (CDS Hooks 2.0, "Trusting CDS Clients").

The EHR (CDS client) signs a short-lived JWT with its private key and sends it as
``Authorization: Bearer <jwt>`` on every call (discovery, service, feedback).  This module
checks such a token against an allowlist of trusted clients:

1. ``Bearer`` scheme; header ``alg`` in the configured *asymmetric* algorithms (``none`` and
   HMAC are never accepted), ``kid`` present, ``typ`` (if present) ``JWT``, no ``crit``;
2. ``iss`` (read unverified) is a trusted client; a header ``jku`` is in that client's
   allowlist (exact string match);
3. ``aud`` equals this endpoint's URL, ``exp``/``iat`` present and sane (with leeway), token
   lifetime bounded, ``nbf`` honoured, ``jti`` present, ``tenant`` allowlisted if configured
   -- all cheap checks done *before* any network call;
4. signature verified with the key of the client's JWKS (inline, or fetched from the
   allowlisted ``jku`` with a timeout and a per-URL cache that is refreshed, rate-limited,
   when an unknown ``kid`` appears -- key rotation).  Keys embedded in the token (``jwk``,
   ``x5c``, ``x5u``) are never used;
5. ``jti`` not seen before for this ``iss`` (replay cache, kept until ``exp`` + leeway).

Any failure raises :class:`AuthError`.  Its message is meant for logs only (the HTTP layer
answers a bare 401) and never contains the token; attacker-controlled values are truncated.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import jwt
import requests
import yaml
from jwt.types import Options

from cds_service.fhir.server_policy import PolicyRefused, parse_entries
from cds_service.ops import cpu_gate

__all__ = [
    "AuthError",
    "ClientAuthenticator",
    "InMemoryReplayCache",
    "ReplayCache",
    "TrustedClient",
    "load_trusted_clients",
]

_log = logging.getLogger(__name__)

#: Asymmetric JWS algorithms that can be enabled -> (JWK kty, required EC curve or None).
_ALG_KEY_REQUIREMENTS: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
}
#: Default algorithm used only to *parse* a JWK of a given kty/crv (verification always uses
#: the token's own, allowlisted algorithm).
_PARSE_ALG: dict[tuple[str, str | None], str] = {
    ("EC", "P-256"): "ES256",
    ("EC", "P-384"): "ES384",
    ("EC", "P-521"): "ES512",
    ("RSA", None): "RS256",
}
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MIN_RSA_BITS = 2048

_MAX_TOKEN_CHARS = 16_384
_MAX_JTI_CHARS = 256
_MAX_JWKS_BYTES = 512 * 1024
#: Minimum interval between two fetches of the same JWKS URL triggered by an unknown ``kid``
#: or following a failed fetch.
_MIN_REFETCH_INTERVAL_S = 10.0
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

_CLIENT_FIELDS = frozenset({"iss", "jku", "jwks", "jwks_file", "tenants", "fhirServers"})

# Claim checks are done by this module (so that ``now`` can be injected); PyJWT verifies the
# signature and, as a second line of defence, ``aud``/``iss``/``jti`` type.
_DECODE_OPTIONS: Options = {
    "verify_signature": True,
    "verify_aud": True,
    "verify_iss": True,
    "verify_jti": True,
    "verify_exp": False,
    "verify_iat": False,
    "verify_nbf": False,
    "verify_sub": False,
    "require": ["iss", "aud", "exp", "iat", "jti"],
    "enforce_minimum_key_length": True,
}

_KeySet = Mapping[str, tuple[Mapping[str, Any], ...]]


class AuthError(Exception):
    """The CDS client could not be authenticated.

    The message is for server logs only; callers must answer a bare ``401 Unauthorized``.
    It never contains the token.
    """


@dataclass(frozen=True)
class TrustedClient:
    """A CDS client (EHR) allowed to call this service.

    ``jku``: allowed JWKS URLs for this issuer (exact match).  ``jwks``: inline JWKS (public
    keys) for air-gapped sites; when given it is used instead of fetching ``jku``.
    ``tenants``: optional allowlist of ``tenant`` claim values.
    ``fhir_servers``: the ``fhirServer`` base URLs this client may send, by tenant (``""``:
    every tenant of the client).
    """

    iss: str
    jku: tuple[str, ...] = ()
    jwks: Mapping[str, Any] | None = None
    tenants: tuple[str, ...] = ()
    fhir_servers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def fhir_servers_for(self, tenant: object) -> tuple[str, ...]:
        """The client-wide list plus the tenant's own."""
        own = self.fhir_servers.get(tenant, ()) if isinstance(tenant, str) and tenant else ()
        return (*self.fhir_servers.get("", ()), *own)


class ReplayCache(Protocol):
    """Remembers ``jti`` values per issuer until the token can no longer be accepted."""

    def seen_before(self, jti: str, iss: str, expires_at: float) -> bool:
        """Record ``(iss, jti)`` until ``expires_at`` (epoch s); True if it was already there."""
        ...


class InMemoryReplayCache:
    """Thread-safe, size-bounded, in-process :class:`ReplayCache`.

    Expired entries are evicted on every call.  When ``max_entries`` live entries exist, the
    entry closest to expiry is dropped (and a warning logged).  Only suitable for a single
    process; use a shared store (e.g. the database) behind several workers.
    """

    def __init__(
        self, max_entries: int = 100_000, *, clock: Callable[[], float] = time.time
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def seen_before(self, jti: str, iss: str, expires_at: float) -> bool:
        key = (iss, jti)
        with self._lock:
            self._evict_expired(self._clock())
            if key in self._entries:
                return True
            while len(self._entries) >= self._max_entries:
                self._evict_soonest()
            self._entries[key] = expires_at
            heapq.heappush(self._heap, (expires_at, key))
            return False

    def _evict_expired(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expires_at, key = heapq.heappop(self._heap)
            if self._entries.get(key) == expires_at:
                del self._entries[key]

    def _evict_soonest(self) -> None:
        while self._heap:
            expires_at, key = heapq.heappop(self._heap)
            if self._entries.get(key) == expires_at:
                del self._entries[key]
                _log.warning("replay cache full (%d entries): evicted an entry", self._max_entries)
                return


# --------------------------------------------------------------------------------------------
# JWK / JWKS validation
# --------------------------------------------------------------------------------------------


def _jwk_problem(jwk: object) -> str | None:
    """Return why ``jwk`` is not a usable public signature-verification key, else None."""
    if not isinstance(jwk, Mapping):
        return "is not a JSON object"
    kty = jwk.get("kty")
    if kty not in ("EC", "RSA"):
        return f"unsupported kty {_safe(kty)}"
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        return "has no kid"
    if _PRIVATE_JWK_MEMBERS & set(jwk):
        return "contains private key material"
    use = jwk.get("use")
    if use is not None and use != "sig":
        return f"use is {_safe(use)}, not 'sig'"
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return "key_ops does not allow 'verify'"
    alg = jwk.get("alg")
    if alg is not None and (
        alg not in _ALG_KEY_REQUIREMENTS or _ALG_KEY_REQUIREMENTS[alg][0] != kty
    ):
        return f"alg {_safe(alg)} is not a supported signature algorithm for kty {kty}"
    crv = jwk.get("crv") if kty == "EC" else None
    parse_alg = _PARSE_ALG.get((kty, crv))
    if parse_alg is None:
        return f"unsupported crv {_safe(crv)}"
    if alg is not None and _ALG_KEY_REQUIREMENTS[alg][1] != crv:
        return f"alg {alg} does not match crv {_safe(crv)}"
    try:
        key = jwt.PyJWK(dict(jwk), algorithm=parse_alg).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        # The exception text may echo the JWK: do not propagate it.
        return "cannot be parsed as a public key"
    if kty == "RSA" and getattr(key, "key_size", 0) < _MIN_RSA_BITS:
        return f"RSA key shorter than {_MIN_RSA_BITS} bits"
    return None


def _parse_jwks(jwks: object, *, strict: bool) -> dict[str, tuple[Mapping[str, Any], ...]]:
    """Index a JWKS by ``kid``.

    ``strict`` (configuration): any unusable key or duplicate ``kid`` raises ValueError.
    Otherwise (fetched JWKS): unusable keys are skipped; only a malformed set raises.
    """
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise ValueError("JWKS must be a JSON object with a 'keys' array")  # noqa: TRY004 (config error)
    index: dict[str, list[Mapping[str, Any]]] = {}
    for position, jwk in enumerate(jwks["keys"]):
        problem = _jwk_problem(jwk)
        if problem is not None:
            if strict:
                raise ValueError(f"keys[{position}] {problem}")
            continue
        kid = jwk["kid"]
        if strict and kid in index:
            raise ValueError(f"keys[{position}] duplicates kid {_safe(kid)}")
        index.setdefault(kid, []).append(jwk)
    if strict and not index:
        raise ValueError("JWKS contains no keys")
    return {kid: tuple(keys) for kid, keys in index.items()}


def _key_fits(jwk: Mapping[str, Any], alg: str) -> bool:
    kty, crv = _ALG_KEY_REQUIREMENTS[alg]
    if jwk.get("kty") != kty or jwk.get("alg", alg) != alg:
        return False
    return crv is None or jwk.get("crv") == crv


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


class _FieldError(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"field {field!r}: {problem}")
        self.field = field


def _check_url(url: object) -> str | None:
    if not isinstance(url, str) or not url or url != url.strip():
        return "must be a non-empty URL string"
    parts = urlsplit(url)
    if not parts.netloc or parts.fragment or parts.scheme not in ("https", "http"):
        return f"{url!r} is not an absolute http(s) URL without fragment"
    if parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
        return f"{url!r} must use https (http is only allowed for localhost)"
    return None


def _validate_client(client: TrustedClient) -> None:
    """Raise :class:`_FieldError` if ``client`` is not a usable configuration."""
    if not isinstance(client.iss, str) or not client.iss or client.iss != client.iss.strip():
        raise _FieldError("iss", "must be a non-empty string without surrounding spaces")
    if not isinstance(client.jku, tuple):
        raise _FieldError("jku", "must be a tuple of URLs")
    for position, url in enumerate(client.jku):
        problem = _check_url(url)
        if problem is not None:
            raise _FieldError("jku", f"[{position}] {problem}")
    if len(set(client.jku)) != len(client.jku):
        raise _FieldError("jku", "contains duplicates")
    if not isinstance(client.tenants, tuple) or not all(
        isinstance(t, str) and t for t in client.tenants
    ):
        raise _FieldError("tenants", "must be a list of non-empty strings")
    if client.jwks is None:
        if not client.jku:
            raise _FieldError("jku", "required when no jwks/jwks_file is given")
    else:
        try:
            _parse_jwks(client.jwks, strict=True)
        except ValueError as exc:
            raise _FieldError("jwks", str(exc)) from None


def _str_list(value: object, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _FieldError(field, "must be a list of non-empty strings")
    return tuple(value)


def _client_from_entry(entry: object, base_dir: Path) -> TrustedClient:
    if not isinstance(entry, Mapping):
        raise _FieldError("<entry>", "must be a mapping")
    unknown = sorted(str(k) for k in entry if k not in _CLIENT_FIELDS)
    if unknown:
        raise _FieldError(unknown[0], "unknown field")
    if "iss" not in entry:
        raise _FieldError("iss", "missing")
    iss = entry["iss"]
    if not isinstance(iss, str):
        raise _FieldError("iss", "must be a string")
    jku = _str_list(entry["jku"], "jku") if "jku" in entry else ()
    tenants = _str_list(entry["tenants"], "tenants") if "tenants" in entry else ()
    if "jwks" in entry and "jwks_file" in entry:
        raise _FieldError("jwks_file", "give either jwks or jwks_file, not both")
    jwks: Mapping[str, Any] | None = None
    if "jwks" in entry:
        jwks = entry["jwks"]
        if not isinstance(jwks, Mapping):
            raise _FieldError("jwks", "must be a mapping with a 'keys' array")
    elif "jwks_file" in entry:
        name = entry["jwks_file"]
        if not isinstance(name, str) or not name:
            raise _FieldError("jwks_file", "must be a non-empty path string")
        path = base_dir / Path(name).expanduser()
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise _FieldError("jwks_file", f"cannot read {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise _FieldError("jwks_file", f"{path} is not valid JSON: {exc}") from None
        if not isinstance(loaded, Mapping):
            raise _FieldError("jwks_file", f"{path} must contain a JSON object")
        try:
            _parse_jwks(loaded, strict=True)
        except ValueError as exc:
            raise _FieldError("jwks_file", f"{path}: {exc}") from None
        jwks = loaded
    fhir_servers = _fhir_servers(entry["fhirServers"]) if "fhirServers" in entry else {}
    client = TrustedClient(iss=iss, jku=jku, jwks=jwks, tenants=tenants, fhir_servers=fhir_servers)
    _validate_client(client)
    return client


def _fhir_servers(value: object) -> dict[str, tuple[str, ...]]:
    """``[urls]`` for every tenant, or ``{tenant: [urls]}`` (``"*"``: every tenant)."""
    by_tenant = value if isinstance(value, Mapping) else {"*": value}
    servers: dict[str, tuple[str, ...]] = {}
    for tenant, urls in by_tenant.items():
        where = "fhirServers" if tenant == "*" else f"fhirServers.{tenant}"
        listed = _str_list(urls, where)
        try:
            parse_entries(listed)
        except PolicyRefused as exc:
            raise _FieldError(where, str(exc)) from None
        servers["" if tenant == "*" else str(tenant)] = listed
    return servers


def load_trusted_clients(source: str) -> tuple[TrustedClient, ...]:
    """Load the trusted-client allowlist.

    ``source`` is either inline JSON (starts with ``[``) or the path of a YAML/JSON file
    (``.json`` is parsed as JSON, anything else as YAML).  The document is a list of
    ``{iss, jku: [urls], jwks: {...} | jwks_file: path, tenants: [...]}``; ``iss`` is
    required, and ``jku`` unless ``jwks``/``jwks_file`` is given.  ``jwks_file`` is relative to
    the config file's directory (to the working directory for inline JSON).  An empty list is
    allowed (logged): it trusts nobody.

    Raises ValueError naming the entry index and field on any problem.
    """
    text = source.strip()
    if not text:
        raise ValueError("trusted clients: empty source")
    base_dir: Path
    data: object
    if text[0] in "[{":
        origin = "trusted clients (inline JSON)"
        base_dir = Path.cwd()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{origin}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            ) from None
    else:
        path = Path(text).expanduser()
        origin = f"trusted clients ({path})"
        base_dir = path.parent
        try:
            raw = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{origin}: cannot read file: {exc.strerror}") from None
        try:
            data = json.loads(raw) if path.suffix.lower() == ".json" else yaml.safe_load(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"{origin}: cannot parse file: {exc}") from None
    if not isinstance(data, list):
        raise ValueError(f"{origin}: must be a list of client entries")  # noqa: TRY004
    if not data:
        _log.warning("%s: no trusted clients configured; every token will be rejected", origin)
    clients: list[TrustedClient] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(data):
        try:
            client = _client_from_entry(entry, base_dir)
        except _FieldError as exc:
            raise ValueError(f"{origin}: entry {index}: {exc}") from None
        if client.iss in seen:
            raise ValueError(
                f"{origin}: entry {index}: field 'iss': duplicates entry {seen[client.iss]}"
            )
        seen[client.iss] = index
        clients.append(client)
    return tuple(clients)


# --------------------------------------------------------------------------------------------
# Authenticator
# --------------------------------------------------------------------------------------------


@dataclass
class _JwksEntry:
    keys: _KeySet | None  # None: the last fetch failed and nothing valid is cached
    fetched_at: float  # clock() of the last successful fetch
    attempted_at: float  # clock() of the last fetch attempt


def _safe(value: object, limit: int = 64) -> str:
    """repr() of an attacker-controlled value, truncated for logs."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _numeric_claim(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthError(f"claim {name} missing or not a number")
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise AuthError(f"claim {name} is out of range") from None
    if not math.isfinite(number):
        raise AuthError(f"claim {name} is not finite")
    return number


class ClientAuthenticator:
    """Verifies CDS client JWTs against a list of :class:`TrustedClient`.

    Thread-safe.  ``algorithms`` may only contain asymmetric algorithms (ES*, RS*, PS*);
    ``none`` and HMAC raise ValueError here and are rejected in tokens regardless.
    ``clock`` (monotonic seconds) drives the JWKS cache; it exists for tests.
    """

    def __init__(
        self,
        clients: Sequence[TrustedClient],
        *,
        algorithms: Sequence[str] = ("ES384", "RS384"),
        leeway_s: int = 60,
        max_token_lifetime_s: int = 3600,
        replay_cache: ReplayCache | None = None,
        jwks_timeout_s: float = 2.0,
        jwks_cache_ttl_s: int = 300,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(algorithms, str) or not algorithms:
            raise ValueError("algorithms must be a non-empty sequence of algorithm names")
        for alg in algorithms:
            if alg not in _ALG_KEY_REQUIREMENTS:
                raise ValueError(
                    f"algorithm {alg!r} is not allowed: only asymmetric JWS algorithms "
                    f"({', '.join(_ALG_KEY_REQUIREMENTS)}) may be used"
                )
        if leeway_s < 0:
            raise ValueError("leeway_s must be >= 0")
        if max_token_lifetime_s <= 0:
            raise ValueError("max_token_lifetime_s must be > 0")
        if jwks_timeout_s <= 0:
            raise ValueError("jwks_timeout_s must be > 0")
        if jwks_cache_ttl_s < 0:
            raise ValueError("jwks_cache_ttl_s must be >= 0")

        self._clients: dict[str, TrustedClient] = {}
        self._inline_keys: dict[str, _KeySet] = {}
        for position, client in enumerate(clients):
            try:
                _validate_client(client)
            except _FieldError as exc:
                raise ValueError(f"trusted client {position}: {exc}") from None
            if client.iss in self._clients:
                raise ValueError(f"trusted client {position}: duplicate iss {client.iss!r}")
            self._clients[client.iss] = client
            if client.jwks is not None:
                self._inline_keys[client.iss] = _parse_jwks(client.jwks, strict=True)

        self._algorithms = frozenset(algorithms)
        self._leeway_s = leeway_s
        self._max_lifetime_s = max_token_lifetime_s
        self._replay_cache: ReplayCache = (
            replay_cache if replay_cache is not None else InMemoryReplayCache()
        )
        self._jwks_timeout_s = jwks_timeout_s
        self._jwks_ttl_s = jwks_cache_ttl_s
        self._session = session if session is not None else requests.Session()
        self._clock = clock
        self._jwks_cache: dict[str, _JwksEntry] = {}
        self._url_locks: dict[str, threading.Lock] = {}
        self._url_locks_guard = threading.Lock()

    # -- public API ----------------------------------------------------------------------

    def verify(
        self, authorization_header: str | None, audience: str, *, now: float | None = None
    ) -> dict[str, Any]:
        """Return the verified claims or raise AuthError.

        ``audience`` is the exact URL of the endpoint being called.  ``now`` (epoch seconds)
        defaults to the current time.
        """
        if not audience:
            raise ValueError("audience must be the endpoint URL")
        current = time.time() if now is None else now
        token = self._extract_bearer(authorization_header)
        header = self._checked_header(token)
        alg: str = header["alg"]
        kid: str = header["kid"]
        header_jku: str | None = header.get("jku")

        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed JWT payload ({type(exc).__name__})") from None
        if not isinstance(unverified, dict):
            raise AuthError("JWT payload is not a JSON object")

        iss = unverified.get("iss")
        if not isinstance(iss, str):
            raise AuthError("claim iss missing or not a string")
        client = self._clients.get(iss)
        if client is None:
            raise AuthError(f"untrusted iss {_safe(iss)}")
        if header_jku is not None and header_jku not in client.jku:
            raise AuthError(f"jku {_safe(header_jku)} not allowlisted for iss {iss!r}")

        # Cheap claim checks before any key fetch (BP order: iss, aud, exp, tenant, sig, jti).
        exp = self._check_claims(unverified, client, audience, current)

        keys = self._keys_for(client, header_jku, kid)
        candidates = [jwk for jwk in keys.get(kid, ()) if _key_fits(jwk, alg)]
        if not candidates:
            if kid in keys:
                raise AuthError(f"key {_safe(kid)} of iss {iss!r} does not fit alg {alg}")
            raise AuthError(f"unknown kid {_safe(kid)} for iss {iss!r}")
        claims = self._verify_signature(token, candidates, alg, audience, iss)

        jti: str = claims["jti"]
        if self._replay_cache.seen_before(jti, iss, exp + self._leeway_s):
            raise AuthError(f"replayed jti {_safe(jti)} from iss {iss!r}")
        _log.debug("accepted client JWT iss=%r kid=%r jti=%r", iss, kid, jti)
        return claims

    def fhir_servers(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        """The fhirServer base URLs the client (and tenant) of verified ``claims`` may send."""
        client = self._clients.get(str(claims.get("iss")))
        return client.fhir_servers_for(claims.get("tenant")) if client else ()

    # -- steps ---------------------------------------------------------------------------

    @staticmethod
    def _extract_bearer(authorization_header: str | None) -> str:
        if authorization_header is None or not authorization_header.strip():
            raise AuthError("missing Authorization header")
        scheme, _, token = authorization_header.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise AuthError("Authorization scheme is not Bearer")
        token = token.strip()
        if not token:
            raise AuthError("empty Bearer token")
        if len(token) > _MAX_TOKEN_CHARS:
            raise AuthError("Bearer token too large")
        if token.count(".") != 2 or any(c.isspace() for c in token):
            raise AuthError("Bearer token is not a compact JWS")
        return token

    def _checked_header(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed JWT header ({type(exc).__name__})") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            # also covers "none" and HS*: they can never be in self._algorithms
            raise AuthError(f"alg {_safe(alg)} not allowed")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
            raise AuthError(f"typ {_safe(typ)} is not JWT")
        if "crit" in header:
            raise AuthError("crit header not supported")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("kid header missing")
        jku = header.get("jku")
        if jku is not None and not isinstance(jku, str):
            raise AuthError("jku header is not a string")
        return header

    def _check_claims(
        self, claims: Mapping[str, Any], client: TrustedClient, audience: str, now: float
    ) -> float:
        """Check aud/exp/iat/nbf/lifetime/jti/tenant; return exp."""
        aud = claims.get("aud")
        if isinstance(aud, str):
            aud_ok = aud == audience
        elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
            aud_ok = audience in aud
        else:
            raise AuthError("claim aud missing or malformed")
        if not aud_ok:
            raise AuthError(f"aud {_safe(aud)} does not match this endpoint {audience!r}")

        exp = _numeric_claim(claims, "exp")
        iat = _numeric_claim(claims, "iat")
        leeway = self._leeway_s
        if exp <= now - leeway:
            raise AuthError("token expired (exp)")
        if iat > now + leeway:
            raise AuthError("token issued in the future (iat)")
        if "nbf" in claims and _numeric_claim(claims, "nbf") > now + leeway:
            raise AuthError("token not yet valid (nbf)")
        if exp <= iat:
            raise AuthError("exp is not after iat")
        if exp - iat > self._max_lifetime_s:
            raise AuthError(
                f"token lifetime {exp - iat:.0f}s exceeds maximum {self._max_lifetime_s}s"
            )

        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI_CHARS:
            raise AuthError("claim jti missing, empty or too long")
        if not jti.isprintable() or not jti.isascii():
            # The replay cache stores it: no lone surrogates, NUL or other control characters.
            raise AuthError("claim jti has characters other than printable ASCII")

        if client.tenants:
            tenant = claims.get("tenant")
            if not isinstance(tenant, str) or tenant not in client.tenants:
                raise AuthError(f"tenant {_safe(tenant)} not allowed for iss {client.iss!r}")
        return exp

    def _verify_signature(
        self,
        token: str,
        candidates: Sequence[Mapping[str, Any]],
        alg: str,
        audience: str,
        iss: str,
    ) -> dict[str, Any]:
        failure = "invalid signature"
        for jwk in candidates:
            # The PyJWK is bound to the (allowlisted) header alg and a key whose kty/crv fit
            # it, and decode() only accepts that alg: no algorithm confusion is possible.
            try:
                key = jwt.PyJWK(dict(jwk), algorithm=alg)
                claims = jwt.decode(
                    token,
                    key=key,
                    algorithms=[alg],
                    audience=audience,
                    issuer=iss,
                    options=_DECODE_OPTIONS,
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                failure = f"token rejected during signature verification ({type(exc).__name__})"
                continue
            if not isinstance(claims, dict):  # pragma: no cover - PyJWT guarantees a dict
                raise AuthError("JWT payload is not a JSON object")
            return claims
        raise AuthError(f"{failure} (iss {iss!r})")

    # -- keys ----------------------------------------------------------------------------

    def _keys_for(self, client: TrustedClient, header_jku: str | None, kid: str) -> _KeySet:
        inline = self._inline_keys.get(client.iss)
        if inline is not None:
            return inline
        if header_jku is not None:
            url = header_jku  # already checked against client.jku
        elif len(client.jku) == 1:
            url = client.jku[0]
        else:
            raise AuthError(
                f"no jku header and iss {client.iss!r} has {len(client.jku)} jku URLs configured"
            )
        return self._remote_keys(url, kid)

    def _url_lock(self, url: str) -> threading.Lock:
        with self._url_locks_guard:
            lock = self._url_locks.get(url)
            if lock is None:
                lock = self._url_locks[url] = threading.Lock()
            return lock

    def _remote_keys(self, url: str, kid: str) -> _KeySet:
        entry = self._jwks_cache.get(url)
        if (
            entry is not None
            and entry.keys is not None
            and kid in entry.keys
            and self._clock() - entry.fetched_at < self._jwks_ttl_s
        ):
            return entry.keys  # fresh and knows the kid: no lock, no fetch
        # A fetch may follow: the worker's CPU gate is let go of before the URL's lock is taken
        # and taken back after it is left (a gate holder never waits for this lock while the
        # lock's holder waits for the gate).
        with cpu_gate.released(), self._url_lock(url):
            now = self._clock()
            entry = self._jwks_cache.get(url)
            fresh = (
                entry is not None
                and entry.keys is not None
                and now - entry.fetched_at < self._jwks_ttl_s
            )
            recently_tried = (
                entry is not None and now - entry.attempted_at < _MIN_REFETCH_INTERVAL_S
            )
            if fresh and entry is not None and entry.keys is not None:
                if kid in entry.keys or recently_tried:
                    return entry.keys
                _log.info("unknown kid %s for JWKS %s: refetching (key rotation)", _safe(kid), url)
            elif entry is not None and entry.keys is None and recently_tried:
                raise AuthError(f"JWKS {url} unavailable (recent fetch failed)")

            keys = self._fetch_jwks(url)
            if keys is not None:
                self._jwks_cache[url] = _JwksEntry(keys=keys, fetched_at=now, attempted_at=now)
                return keys
            if fresh and entry is not None and entry.keys is not None:
                entry.attempted_at = now  # keep the still-valid keys
                return entry.keys
            self._jwks_cache[url] = _JwksEntry(keys=None, fetched_at=0.0, attempted_at=now)
            if entry is not None and entry.keys is not None:  # the JWKS endpoint is down
                raise AuthError(
                    f"JWKS {url} unavailable and its cached keys expired "
                    f"{now - entry.fetched_at - self._jwks_ttl_s:.0f} s ago "
                    "(CDS_JWKS_CACHE_TTL_S)"
                )
            raise AuthError(f"JWKS {url} unavailable")

    def _fetch_jwks(self, url: str) -> _KeySet | None:
        deadline = time.monotonic() + self._jwks_timeout_s
        try:
            response = self._session.get(
                url,
                timeout=self._jwks_timeout_s,
                allow_redirects=False,
                headers={"Accept": "application/json"},
                stream=True,
            )
        except requests.RequestException as exc:
            _log.warning("JWKS fetch from %s failed: %s", url, type(exc).__name__)
            return None
        try:
            if response.status_code != 200:
                _log.warning("JWKS fetch from %s: HTTP %d", url, response.status_code)
                return None
            body = _read_bounded(response, deadline)
            return _parse_jwks(json.loads(body), strict=False)
        except requests.RequestException as exc:
            _log.warning("JWKS fetch from %s failed: %s", url, type(exc).__name__)
            return None
        except ValueError as exc:
            _log.warning("JWKS from %s is invalid: %s", url, exc)
            return None
        finally:
            response.close()


def _read_bounded(response: requests.Response, deadline: float) -> bytes:
    """The body, at most _MAX_JWKS_BYTES, read before ``deadline``: the per-read timeout alone
    would let a server that trickles bytes hold the request thread indefinitely."""
    body = bytearray()
    for chunk in response.iter_content(chunk_size=16_384):
        body.extend(chunk)
        if len(body) > _MAX_JWKS_BYTES:
            raise ValueError(f"larger than {_MAX_JWKS_BYTES} bytes")
        if time.monotonic() > deadline:
            raise ValueError("not received within the timeout")
    return bytes(body)
