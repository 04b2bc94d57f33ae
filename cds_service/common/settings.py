"""Typed settings from ``CDS_*`` environment variables: the only module that reads os.environ."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # cds_service/
# The configuration lives beside the package in the repository (editable install); a
# deployment mounts its own copy and points CDS_CARDS_DIR at it.
DEFAULT_CARDS_DIR = PACKAGE_ROOT.parent / "cards"
ENV_PREFIX = "CDS_"
LOG_FORMATS = ("text", "json")
REPLAY_CACHES = ("memory", "database")
MAX_SILENT_TEXT_DAYS = 366


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    """Every knob of the service. Field ``x`` is read from ``CDS_X``."""

    cards_dir: Path = DEFAULT_CARDS_DIR
    database_url: str = "sqlite:///aih-cds.sqlite"
    auth: bool = True
    anonymous_discovery: bool = False
    trusted_issuers: str = ""
    trusted_clients_file: str = ""
    jwt_algorithms: tuple[str, ...] = ("ES384", "RS384")
    jwt_leeway_s: int = 60
    jwt_max_lifetime_s: int = 3600
    jwks_timeout_s: float = 2.0
    jwks_cache_ttl_s: int = 300
    # "" (unset): in-process for one process, the database when several serve (see replay_store).
    replay_cache: str = ""
    # The URL clients call (the JWT aud); required with auth on.
    public_base_url: str = ""
    # Proxies whose X-Forwarded-* headers gunicorn believes (IP addresses); none by default.
    trusted_proxies: tuple[str, ...] = ()
    fhir_timeout_s: float = 2.0
    fhir_max_pages: int = 10
    fhir_max_response_bytes: int = 20_000_000
    # Hook calls in progress per FHIR server per process; 0: half the serving threads (>= 1),
    # so a slow server can never hold every thread.
    fhir_max_calls_per_host: int = 0
    # Development mode (CDS_AUTH=off): the fhirServer base URLs any caller may send (port "*":
    # any port). None: loopback only. With auth on each trusted client lists its own.
    fhir_servers: tuple[str, ...] | None = None
    # Private (RFC 1918, ULA, CGNAT) networks a listed fhirServer host name may resolve to.
    fhir_private_networks: tuple[str, ...] = ()
    max_request_bytes: int = 5_000_000
    max_json_depth: int = 64
    max_bundle_entries: int = 5_000
    patient_hash_key: str = ""
    # None: unset, which means "*" in development mode (CDS_AUTH=off) and no origin otherwise.
    cors_origins: tuple[str, ...] | None = None
    log_level: str = "INFO"
    demo: str = "auto"  # /demo page: on, off, or auto (on exactly when auth is off)
    log_format: str = "text"
    database_migrate: bool = True
    database_pool_size: int = 5
    database_max_overflow: int = 5
    database_pool_timeout_s: float = 2.0
    database_pool_recycle_s: int = 1800
    database_query_timeout_s: float = 2.0
    # Card-log spool: "" means beside a SQLite file, else a per-database temp directory.
    spool_dir: str = ""
    spool_max_entries: int = 100_000
    spool_max_age_s: int = 7 * 24 * 3600
    spool_retry_s: float = 2.0
    replay_fallback_s: int = 300
    card_log_retention_days: int = 0
    feedback_retention_days: int = 0
    # Store the rendered text of silent cards (patient data: off by default), for this many days.
    silent_card_text: bool = False
    silent_card_text_days: int = 14
    metrics: bool = True
    otel: bool = False
    otel_service_name: str = "aih-cds"
    bind: str = "127.0.0.1:8080"
    workers: int = 2
    threads: int = 16
    # With threads > 1: hook calls in one worker compute one at a time, in arrival order, and
    # let go while they wait on a FHIR server (ops/cpu_gate.py). Off: threads share the GIL freely.
    cpu_gate: bool = True
    # How often (ms) a gthread worker's running thread offers the GIL to another (Python: 5 ms);
    # see ops/gunicorn_worker.py. Sync workers keep Python's default.
    gil_switch_ms: float = 1.0
    # log and state on cards what a strict R4B check finds; never drops data (fhir_strict.py)
    strict_fhir_report: bool = False
    bench_echo: bool = False  # POST /bench/echo for the load benchmark's ceiling (bench/ only)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Environment first, then explicit overrides (keys with or without the CDS_ prefix)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _coerce(f.name, f.type, raw)
        extra: dict[str, Any] = {}
        for key, value in (overrides or {}).items():
            name = key[len(ENV_PREFIX) :].lower() if key.startswith(ENV_PREFIX) else key.lower()
            if name in {f.name for f in fields(cls)} and name != "extra":
                ftype = next(f.type for f in fields(cls) if f.name == name)
                values[name] = _coerce(name, ftype, value) if isinstance(value, str) else value
            else:
                extra[key] = value
        values["extra"] = extra
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.fhir_timeout_s <= 0:
            raise SettingsError("CDS_FHIR_TIMEOUT_S must be > 0")
        if self.fhir_max_calls_per_host < 0:
            raise SettingsError("CDS_FHIR_MAX_CALLS_PER_HOST must be >= 0 (0: automatic)")
        if not 0.1 <= self.gil_switch_ms <= 100:
            raise SettingsError("CDS_GIL_SWITCH_MS must be 0.1 to 100")
        if self.fhir_max_pages < 1:
            raise SettingsError("CDS_FHIR_MAX_PAGES must be >= 1")
        if self.max_request_bytes < 1024:
            raise SettingsError("CDS_MAX_REQUEST_BYTES must be >= 1024")
        if self.demo not in {"auto", "on", "off"}:
            raise SettingsError(f"CDS_DEMO must be on, off or auto, got {self.demo!r}")
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(f"CDS_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
        if self.database_pool_size < 1 or self.database_max_overflow < 0:
            raise SettingsError(
                "CDS_DATABASE_POOL_SIZE must be >= 1, CDS_DATABASE_MAX_OVERFLOW >= 0"
            )
        if self.database_query_timeout_s < 0 or self.replay_fallback_s < 0:
            raise SettingsError(
                "CDS_DATABASE_QUERY_TIMEOUT_S and CDS_REPLAY_FALLBACK_S must be >= 0"
            )
        if self.spool_max_entries < 1 or self.spool_max_age_s < 1 or self.spool_retry_s <= 0:
            raise SettingsError(
                "CDS_SPOOL_MAX_ENTRIES and CDS_SPOOL_MAX_AGE_S must be >= 1, CDS_SPOOL_RETRY_S > 0"
            )
        if self.card_log_retention_days < 0 or self.feedback_retention_days < 0:
            raise SettingsError("retention days must be >= 0 (0 keeps rows forever)")
        if not 1 <= self.silent_card_text_days <= MAX_SILENT_TEXT_DAYS:
            raise SettingsError(
                f"CDS_SILENT_CARD_TEXT_DAYS must be 1 to {MAX_SILENT_TEXT_DAYS} (the text of "
                "silent cards is patient data: it is never kept forever)"
            )
        if self.workers < 1 or self.threads < 1:
            raise SettingsError("CDS_WORKERS and CDS_THREADS must be >= 1")
        if self.max_json_depth < 16:
            raise SettingsError("CDS_MAX_JSON_DEPTH must be >= 16 (FHIR resources nest deeply)")
        if self.max_bundle_entries < 1:
            raise SettingsError("CDS_MAX_BUNDLE_ENTRIES must be >= 1")
        if self.replay_cache and self.replay_cache not in REPLAY_CACHES:
            raise SettingsError(
                f"CDS_REPLAY_CACHE must be one of {', '.join(REPLAY_CACHES)}, "
                f"got {self.replay_cache!r}"
            )
        if self.trusted_issuers and self.trusted_clients_file:
            raise SettingsError(
                "set either CDS_TRUSTED_CLIENTS_FILE or CDS_TRUSTED_ISSUERS, not both"
            )
        if self.public_base_url:
            parts = urlsplit(self.public_base_url)
            if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query:
                raise SettingsError(
                    "CDS_PUBLIC_BASE_URL must be an absolute http(s) URL without query"
                )
        if self.jwks_timeout_s <= 0:
            raise SettingsError("CDS_JWKS_TIMEOUT_S must be > 0")

    @property
    def fhir_calls_per_host(self) -> int:
        return self.fhir_max_calls_per_host or max(1, self.threads // 2)

    @property
    def cpu_gate_active(self) -> bool:
        """The gate only matters when a worker serves several calls at once."""
        return self.cpu_gate and self.threads > 1

    @property
    def demo_enabled(self) -> bool:
        return self.demo == "on" or (self.demo == "auto" and not self.auth)

    @property
    def trusted_clients_source(self) -> str:
        """The trusted-client list: a file path, or inline JSON (CDS_TRUSTED_ISSUERS)."""
        return self.trusted_clients_file or self.trusted_issuers

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """CORS origins: open in development mode unless configured, closed otherwise."""
        if self.cors_origins is not None:
            return self.cors_origins
        return () if self.auth else ("*",)


def _coerce(name: str, ftype: Any, raw: str) -> Any:
    kind = str(ftype)
    try:
        if "bool" in kind:
            return _parse_bool(name, raw)
        if "int" in kind:
            return int(raw)
        if "float" in kind:
            return float(raw)
        if "Path" in kind:
            return Path(raw)
        if "tuple" in kind:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}: cannot read {raw!r}") from exc
    return raw


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{ENV_PREFIX}{name.upper()}: expected on/off, got {raw!r}")
