"""OpenAPI 3.0 description of this service's HTTP API, served at ``/openapi.json``.

Request schemas mirror :mod:`cds_service.protocol` (same required members, types and bounds;
unknown members allowed, as clients add extensions); each configured service gets its own
path with the context schema of its hook. Cross-member rules that JSON Schema cannot state
(``selections`` must name draft orders; ``fhirAuthorization`` needs ``fhirServer``) are given in
descriptions and answered 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cds_service.configuration import Configuration

OPENAPI_VERSION = "3.0.3"

_STRING = {"type": "string", "minLength": 1}
_OBJECT = {"type": "object"}

_FHIR_AUTHORIZATION = {
    "type": "object",
    "description": "OAuth 2.0 bearer token for fhirServer; never logged or stored.",
    "required": ["access_token", "token_type", "expires_in", "scope", "subject"],
    "properties": {
        "access_token": _STRING,
        "token_type": {"type": "string", "enum": ["Bearer", "bearer"]},
        "expires_in": {"type": "integer"},
        "scope": {"type": "string"},
        "subject": {"type": "string"},
        "patient": {"type": "string"},
    },
}
_BUNDLE = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["Bundle"]},
        "entry": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["resource"],
                "properties": {
                    "resource": {
                        "type": "object",
                        "required": ["resourceType"],
                        "properties": {"resourceType": _STRING, "id": {"type": "string"}},
                    }
                },
            },
        },
    },
}
_PATIENT_VIEW_CONTEXT: dict[str, Any] = {
    "type": "object",
    "required": ["userId", "patientId"],
    "properties": {
        "userId": _STRING,
        "patientId": _STRING,
        "encounterId": {"type": "string"},
    },
}
_ORDER_SIGN_CONTEXT: dict[str, Any] = {
    "type": "object",
    "required": ["userId", "patientId", "draftOrders"],
    "properties": {**_PATIENT_VIEW_CONTEXT["properties"], "draftOrders": _BUNDLE},
}
_ORDER_SELECT_CONTEXT = {
    "type": "object",
    "required": ["userId", "patientId", "draftOrders", "selections"],
    "properties": {
        **_ORDER_SIGN_CONTEXT["properties"],
        "selections": {
            "type": "array",
            "minItems": 1,
            "items": _STRING,
            "description": "References (Type/id) of resources in draftOrders; others are a 400.",
        },
    },
}
CONTEXT_SCHEMAS: Mapping[str, Mapping[str, Any]] = {
    "patient-view": _PATIENT_VIEW_CONTEXT,
    "order-sign": _ORDER_SIGN_CONTEXT,
    "order-select": _ORDER_SELECT_CONTEXT,
}

_CODING = {
    "type": "object",
    "required": ["code"],
    "properties": {
        "system": {"type": "string"},
        "code": {"type": "string"},
        "display": {"type": "string"},
    },
}
_FEEDBACK_REQUEST = {
    "type": "object",
    "required": ["feedback"],
    "properties": {
        "feedback": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["card", "outcome", "outcomeTimestamp"],
                "description": "acceptedSuggestions is required when outcome is accepted.",
                "anyOf": [
                    {"properties": {"outcome": {"enum": ["overridden"]}}},
                    {
                        "required": ["acceptedSuggestions"],
                        "properties": {"acceptedSuggestions": {"minItems": 1}},
                    },
                ],
                "properties": {
                    "card": _STRING,
                    "outcome": {"type": "string", "enum": ["accepted", "overridden"]},
                    "outcomeTimestamp": {"type": "string", "format": "date-time"},
                    "acceptedSuggestions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id"],
                            "properties": {"id": _STRING},
                        },
                    },
                    "overrideReason": {
                        "type": "object",
                        "description": "{reason: Coding, userComment}, or the older {code, system}",
                        "properties": {"reason": _CODING, "userComment": {"type": "string"}},
                    },
                },
            },
        }
    },
}
_FEEDBACK_RECEIPT = {
    "type": "object",
    "required": ["stored", "duplicates", "unknownCards"],
    "properties": {
        "stored": {"type": "integer", "minimum": 0},
        "duplicates": {"type": "integer", "minimum": 0},
        "unknownCards": {"type": "integer", "minimum": 0},
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
_READINESS = {
    "type": "object",
    "required": ["status", "rules", "database"],
    "properties": {
        "status": {"type": "string", "enum": ["ready", "not ready"]},
        "rules": {"type": "integer", "minimum": 0},
        "database": {"type": "boolean"},
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


def hook_request_schema(hook: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["hook", "hookInstance", "context"],
        "description": "fhirServer is required when fhirAuthorization is present.",
        "properties": {
            "hook": {"type": "string", "enum": [hook]},
            "hookInstance": {"type": "string", "minLength": 1, "maxLength": 256},
            "fhirServer": {"type": "string", "format": "uri", "pattern": "^https?://[^/?#]+"},
            "fhirAuthorization": _FHIR_AUTHORIZATION,
            "context": CONTEXT_SCHEMAS[hook],
            "prefetch": {
                "type": "object",
                "additionalProperties": {"type": "object", "nullable": True},
            },
            "extension": _OBJECT,
        },
    }


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
                    "200": _json(_READINESS, "Rules loaded and database reachable"),
                    "503": _json(_READINESS, "Database not reachable"),
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
                _FEEDBACK_REQUEST,
                _json(_FEEDBACK_RECEIPT, "Feedback items stored, duplicates, unknown cards"),
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
