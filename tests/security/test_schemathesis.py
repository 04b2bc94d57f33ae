"""Schemathesis against the running application (in-process WSGI), bounded in examples.

Every operation of ``/openapi.json`` gets generated valid and invalid requests; each answer
must be no 5xx, a documented status, the documented content type and fit the documented
schema. Runs in development mode (no client JWT) so that the generated bodies reach the
parsers and the engine. Generated ``fhirServer`` URLs must never be contacted: the FHIR
client's transport refuses every connection (answered 412 or with the gap stated).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from requests.adapters import BaseAdapter
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class RefuseAll(BaseAdapter):
    """Generated fhirServer URLs point anywhere: no request may leave this machine."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        raise requests.ConnectionError("outbound requests are refused in this test")

    def close(self) -> None:
        pass


OPERATIONS = [
    ("GET", "/cds-services"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    *(
        ("POST", f"/cds-services/{service}{suffix}")
        for service in ("aih-order-sign", "aih-order-select", "aih-patient-view")
        for suffix in ("", "/feedback")
    ),
]


@pytest.fixture
def application(app_factory: Callable[..., Flask]) -> Flask:
    app = app_factory(auth=False)
    session = app.extensions["aih_cds"].engine.fetcher.session
    session.mount("http://", RefuseAll())
    session.mount("https://", RefuseAll())
    return app


# Operations without a body or parameters have no invalid input to generate.
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if method == "POST" or mode is GenerationMode.POSITIVE
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_api_conforms_to_its_description(
    application: Flask, method: str, path: str, mode: GenerationMode
) -> None:
    api = schemathesis.openapi.from_wsgi("/openapi.json", application)
    operation = api[path][method]
    seen: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(checks=CHECKS)
        seen.append(response.status_code)

    run()
    assert seen, "no request was generated"
