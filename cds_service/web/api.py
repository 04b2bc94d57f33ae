"""HTTP: discovery, service calls, feedback, health. Views only parse, delegate and serialise."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, request

from cds_service.common import jsonparse
from cds_service.common.errors import (
    DatabaseUnavailable,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    UnsupportedMediaType,
)
from cds_service.hooks.protocol import parse_feedback
from cds_service.ops import tracing
from cds_service.ops.metrics import exposition, metrics
from cds_service.ops.observability import note_hook_instance
from cds_service.web.json_limits import check_limits, parse_json
from cds_service.web.openapi import openapi_document
from cds_service.web.runtime import Runtime

log = logging.getLogger(__name__)
bp = Blueprint("cds", __name__)
JSON_TYPES = ("application/json", "application/fhir+json")
REJECTED_FEEDBACK = {
    "conflict": "conflicts",
    "unknown-suggestion": "unknownSuggestions",
    "unknown-reason": "unknownOverrideReasons",
}


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["aih_cds"]
    return rt


def json_response(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json"
    )


def read_json_body(parse: Callable[..., Any] = jsonparse.loads, *, limits: bool = True) -> Any:
    """The request's JSON body: strict JSON (``parse`` is json.loads or an equivalent, see
    jsonparse), then the depth and Bundle-size limits unless ``limits`` is off (the benchmark's
    ceiling measures parsing alone)."""
    mimetype = (request.mimetype or "").lower()
    if mimetype not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {mimetype or 'none'!r}"
        )
    raw = request.get_data(cache=False)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if limit is not None and len(raw) >= limit:
        # A chunked body has no Content-Length: werkzeug stops reading at the limit instead.
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    document = parse_json(raw, parse)
    if limits:
        check_limits(document, runtime().json_limits, raw)
    return document


@bp.get("/cds-services")
def discovery() -> Response:
    runtime().authenticate(request, discovery=True)
    services = [s.discovery() for s in runtime().config.services.values()]
    return json_response({"services": services})


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    rt = runtime()
    # First: without a token, no one learns which services exist.
    scope = rt.authenticate(request)
    rt.engine.service(service_id)
    body = read_json_body()
    note_hook_instance(body)
    evaluation = rt.engine.call(
        service_id, body, rt.link_targets(request), evidence_base=rt.evidence_base(request)
    )
    rt.log_cards(evaluation, scope)
    tracing.annotate({"cds.cards": len(evaluation.cards)})
    for issued in evaluation.cards:
        metrics().cards.labels(
            service_id, issued.rule_id, str(issued.card["indicator"]), issued.mode
        ).inc()
    return json_response(evaluation.response())


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    rt = runtime()
    scope = rt.authenticate(request)
    rt.engine.service(service_id)
    items = parse_feedback(read_json_body())
    if rt.card_log.holds_any([item.card for item in items], scope):
        raise DatabaseUnavailable("the card is not in the card log yet, retry later")
    offered = {
        rule_id: frozenset(str(reason.get("code")) for reason in rule.override_reasons)
        for rule_id, rule in rt.config.rules.items()
    }
    # Cards issued to another client or tenant count as unknown cards: never revealed.
    receipt = rt.store.record_feedback(service_id, items, rt.clock(), offered, scope=scope)
    for item, result in zip(items, receipt.results, strict=True):
        metrics().feedback.labels(service_id, item.outcome, result).inc()
    answer = {
        "stored": receipt.stored,
        "duplicates": receipt.duplicates,
        "unknownCards": receipt.unknown_cards,
    }
    # Reported only when they happen, so the common answer keeps its shape.
    for result, name in REJECTED_FEEDBACK.items():
        if receipt.count(result):
            answer[name] = receipt.count(result)
    return json_response(answer)


@bp.get("/openapi.json")
def openapi() -> Response:
    """The API description names the services, so it is protected like discovery."""
    runtime().authenticate(request, discovery=True)
    return json_response(openapi_document(runtime().config))


@bp.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Ready while hook calls can be answered: rules loaded and the card log writable, to the
    database or to the spool. The database's own state is reported, not required."""
    rt = runtime()
    card_log = rt.card_log.status()
    ready = card_log.database_up or card_log.spool_room
    body = {
        "status": "ready" if ready else "not ready",
        "rules": len(rt.config.rules),
        **card_log.as_json(),
    }
    return json_response(body, 200 if ready else 503)


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    if not runtime().settings.metrics:
        raise NotFound("metrics are switched off (CDS_METRICS)")
    runtime().card_log.status()  # brings the database and spool gauges up to date
    body, content_type = exposition()
    return Response(body, status=200, content_type=content_type)


@bp.app_errorhandler(ServiceError)
def service_error(error: ServiceError) -> Response:
    response = json_response(error.outcome(), error.status)
    if error.retry_after_s is not None:
        response.headers["Retry-After"] = str(error.retry_after_s)
    return response
