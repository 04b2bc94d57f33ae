"""The HTTP layer end to end: client JWTs with the real sandbox key, health, card log, errors."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from flask import Flask

from cds_service.rules.registry import REGISTRY
from cds_service.storage.store import CardLog
from tests import factories as f
from tests.conftest import MATERIAL

SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
KEYPAIR = json.loads((MATERIAL / "cds-hooks-sandbox/keys/jwk-keypair.json").read_text())["keys"][0]
PUBLIC = json.loads((MATERIAL / "cds-hooks-sandbox/build/.well-known/jwks.json").read_text())


def sandbox_token(aud: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": SANDBOX_ISS,
        "aud": aud,
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    payload.update(claims)
    key = jwt.PyJWK(KEYPAIR).key
    headers = {"kid": KEYPAIR["kid"], "jku": SANDBOX_JKU, "typ": "JWT"}
    return jwt.encode(payload, key, algorithm="ES384", headers=headers)


@pytest.fixture
def secured(app_factory: Callable[..., Flask]) -> Flask:
    trusted = json.dumps([{"iss": SANDBOX_ISS, "jku": [SANDBOX_JKU], "jwks": PUBLIC}])
    return app_factory(auth=True, trusted_issuers=trusted)


def order_sign_body() -> dict[str, Any]:
    return f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())


def test_valid_sandbox_jwt_is_accepted(secured: Flask) -> None:
    client = secured.test_client()
    url = "/cds-services/aih-order-sign"
    token = sandbox_token("http://localhost" + url)
    response = client.post(
        url, json=order_sign_body(), headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.get_json()["cards"][0]["indicator"] == "warning"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer not-a-jwt",
        "Bearer " + sandbox_token("http://localhost/cds-services/aih-order-select"),  # wrong aud
        "Bearer "
        + sandbox_token("http://localhost/cds-services/aih-order-sign", iss="https://evil"),
        "Bearer "
        + sandbox_token("http://localhost/cds-services/aih-order-sign", exp=int(time.time()) - 600),
    ],
    ids=["missing", "garbage", "wrong-aud", "unknown-iss", "expired"],
)
def test_bad_tokens_get_a_bare_401(secured: Flask, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = secured.test_client().post(
        "/cds-services/aih-order-sign", json=order_sign_body(), headers=headers
    )
    assert response.status_code == 401
    assert response.data == b""


def test_replayed_token_is_refused(secured: Flask) -> None:
    client = secured.test_client()
    url = "/cds-services/aih-order-sign"
    headers = {"Authorization": "Bearer " + sandbox_token("http://localhost" + url)}
    assert client.post(url, json=order_sign_body(), headers=headers).status_code == 200
    assert client.post(url, json=order_sign_body(), headers=headers).status_code == 401


def test_discovery_needs_a_token_unless_anonymous_discovery(
    app_factory: Callable[..., Flask],
) -> None:
    trusted = json.dumps([{"iss": SANDBOX_ISS, "jku": [SANDBOX_JKU], "jwks": PUBLIC}])
    assert (
        app_factory(auth=True, trusted_issuers=trusted)
        .test_client()
        .get("/cds-services")
        .status_code
        == 401
    )
    open_app = app_factory(auth=True, trusted_issuers=trusted, anonymous_discovery=True)
    assert open_app.test_client().get("/cds-services").status_code == 200


def test_audience_uses_public_base_url(app_factory: Callable[..., Flask]) -> None:
    trusted = json.dumps([{"iss": SANDBOX_ISS, "jku": [SANDBOX_JKU], "jwks": PUBLIC}])
    app = app_factory(
        auth=True, trusted_issuers=trusted, public_base_url="https://cds.example.org/aih/"
    )
    client = app.test_client()

    def call(aud: str) -> Any:
        return client.post(
            "/cds-services/aih-order-sign",
            json=order_sign_body(),
            headers={"Authorization": f"Bearer {sandbox_token(aud)}"},
        )

    # the audience is the public URL, not the URL this request reached (http://localhost/...)
    answer = call("https://cds.example.org/aih/cds-services/aih-order-sign")
    assert answer.status_code == 200
    [card] = answer.get_json()["cards"]
    assert (card["source"]["topic"]["code"], card["indicator"]) == ("mmf-teratogenicity", "warning")
    for other in (
        "http://localhost/cds-services/aih-order-sign",
        "https://cds.example.org/cds-services/aih-order-sign",
        "https://cds.example.org/aih/cds-services/aih-order-select",
    ):
        refused = call(other)
        assert (refused.status_code, refused.data) == (401, b""), other


def test_default_app_requires_tokens(app_factory: Callable[..., Flask]) -> None:
    app = app_factory(auth=True)  # no trusted clients configured: nobody gets in
    assert (
        app.test_client().post("/cds-services/aih-order-sign", json=order_sign_body()).status_code
        == 401
    )


def test_health_and_readiness(client: Any) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {
        "status": "ready",
        "rules": len(REGISTRY),
        "database": True,
        "spoolDepth": 0,
        "oldestSpooledAgeSeconds": None,
        "dropped": 0,
        "spoolWritable": True,
    }


def test_issued_cards_are_logged_with_hashed_patient(app: Flask) -> None:
    body = order_sign_body()
    card = app.test_client().post("/cds-services/aih-order-sign", json=body).get_json()["cards"][0]
    store = app.extensions["aih_cds"].store
    with store.sessions() as session:
        row = session.get(CardLog, card["uuid"])
    assert row is not None
    assert (row.rule_id, row.rule_outcome, row.indicator) == (
        "mmf-teratogenicity",
        "pregnancy-test-needed",
        "warning",
    )
    assert row.hook_instance == body["hookInstance"]
    assert row.patient_hash == store.patient_hash(f.PATIENT_ID) != f.PATIENT_ID
    assert json.loads(row.suggestion_uuids) == [card["suggestions"][0]["uuid"]]


def test_no_trigger_means_no_data_needed(client: Any) -> None:
    """An order no rule is about needs no patient data: no 412 even without prefetch."""
    other = f.medication_request(rxnorm="723", display="amoxicillin", status="draft")
    response = client.post("/cds-services/aih-order-sign", json=f.hook_request(drafts=(other,)))
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_unexpected_error_is_a_500_operation_outcome_without_details(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.extensions["aih_cds"].engine, "call", boom)
    response = app.test_client().post("/cds-services/aih-order-sign", json=order_sign_body())
    assert response.status_code == 500
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert b"secret" not in response.data


def test_unknown_route_and_method(client: Any) -> None:
    assert client.get("/nope").status_code == 404
    assert client.get("/nope").get_json()["resourceType"] == "OperationOutcome"
    assert client.delete("/cds-services").status_code == 405
