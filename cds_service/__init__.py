"""AIH CDS Hooks service: ``create_app`` builds a ready-to-serve Flask application."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from cds_service.common.errors import DATABASE_UNAVAILABLE, DatabaseUnavailable, operation_outcome
from cds_service.common.settings import Settings, SettingsError
from cds_service.config.configuration import Configuration, load_configuration
from cds_service.demo import register_demo
from cds_service.fhir.client import FetchLimits, FhirFetcher, begin_hook_call, end_hook_call
from cds_service.fhir.server_policy import (
    LOOPBACK_SERVERS,
    FhirServerPolicy,
    parse_entries,
    parse_networks,
)
from cds_service.fhir.validation import warm_models
from cds_service.hooks.engine import Engine
from cds_service.informatics.analytics_api import analytics_bp
from cds_service.informatics.charts import DEFAULT_SCENARIOS_DIR
from cds_service.ops import tracing
from cds_service.ops.logs import configure_logging
from cds_service.ops.observability import install as install_observability
from cds_service.rules.registry import REGISTRY
from cds_service.security.client_auth import (
    ClientAuthenticator,
    InMemoryReplayCache,
    ReplayCache,
    load_trusted_clients,
)
from cds_service.storage.card_log import CardLogWriter, default_spool_dir
from cds_service.storage.schema import require_head
from cds_service.storage.spool import Spool
from cds_service.storage.store import DatabaseReplayCache, PoolSettings, Store
from cds_service.web.api import bp, json_response, service_error
from cds_service.web.bench_echo import echo_bp
from cds_service.web.cpu_gating import install_cpu_gate
from cds_service.web.evidence_page import evidence_bp
from cds_service.web.http_headers import register_response_headers
from cds_service.web.runtime import Runtime, Unauthorized, patient_hash_key, random_uuid, utc_now

__all__ = ["create_app", "load_rules"]
log = logging.getLogger("cds_service")


def load_rules(settings: Settings) -> Configuration:
    configuration = load_configuration(settings.cards_dir, REGISTRY)
    for warning in configuration.warnings:
        log.warning("configuration warning: %s", warning)
    return configuration


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application. With no argument: bundled ``cards/``, SQLite, client JWTs required.

    ``config`` takes settings by name (``CDS_AUTH`` or ``auth``) over the environment, plus
    ``clock`` and ``uuid_factory`` callables that tests use to pin time and identifiers.
    """
    settings = Settings.load(config)
    configure_logging(settings.log_level, settings.log_format)
    _quiet_url_logging()
    configuration = load_rules(settings)  # a bad file stops start-up here, naming file and field
    warm_models()
    clock: Callable[[], datetime] = settings.extra.get("clock", utc_now)
    new_uuid: Callable[[], str] = settings.extra.get("uuid_factory", random_uuid)
    fetcher = FhirFetcher(
        FetchLimits(
            settings.fhir_timeout_s,
            settings.fhir_max_pages,
            settings.fhir_max_response_bytes,
            max_calls_per_host=settings.fhir_calls_per_host,
            max_entries_per_call=settings.max_bundle_entries * 4,
            max_bytes_per_call=settings.fhir_max_response_bytes * 2,
        ),
        # Enough threads that every serving thread's call runs all its queries at once.
        workers=max(16, settings.threads * 8),
        policy=fhir_server_policy(settings),
    )
    store = open_store(settings)
    runtime = Runtime(
        settings,
        Engine(configuration, fetcher, clock, new_uuid, strict_report=settings.strict_fhir_report),
        store,
        _authenticator(settings, store),
        open_card_log(settings, store),
        clock,
    )

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.extensions["aih_cds"] = runtime
    if settings.otel:  # tracing is per process: one app per gunicorn worker
        tracing.configure(settings.otel_service_name, settings.extra.get("span_exporter"))
    else:
        tracing.disable()
    install_observability(app, frozenset(configuration.services))
    app.register_blueprint(bp)
    app.register_blueprint(analytics_bp)
    app.register_blueprint(evidence_bp)
    if settings.demo_enabled:
        register_demo(app, settings.extra.get("demo_patients_dir", DEFAULT_SCENARIOS_DIR))
    if settings.bench_echo:
        app.register_blueprint(echo_bp)
    _register_errors(app)
    _one_fetch_deadline_per_call(app)
    register_response_headers(app, settings)
    install_cpu_gate(app, settings)
    log.info(
        "AIH CDS service ready: %d services, %d rules, %d value sets",
        len(configuration.services),
        len(configuration.rules),
        len(configuration.terminology.valuesets),
    )
    return app


def fhir_server_policy(settings: Settings) -> FhirServerPolicy:
    """Which fhirServer URLs may be contacted; a bad entry stops start-up naming the setting."""
    try:
        return FhirServerPolicy(
            parse_entries(
                LOOPBACK_SERVERS if settings.fhir_servers is None else settings.fhir_servers
            ),
            parse_networks(settings.fhir_private_networks),
            development=not settings.auth,
        )
    except ValueError as exc:
        raise SettingsError(f"CDS_FHIR_SERVERS / CDS_FHIR_PRIVATE_NETWORKS: {exc}") from None


