"""Request ids, JSON logs without PHI, in-process /metrics, the metrics switch, settings."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from cds_service.common.settings import Settings, SettingsError
from tests import factories as f

PATIENT = "patient-4d1e-must-not-be-logged"


def order_sign(pid: str = f.PATIENT_ID) -> dict[str, object]:
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch(), pid=pid)
    body["prefetch"]["patient"]["id"] = pid  # type: ignore[index]
    return body


def test_request_id_is_echoed_or_made(client: FlaskClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "lb-42.a"})
    made = client.get("/healthz")
    unsafe = client.get("/healthz", headers={"X-Request-ID": "a b<script>"})
    assert given.headers["X-Request-ID"] == "lb-42.a"
    assert len(made.headers["X-Request-ID"]) == 36
    assert unsafe.headers["X-Request-ID"] not in {"a b<script>", ""}


def test_json_logs_carry_request_id_and_hook_instance_but_no_patient_id(
    app_factory: Callable[..., Flask], capsys: pytest.CaptureFixture[str]
) -> None:
    app = app_factory(log_format="json")
    body = order_sign(PATIENT)
    response = app.test_client().post(
        "/cds-services/aih-order-sign", json=body, headers={"X-Request-ID": "req-1"}
    )
    assert response.status_code == 200
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("route") == "/cds-services/<service_id>"]
    assert len(access) == 1
    assert access[0]["request_id"] == "req-1"
    assert access[0]["hook_instance"] == body["hookInstance"]
    assert access[0]["status"] == 200
    assert access[0]["service"] == "aih-order-sign"
    assert PATIENT not in err


def test_access_log_names_the_route_not_the_path(
    app_factory: Callable[..., Flask], capsys: pytest.CaptureFixture[str]
) -> None:
    """Paths can carry patient ids (the demo's /demo/patients/<id>/labs): only routes are logged."""
    app = app_factory(log_format="text", demo="on")
    assert app.test_client().get("/demo/patients/mmf-male/labs").status_code == 200
    err = capsys.readouterr().err
    assert "GET /demo/patients/<patient_id>/labs 200" in err
    assert "mmf-male" not in err


def test_text_logs_carry_the_request_id(
    app_factory: Callable[..., Flask], capsys: pytest.CaptureFixture[str]
) -> None:
    app = app_factory(log_format="text")
    app.test_client().get("/cds-services", headers={"X-Request-ID": "req-2"})
    assert "[req-2] GET /cds-services 200" in capsys.readouterr().err


def counter(app: Flask, name: str, **labels: str) -> float:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and set(labels.items()) <= set(sample.labels.items())
    )


def test_metrics_count_requests_cards_and_feedback(app: Flask) -> None:
    client = app.test_client()
    requests_before = counter(app, "cds_http_requests_total", endpoint="call_service")
    unknown_before = counter(app, "cds_http_requests_total", service="unknown")
    overridden_before = counter(
        app, "cds_feedback_items_total", outcome="overridden", result="stored"
    )
    # the registry is the process's, shared by every test of the run: compare with before
    duplicate_before = counter(app, "cds_feedback_items_total", result="duplicate")
    card = client.post("/cds-services/aih-order-sign", json=order_sign()).get_json()["cards"][0]
    client.post("/cds-services/not-a-service", json=order_sign())
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": "2026-06-01T12:05:00Z",
        "overrideReason": {"reason": card["overrideReasons"][0]},
    }
    client.post("/cds-services/aih-order-sign/feedback", json={"feedback": [item, item]})
    assert counter(app, "cds_http_requests_total", endpoint="call_service") == requests_before + 2
    assert counter(app, "cds_http_requests_total", service="unknown") == unknown_before + 1
    assert (
        counter(app, "cds_feedback_items_total", outcome="overridden", result="stored")
        == overridden_before + 1
    )
    assert counter(app, "cds_feedback_items_total", result="duplicate") == duplicate_before + 1


def test_metrics_can_be_switched_off(app_factory: Callable[..., Flask]) -> None:
    response = app_factory(metrics=False).test_client().get("/metrics")
    assert response.status_code == 404
    assert response.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CDS_LOG_FORMAT": "xml"}, "CDS_LOG_FORMAT"),
        ({"CDS_DATABASE_POOL_SIZE": "0"}, "CDS_DATABASE_POOL_SIZE"),
        ({"CDS_CARD_LOG_RETENTION_DAYS": "-1"}, "retention"),
        ({"CDS_WORKERS": "0"}, "CDS_WORKERS"),
    ],
)
def test_bad_operational_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.load(environ=env)
