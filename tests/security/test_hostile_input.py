"""Limits on hostile bodies, security headers on every answer, CORS allowlist, dev-mode warning."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service.common.settings import SettingsError
from cds_service.web.http_headers import SECURITY_HEADERS
from tests import factories as f

SERVICE = "/cds-services/aih-order-sign"
SANDBOX = "https://sandbox.cds-hooks.org"


def post_raw(client: FlaskClient, body: bytes, path: str = SERVICE) -> Any:
    return client.post(path, data=body, content_type="application/json")


def diagnostics(response: Any) -> str:
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    return str(outcome["issue"][0]["diagnostics"])


@pytest.mark.parametrize("depth", [65, 5_000, 200_000])
def test_deep_nesting_is_a_400(client: FlaskClient, depth: int) -> None:
    body = json.loads(json.dumps(f.hook_request(drafts=(f.mmf_draft(),))))
    nested = "[" * depth + "]" * depth
    raw = json.dumps(body)[:-1] + f', "extension": {{"x": {nested}}}}}'
    response = post_raw(client, raw.encode())
    assert response.status_code == 400
    assert "nested" in diagnostics(response)


def test_depth_of_a_real_request_is_far_below_the_limit(client: FlaskClient) -> None:
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    body["extension"] = {"deep": json.loads("[" * 50 + "]" * 50)}
    assert client.post(SERVICE, json=body).status_code == 200


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_are_a_400(client: FlaskClient, constant: str) -> None:
    raw = json.dumps(f.hook_request(drafts=(f.mmf_draft(),)))[:-1] + f', "extension": {constant}}}'
    response = post_raw(client, raw.encode())
    assert response.status_code == 400
    assert constant.lstrip("-") in diagnostics(response)


def test_bundle_with_too_many_entries_is_a_413(app_factory: Callable[..., Flask]) -> None:
    client = app_factory(max_bundle_entries=10).test_client()
    observations = tuple(f.alt(30 + i, days_ago=i + 1) for i in range(11))
    body = f.hook_request(
        drafts=(f.mmf_draft(),), prefetch=f.full_prefetch(observations=observations)
    )
    response = client.post(SERVICE, json=body)
    assert response.status_code == 413
    assert "11 entries" in diagnostics(response)
    assert response.get_json()["issue"][0]["expression"] == ["prefetch.observations.entry"]
    within = f.hook_request(
        drafts=(f.mmf_draft(),), prefetch=f.full_prefetch(observations=observations[:10])
    )
    assert client.post(SERVICE, json=within).status_code == 200


def test_too_many_draft_orders_is_a_413(app_factory: Callable[..., Flask]) -> None:
    client = app_factory(max_bundle_entries=3).test_client()
    drafts = tuple(f.mmf_draft(mid=f"d{i}") for i in range(4))
    response = client.post(SERVICE, json=f.hook_request(drafts=drafts))
    assert response.status_code == 413
    assert response.get_json()["issue"][0]["expression"] == ["context.draftOrders.entry"]


def test_oversized_body_is_a_413(app_factory: Callable[..., Flask]) -> None:
    client = app_factory(max_request_bytes=2048).test_client()
    body = f.hook_request(drafts=(f.mmf_draft(),), extension={"padding": "x" * 4096})
    response = client.post(SERVICE, json=body)
    assert response.status_code == 413
    assert response.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("setting", "value"),
    [("max_json_depth", 8), ("max_bundle_entries", 0), ("jwks_timeout_s", 0)],
)
def test_unusable_limits_are_refused_at_start(
    app_factory: Callable[..., Flask], setting: str, value: int
) -> None:
    with pytest.raises(SettingsError, match=setting.upper()):
        app_factory(**{setting: value})


def test_both_trusted_client_sources_are_refused(app_factory: Callable[..., Flask]) -> None:
    with pytest.raises(SettingsError, match="not both"):
        app_factory(auth=True, trusted_issuers="[]", trusted_clients_file="clients.yaml")


def every_kind_of_answer(client: FlaskClient, app: Flask, monkeypatch: Any) -> list[Any]:
    answers = [
        client.get("/cds-services"),
        client.get("/healthz"),
        client.get("/openapi.json"),
        client.post(SERVICE, json=f.hook_request(drafts=(f.mmf_draft(),))),  # 412
        client.post(SERVICE, json={}),  # 400
        client.post(SERVICE, data="x", content_type="text/plain"),  # 415
        client.get("/nowhere"),  # 404
        client.delete("/cds-services"),  # 405
    ]

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(app.extensions["aih_cds"].engine, "call", boom)
    answers.append(client.post(SERVICE, json=f.hook_request()))  # 500
    return answers


def test_security_headers_on_every_answer(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = every_kind_of_answer(app.test_client(), app, monkeypatch)
    assert sorted({a.status_code for a in answers}) == [200, 400, 404, 405, 412, 415, 500]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name) == value, (answer.status_code, name)
        assert "Strict-Transport-Security" not in answer.headers  # plain-HTTP deployment


def test_401_and_hsts_behind_an_https_base(app_factory: Callable[..., Flask]) -> None:
    app = app_factory(auth=True, public_base_url="https://cds.example.org")
    answer = app.test_client().post(SERVICE, json=f.hook_request())
    assert answer.status_code == 401
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=")


def test_cors_is_open_in_development_mode_only(app_factory: Callable[..., Flask]) -> None:
    development = app_factory(auth=False).test_client()
    production = app_factory(auth=True).test_client()
    allowlisted = app_factory(auth=True, cors_origins=SANDBOX).test_client()
    origin = {"Origin": SANDBOX}
    assert development.get("/healthz", headers=origin).headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Origin" not in production.get("/healthz", headers=origin).headers
    allowed = allowlisted.get("/healthz", headers=origin)
    assert allowed.headers["Access-Control-Allow-Origin"] == SANDBOX
    assert "Origin" in allowed.headers["Vary"]
    other = allowlisted.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_can_be_closed_in_development_mode(app_factory: Callable[..., Flask]) -> None:
    closed = app_factory(auth=False, cors_origins="").test_client()
    answer = closed.get("/healthz", headers={"Origin": SANDBOX})
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_auth_off_is_logged_loudly(
    app_factory: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        app_factory(auth=False)
    loud = [r for r in caplog.records if "CDS_AUTH=off" in r.getMessage()]
    assert len(loud) == 1
    assert loud[0].levelno == logging.CRITICAL
    caplog.clear()
    with caplog.at_level(logging.INFO):
        app_factory(auth=True)
    assert not [r for r in caplog.records if "CDS_AUTH=off" in r.getMessage()]


def test_preflight_needs_no_token_when_the_origin_is_allowlisted(
    app_factory: Callable[..., Flask],
) -> None:
    """Browsers send no Authorization on a preflight: it must pass, and reveal nothing else."""
    app = app_factory(auth=True, cors_origins=SANDBOX)
    preflight = app.test_client().options(
        SERVICE,
        headers={
            "Origin": SANDBOX,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == SANDBOX
    assert preflight.data == b""


@pytest.mark.parametrize("body", [b"5", b'"text"', b"null", b"[]", b"true"])
def test_bodies_that_are_not_objects_are_a_400(client: FlaskClient, body: bytes) -> None:
    response = post_raw(client, body)
    assert response.status_code == 400
    assert "JSON object" in diagnostics(response)
    feedback = post_raw(client, body, SERVICE + "/feedback")
    assert feedback.status_code == 400