def open_store(settings: Settings) -> Store:
    """The card log database, migrated (CDS_DATABASE_MIGRATE on) or checked to be current."""
    store = Store(
        settings.database_url,
        patient_hash_key(settings),
        PoolSettings(
            size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            timeout_s=settings.database_pool_timeout_s,
            recycle_s=settings.database_pool_recycle_s,
            query_timeout_s=settings.database_query_timeout_s,
        ),
    )
    if settings.database_migrate:
        store.create_schema()
    else:
        require_head(store.engine)
    return store


def open_card_log(settings: Settings, store: Store) -> CardLogWriter:
    """The card log's local spool (created if missing: a start-up that cannot create it stops)."""
    directory = Path(settings.spool_dir) if settings.spool_dir else None
    spool = Spool(
        directory or default_spool_dir(settings.database_url),
        max_entries=settings.spool_max_entries,
        max_age_s=settings.spool_max_age_s,
    )
    log.info("card-log spool at %s", spool.path)
    return CardLogWriter(store, spool, retry_interval_s=settings.spool_retry_s)


def _quiet_url_logging() -> None:
    """urllib3 logs every request URL at DEBUG, and FHIR search URLs carry the patient id."""
    urllib3_log = logging.getLogger("urllib3")
    if urllib3_log.getEffectiveLevel() < logging.INFO:
        urllib3_log.setLevel(logging.INFO)


def _authenticator(settings: Settings, store: Store) -> ClientAuthenticator | None:
    if not settings.auth:
        log.critical(
            "*** CDS_AUTH=off: client JWTs are NOT verified and CORS is open. Development only: "
            "never expose this service to a network in this mode. ***"
        )
        return None
    if not settings.public_base_url:
        # Without it the aud check would follow the Host header: a token minted for another
        # CDS service on another name would be accepted here.
        raise SettingsError(
            "CDS_PUBLIC_BASE_URL is required when client JWTs are verified (CDS_AUTH=on): "
            "it is the aud every token must name"
        )
    source = settings.trusted_clients_source
    clients = load_trusted_clients(source) if source else ()
    if not clients:
        log.warning(
            "no trusted CDS clients configured (CDS_TRUSTED_CLIENTS_FILE): every call will get 401"
        )
    kind = _replay_cache_kind(settings)
    replay_cache: ReplayCache = (
        DatabaseReplayCache(store, fallback_s=settings.replay_fallback_s)
        if kind == "database"
        else InMemoryReplayCache()
    )
    log.info(
        "client JWTs verified: %d trusted client(s), algorithms %s, %s replay cache",
        len(clients),
        ",".join(settings.jwt_algorithms),
        kind,
    )
    return ClientAuthenticator(
        clients,
        algorithms=settings.jwt_algorithms,
        leeway_s=settings.jwt_leeway_s,
        max_token_lifetime_s=settings.jwt_max_lifetime_s,
        replay_cache=replay_cache,
        jwks_timeout_s=settings.jwks_timeout_s,
        jwks_cache_ttl_s=settings.jwks_cache_ttl_s,
    )


def _replay_cache_kind(settings: Settings) -> str:
    """Several serving processes must share the replay cache, or a token replayed to another
    process would pass: unless told otherwise they use the database."""
    processes = int(settings.extra.get("serving_processes", 1))
    if not settings.replay_cache:
        return "database" if processes > 1 else "memory"
    if settings.replay_cache == "memory" and processes > 1:
        raise SettingsError(
            f"CDS_REPLAY_CACHE=memory with {processes} serving processes: a token replayed to "
            "another process would not be detected; use the database cache"
        )
    return settings.replay_cache


def _one_fetch_deadline_per_call(app: Flask) -> None:
    """All FHIR fetches made while answering one request share one deadline."""

    @app.before_request
    def start_budget() -> None:
        g.aih_fetch_budget = begin_hook_call()

    @app.teardown_request
    def end_budget(_error: BaseException | None) -> None:
        token = g.pop("aih_fetch_budget", None)
        if token is not None:
            end_hook_call(token)


def _register_errors(app: Flask) -> None:
    @app.errorhandler(Unauthorized)
    def unauthorized(_: Unauthorized) -> Response:
        # No detail (BP); the scheme alone is what RFC 6750 asks of a 401.
        return Response(status=401, headers={"WWW-Authenticate": "Bearer"})

    def database_unavailable(error: Exception) -> Response:
        log.error(
            "database unavailable answering %s %s: %s",
            request.method,
            request.path,
            type(error).__name__,
        )
        return service_error(DatabaseUnavailable("database unavailable, retry later"))

    for kind in DATABASE_UNAVAILABLE:
        app.register_error_handler(kind, database_unavailable)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        code = error.code or 500
        issue = {404: "not-found", 405: "not-supported", 413: "too-costly"}.get(code, "exception")
        return json_response(operation_outcome(error.description or error.name, code=issue), code)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        # Type and stack only: an exception's message may quote request data (patient ids,
        # tokens), which must not reach the logs.
        log.error(
            "unexpected %s answering %s %s\n%s",
            type(error).__name__,
            request.method,
            request.path,
            "".join(traceback.format_tb(error.__traceback__)).rstrip(),
        )
        return json_response(operation_outcome("internal error", code="exception"), 500)
