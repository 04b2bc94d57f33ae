"""``/openapi.json`` describes the API truthfully: real requests and answers fit its schemas.

The schemas are OpenAPI 3.0 (``nullable``); they are turned into JSON Schema draft 4 here and
checked with jsonschema-rs against the golden scenarios, the spec's feedback examples and the
answers the service actually gives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient

from cds_service.web.openapi import hook_request_schema
from tests import factories as f
from tests.conformance.support import spec_example
from tests.scenarios import scenario_dirs

SCENARIOS = scenario_dirs()
SERVICE_BY_HOOK = {
    "order-sign": "aih-order-sign",
    "order-select": "aih-order-select",
    "patient-view": "aih-patient-view",
}


def as_json_schema(schema: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` -> JSON Schema ``type: [T, "null"]``."""
    if isinstance(schema, list):
        return [as_json_schema(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    converted = {k: as_json_schema(v) for k, v in schema.items() if k != "nullable"}
    if schema.get("nullable") and isinstance(schema.get("type"), str):
        converted["type"] = [schema["type"], "null"]
    return converted


def errors(schema: Mapping[str, Any], instance: Any) -> list[str]:
    validator = jsonschema_rs.Draft4Validator(as_json_schema(schema))
    return [error.message for error in validator.iter_errors(instance)]


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    loaded: dict[str, Any] = answer.get_json()
    return loaded


def operation(document: Mapping[str, Any], path: str, method: str = "post") -> Any:
    return document["paths"][path][method]


def request_schema(document: Mapping[str, Any], path: str) -> Any:
    return operation(document, path)["requestBody"]["content"]["application/json"]["schema"]


def answer_schema(document: Mapping[str, Any], path: str, status: int, method: str = "post") -> Any:
    return operation(document, path, method)["responses"][str(status)]["content"][
        "application/json"
    ]["schema"]


def test_document_is_a_loadable_openapi_3_description(app: Flask) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} == {
        ("GET", "/cds-services"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/evidence/{ruleId}"),
        *(("POST", f"/cds-services/{sid}") for sid in SERVICE_BY_HOOK.values()),
        *(("POST", f"/cds-services/{sid}/feedback") for sid in SERVICE_BY_HOOK.values()),
    }


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_golden_requests_and_answers_fit_the_schemas(
    client: FlaskClient, document: dict[str, Any], scenario: Path
) -> None:
    request = json.loads((scenario / "request.json").read_text(encoding="utf-8"))
    path = f"/cds-services/{SERVICE_BY_HOOK[request['hook']]}"
    assert errors(request_schema(document, path), request) == []
    expected = json.loads((scenario / "expected-cards.json").read_text(encoding="utf-8"))
    assert errors(answer_schema(document, path, 200), expected) == []


def test_live_answers_fit_the_schemas(client: FlaskClient, document: dict[str, Any]) -> None:
    path = "/cds-services/aih-order-sign"
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    cards = client.post(path, json=body)
    assert errors(answer_schema(document, path, 200), cards.get_json()) == []
    bad = client.post(path, json={"hook": "order-sign"})
    assert errors(answer_schema(document, path, 400), bad.get_json()) == []
    feedback = {
        "feedback": [
            {
                "card": cards.get_json()["cards"][0]["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": f.when(0),
            }
        ]
    }
    receipt = client.post(path + "/feedback", json=feedback)
    assert errors(answer_schema(document, path + "/feedback", 200), receipt.get_json()) == []
    discovery = client.get("/cds-services").get_json()
    assert errors(answer_schema(document, "/cds-services", 200, "get"), discovery) == []
    ready = client.get("/readyz").get_json()
    assert errors(answer_schema(document, "/readyz", 200, "get"), ready) == []


@pytest.mark.parametrize("number", ["19", "20", "21"])
def test_spec_feedback_examples_fit_the_feedback_schema(
    document: dict[str, Any], number: str
) -> None:
    schema = request_schema(document, "/cds-services/aih-order-sign/feedback")
    assert errors(schema, spec_example(number)) == []


def test_schema_rejects_what_the_service_rejects(document: dict[str, Any]) -> None:
    """The schema is not vacuous: missing members and wrong types are errors in both."""
    schema = hook_request_schema("order-select")
    valid = f.hook_request("order-select", drafts=(f.mmf_draft(),))
    assert errors(schema, valid) == []
    assert errors(schema, {**valid, "hook": "order-sign"})
    assert errors(schema, {k: v for k, v in valid.items() if k != "hookInstance"})
    assert errors(schema, {**valid, "context": {**valid["context"], "selections": []}})
    assert errors(schema, {**valid, "prefetch": {"patient": "not a resource"}})
    assert errors(schema, {**valid, "prefetch": {"patient": None}}) == []
