"""CORS for browser-based CDS clients, as the CDS Hooks Sandbox calls services from the browser."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests import factories as f
from tests.conformance.support import spec_example

SANDBOX = "https://sandbox.cds-hooks.org"
PATHS = [
    ("/cds-services", "GET"),
    ("/cds-services/aih-order-sign", "POST"),
    ("/cds-services/aih-order-select", "POST"),
    ("/cds-services/aih-patient-view", "POST"),
    ("/cds-services/aih-order-sign/feedback", "POST"),
]


def _listed(header: str | None) -> set[str]:
    return {part.strip().lower() for part in (header or "").split(",") if part.strip()}


@pytest.mark.parametrize(("path", "method"), PATHS)
def test_preflight_allows_sandbox_with_authorization(
    client: FlaskClient, path: str, method: str
) -> None:
    response = client.options(
        path,
        headers={
            "Origin": SANDBOX,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code in {200, 204}
    assert response.headers.get("Access-Control-Allow-Origin") in {"*", SANDBOX}
    assert {"authorization", "content-type"} <= _listed(
        response.headers.get("Access-Control-Allow-Headers")
    )
    allowed_methods = _listed(response.headers.get("Access-Control-Allow-Methods"))
    assert method.lower() in allowed_methods


def test_post_from_sandbox_carries_allow_origin(client: FlaskClient) -> None:
    body = f.hook_request("order-sign", drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    response = client.post("/cds-services/aih-order-sign", json=body, headers={"Origin": SANDBOX})
    assert response.status_code == 200
    assert response.get_json()["cards"]
    assert response.headers.get("Access-Control-Allow-Origin") in {"*", SANDBOX}


def test_discovery_from_sandbox_carries_allow_origin(client: FlaskClient) -> None:
    response = client.get("/cds-services", headers={"Origin": SANDBOX})
    assert response.status_code == 200
    assert response.headers.get("Access-Control-Allow-Origin") in {"*", SANDBOX}


def test_error_answers_carry_allow_origin(client: FlaskClient) -> None:
    """The browser must be able to read the OperationOutcome of a failed call too."""
    response = client.post(
        "/cds-services/aih-order-select", json=spec_example("02"), headers={"Origin": SANDBOX}
    )
    assert response.status_code == 400
    assert response.headers.get("Access-Control-Allow-Origin") in {"*", SANDBOX}
    feedback = client.post(
        "/cds-services/aih-order-sign/feedback", json={}, headers={"Origin": SANDBOX}
    )
    assert feedback.status_code == 400
    assert feedback.headers.get("Access-Control-Allow-Origin") in {"*", SANDBOX}
