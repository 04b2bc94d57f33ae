"""Cards link to the patient's lab-trend page only where this service serves it (the demo)."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Flask

from tests.conftest import REPO

SCENARIO = REPO / "fixtures" / "fhir" / "aih-refractory-pred-aza"


def _call(app: Flask, request: dict[str, Any]) -> list[dict[str, Any]]:
    response = app.test_client().post("/cds-services/aih-patient-view", json=request)
    assert response.status_code == 200
    cards: list[dict[str, Any]] = response.get_json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["aih-refractory"]
    return cards


def _app(app_factory: Callable[..., Flask], **settings: Any) -> Flask:
    now = datetime.fromisoformat("2026-06-01T12:00:00+00:00")
    return app_factory(clock=lambda: now, **settings)


def _request() -> dict[str, Any]:
    request: dict[str, Any] = json.loads((SCENARIO / "request.json").read_text(encoding="utf-8"))
    return request


def test_demo_patient_card_links_to_its_lab_trend_page(app_factory: Callable[..., Flask]) -> None:
    app = _app(app_factory, demo="on", public_base_url="https://cds.example.org/aih")
    [card] = _call(app, _request())
    evidence, link = card["links"]  # the rule's evidence page comes first on every card
    assert evidence["url"] == "https://cds.example.org/aih/evidence/aih-refractory"
    url = "https://cds.example.org/aih/demo/patients/aih-refractory-pred-aza/labs"
    assert link == {
        "label": "ALT, AST and IgG trend for this patient",
        "url": url,
        "type": "absolute",
    }
    page = app.test_client().get("/demo/patients/aih-refractory-pred-aza/labs")
    assert page.status_code == 200


def test_no_link_when_the_page_does_not_exist(app_factory: Callable[..., Flask]) -> None:
    request = _request()
    [card] = _call(_app(app_factory, demo="off"), request)
    assert [link["label"] for link in card["links"]] == ["Evidence and background for this card"]
    # demo on, but a patient who is not a demo patient has no lab-trend page
    other = json.loads(json.dumps(request).replace("aih-refractory-pred-aza", "someone-else"))
    fresh_uuids = (str(uuid.UUID(int=n)) for n in itertools.count(1000))
    [card] = _call(_app(app_factory, demo="on", uuid_factory=lambda: next(fresh_uuids)), other)
    assert [link["label"] for link in card["links"]] == ["Evidence and background for this card"]


def test_demo_gives_the_golden_cards_on_any_day(app_factory: Callable[..., Flask]) -> None:
    """The demo moves each chart so its scenario's now is today: months after the golden date
    the same patient still earns the same card (windows like "last 90 days" still hold)."""
    today = datetime.fromisoformat("2026-11-21T08:00:00+00:00")
    app = app_factory(clock=lambda: today, demo="on")
    client = app.test_client()
    built = client.post(
        "/demo/api/patients/aih-refractory-pred-aza/hook-requests", json={"hook": "patient-view"}
    )
    assert built.status_code == 200
    answer = client.post(
        f"/cds-services/{built.get_json()['serviceId']}", json=built.get_json()["request"]
    )
    [card] = answer.get_json()["cards"]
    golden = json.loads((SCENARIO / "expected-cards.json").read_text(encoding="utf-8"))
    assert card["summary"] == golden["cards"][0]["summary"]
    assert "ALT 112 U/L on 2026-11-14" in card["detail"]  # 2026-05-25 moved by 173 days
