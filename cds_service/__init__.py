"""AIH CDS Hooks service: ``create_app`` builds a ready-to-serve Flask application."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from cds_service.api import bp, json_response
from cds_service.bench_echo import echo_bp
from cds_service.configuration import Configuration, load_configuration
from cds_service.engine import Engine
from cds_service.errors import operation_outcome
from cds_service.fhir_client import FetchLimits, FhirFetcher
from cds_service.fhir_validation import warm_models
from cds_service.rules.registry import REGISTRY
from cds_service.runtime import Runtime, Unauthorized, patient_hash_key, random_uuid, utc_now
from cds_service.security import ClientAuthenticator, load_trusted_clients
from cds_service.settings import Settings
from cds_service.store import Store

__all__ = ["create_app", "load_rules"]
log = logging.getLogger("cds_service")


def load_rules(settings: Settings) -> Configuration:
    return load_configuration(settings.cards_dir, REGISTRY)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application. With no argument: bundled ``cards/``, SQLite, client JWTs required.

    ``config`` takes settings by name (``CDS_AUTH`` or ``auth``) over the environment, plus
    ``clock`` and ``uuid_factory`` callables that tests use to pin time and identifiers.
    """
    settings = Settings.load(config)
    logging.basicConfig(level=settings.log_level)
    configuration = load_rules(settings)  # a bad file stops start-up here, naming file and field
    warm_models()
    clock: Callable[[], datetime] = settings.extra.get("clock", utc_now)
    new_uuid: Callable[[], str] = settings.extra.get("uuid_factory", random_uuid)
    fetcher = FhirFetcher(
        FetchLimits(
            settings.fhir_timeout_s, settings.fhir_max_pages, settings.fhir_max_response_bytes
        )
    )
    store = Store(settings.database_url, patient_hash_key(settings))
    store.create_schema()
    runtime = Runtime(
        settings,
        Engine(configuration, fetcher, clock, new_uuid),
        store,
        _authenticator(settings),
        clock,
    )

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.extensions["aih_cds"] = runtime
    app.register_blueprint(bp)
    if settings.bench_echo:
        app.register_blueprint(echo_bp)
    _register_errors(app)
    _register_cors(app, settings)
    log.info(
        "AIH CDS service ready: %d services, %d rules, %d value sets",
        len(configuration.services),
        len(configuration.rules),
        len(configuration.terminology.valuesets),
    )
    return app


def _authenticator(settings: Settings) -> ClientAuthenticator | None:
    if not settings.auth:
        log.warning(
            "*** CDS_AUTH=off: client JWTs are NOT verified. Development only: never expose this "
            "service to a network in this mode. ***"
        )
        return None
    clients = load_trusted_clients(settings.trusted_issuers) if settings.trusted_issuers else ()
    if not clients:
        log.warning(
            "no trusted CDS clients configured (CDS_TRUSTED_ISSUERS): every call will get 401"
        )
    return ClientAuthenticator(clients, leeway_s=settings.jwt_leeway_s)


def _register_errors(app: Flask) -> None:
    @app.errorhandler(Unauthorized)
    def unauthorized(_: Unauthorized) -> Response:
        return Response(status=401)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        code = error.code or 500
        issue = {404: "not-found", 405: "not-supported", 413: "too-costly"}.get(code, "exception")
        return json_response(operation_outcome(error.description or error.name, code=issue), code)

    @app.errorhandler(Exception)
    def unexpected(_: Exception) -> Response:
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return json_response(operation_outcome("internal error", code="exception"), 500)


def _register_cors(app: Flask, settings: Settings) -> None:
    allowed = set(settings.cors_origins)

    @app.after_request
    def cors(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin and ("*" in allowed or origin in allowed):
            response.headers["Access-Control-Allow-Origin"] = "*" if "*" in allowed else origin
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
            response.headers.add("Vary", "Origin")
        return response
