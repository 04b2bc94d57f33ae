"""OpenAPI 3.0 description of this service's HTTP API, served at ``/openapi.json``.

Request schemas are generated from the parser's marshmallow schemas in
:mod:`cds_service.hooks.protocol` (:mod:`cds_service.common.json_schema`, apispec), so they cannot
drift from what the service accepts; unknown members are allowed, as clients add extensions. Each
configured service gets its own path with the context schema of its hook. Cross-member rules that
JSON Schema cannot state (``selections`` must name draft orders; ``fhirAuthorization`` needs
``fhirServer``) are field descriptions there and answered 400. Answer schemas are written here: the
service builds its answers, and schemathesis checks every answer against them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import fields, validate

from cds_service.common.json_schema import JsonSchemaGenerator
from cds_service.config.configuration import Configuration
from cds_service.hooks.protocol import CONTEXT_SCHEMAS, FeedbackSchema, HookRequestSchema

OPENAPI_VERSION = "3.0.3"

_STRING = {"type": "string", "minLength": 1}
_OBJECT = {"type": "object"}

_CODING = {
    "type": "object",
    "required": ["code"],
    "properties": {
        "system": {"type": "string"},
        "code": {"type": "string"},
        "display": {"type": "string"},
    },
}
_FEEDBACK_RECEIPT = {
    "type": "object",
    "required": ["stored", "duplicates", "unknownCards"],
    "properties": {
        "stored": {"type": "integer", "minimum": 0},
        "duplicates": {"type": "integer", "minimum": 0},
        "unknownCards": {"type": "integer", "minimum": 0},
        "conflicts": {"type": "integer", "minimum": 1},
        "unknownSuggestions": {"type": "integer", "minimum": 1},
        "unknownOverrideReasons": {"type": "integer", "minimum": 1},
    },
}
_LINK = {
    "type": "object",
    "required": ["label", "url", "type"],
    "properties": {
        "label": _STRING,
        "url": _STRING,
        "type": {"type": "string", "enum": ["absolute", "smart"]},
        "appContext": {"type": "string"},
    },
}
_CARD = {
    "type": "object",
    "required": ["summary", "indicator", "source"],
    "properties": {
        "uuid": {"type": "string"},
        "summary": {"type": "string", "minLength": 1, "maxLength": 139},
        "detail": {"type": "string"},
        "indicator": {"type": "string", "enum": ["info", "warning", "critical"]},
        "source": {
            "type": "object",
            "required": ["label"],
            "properties": {"label": _STRING, "url": {"type": "string"}, "topic": _CODING},
        },
        "suggestions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["label"],
                "properties": {
                    "label": _STRING,
                    "uuid": {"type": "string"},
                    "isRecommended": {"type": "boolean"},
                    "actions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["type", "description"],
                            "properties": {
                                "type": {"type": "string", "enum": ["create", "update", "delete"]},
                                "description": {"type": "string"},
                                "resource": _OBJECT,
                                "resourceId": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
        "selectionBehavior": {"type": "string", "enum": ["at-most-one", "any"]},
        "overrideReasons": {"type": "array", "items": _CODING},
        "links": {"type": "array", "items": _LINK},
    },
}
_CARDS_RESPONSE = {
    "type": "object",
    "required": ["cards"],
    "properties": {
        "cards": {"type": "array", "items": _CARD},
        "systemActions": {"type": "array", "items": _OBJECT},
    },
}
_DISCOVERY = {
    "type": "object",
    "required": ["services"],
    "properties": {
        "services": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["hook", "id", "description"],
                "properties": {
                    "hook": _STRING,
                    "id": _STRING,
                    "description": {"type": "string"},
                    "title": {"type": "string"},
                    "prefetch": {"type": "object", "additionalProperties": {"type": "string"}},
                    "usageRequirements": {"type": "string"},
                },
            },
        }
    },
}
_OPERATION_OUTCOME = {
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string"},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
_STATUS = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}
_COUNT_OR_NULL = {"type": "integer", "minimum": 0, "nullable": True}
_READINESS = {
    "type": "object",
    "required": ["status", "rules", "database", "spoolDepth", "dropped", "spoolWritable"],
    "properties": {
        "status": {"type": "string", "enum": ["ready", "not ready"]},
        "rules": {"type": "integer", "minimum": 0},
        "database": {"type": "boolean"},
        "spoolDepth": _COUNT_OR_NULL,
        "oldestSpooledAgeSeconds": _COUNT_OR_NULL,
        "dropped": _COUNT_OR_NULL,
        "spoolWritable": {"type": "boolean"},
    },
}

_OUTCOME_ANSWERS = {
    "400": "Invalid request: the OperationOutcome names the member",
    "404": "Unknown service",
    "405": "Method not allowed",
    "413": "Body, Bundle or nesting beyond the configured limits",
    "415": "Body is not JSON",
}


def _json(schema: Mapping[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _outcomes(*codes: str) -> dict[str, Any]:
    return {code: _json(_OPERATION_OUTCOME, _OUTCOME_ANSWERS[code]) for code in codes}


_UNAUTHORIZED = {"401": {"description": "Client JWT missing or invalid (no body, no detail)"}}


def _post(summary: str, body: Mapping[str, Any], ok: Mapping[str, Any], **extra: Any) -> Any:
    responses = {
        "200": ok,
        **_UNAUTHORIZED,
        **_outcomes("400", "404", "405", "413", "415"),
        **extra,
    }
    return {
        "summary": summary,
        "security": [{"clientJwt": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": responses,
    }


def _request_schemas() -> JsonSchemaGenerator:
    return JsonSchemaGenerator(openapi_version=OPENAPI_VERSION, inline=True)


def hook_request_schema(hook: str) -> dict[str, Any]:
    """The request body of a service for ``hook``: the parser's schema with that hook's context."""
    published = type(
        f"{hook.title().replace('-', '')}RequestSchema",
        (HookRequestSchema,),
        {
            "hook": fields.String(required=True, validate=validate.OneOf([hook])),
            "context": fields.Nested(CONTEXT_SCHEMAS[hook], required=True),
        },
    )
    return _request_schemas().schema(published)


def feedback_request_schema() -> dict[str, Any]:
    return _request_schemas().schema(FeedbackSchema)


def openapi_document(configuration: Configuration) -> dict[str, Any]:
    """The API as configured: one path per service, with the context schema of its hook."""
    paths: dict[str, Any] = {
        "/cds-services": {
            "get": {
                "summary": "CDS Hooks discovery",
                "security": [{"clientJwt": []}, {}],
                "responses": {
                    "200": _json(_DISCOVERY, "The services offered"),
                    **_UNAUTHORIZED,
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "security": [],
                "responses": {"200": _json(_STATUS, "The process is up")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness",
                "security": [],
                "responses": {
                    "200": _json(
                        _READINESS,
                        "Hook calls can be answered: rules loaded, and the card log writable "
                        "to the database or to the local spool (database state reported)",
                    ),
                    "503": _json(_READINESS, "Neither the database nor the spool can log"),
                },
            }
        },
    }
    paths["/evidence/{ruleId}"] = {
        "get": {
            "summary": "A rule's evidence page (linked from its cards; no patient data)",
            "security": [],
            "parameters": [
                {
                    "name": "ruleId",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": sorted(configuration.rules)},
                }
            ],
            "responses": {
                "200": {
                    "description": "HTML page",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                },
                "404": _json(_OPERATION_OUTCOME, "No such rule"),
            },
        }
    }
    for service in configuration.services.values():
        path = f"/cds-services/{service.id}"
        paths[path] = {
            "post": _post(
                f"{service.hook} service {service.id}",
                hook_request_schema(service.hook),
                _json(_CARDS_RESPONSE, "Cards (possibly none)"),
                **{"412": _json(_OPERATION_OUTCOME, "Required data could not be obtained")},
            )
        }
        paths[path + "/feedback"] = {
            "post": _post(
                f"Feedback on cards of {service.id}",
                feedback_request_schema(),
                _json(
                    _FEEDBACK_RECEIPT,
                    "Feedback items stored, duplicates, unknown cards (a card issued to another "
                    "client or tenant counts as unknown); conflicts: another outcome was recorded",
                ),
                **{
                    "503": {
                        **_json(_OPERATION_OUTCOME, "Database unavailable: nothing stored"),
                        "headers": {
                            "Retry-After": {
                                "description": "seconds to wait before sending it again",
                                "schema": {"type": "integer"},
                            }
                        },
                    }
                },
            )
        }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "AIH CDS Hooks service",
            "version": "2.0",
            "description": "CDS Hooks 2.0 services for autoimmune hepatitis care.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "clientJwt": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "CDS Hooks client JWT (ES384/RS384, aud = endpoint URL)",
                }
            }
        },
    }
