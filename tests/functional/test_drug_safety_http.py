"""The drug-safety rules over HTTP: data fetched from fhirServer, several cards in one answer."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service.fhir.client import FetchResult
from cds_service.storage.store import CardLog
from tests import factories as f
from tests.conformance.support import all_violations

BUDESONIDE_LABEL = "budesonide 3 MG Delayed Release Oral Capsule"
FHIR_SERVER = "https://ehr.example.org/fhir"
AUTH = {
    "access_token": "opaque-token",
    "token_type": "Bearer",
    "expires_in": 300,
    "scope": "patient/*.read",
    "subject": "cds-service",
}


def fake_fetch(
    app: Flask, monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fetch_many(
        base_url: str, token: str | None, queries: dict[str, str], *_: Any, **__: Any
    ) -> dict[str, FetchResult]:
        calls.append({"base_url": base_url, "token": token, "queries": dict(queries)})
        return {key: FetchResult(resources=answers.get(key, [])) for key in queries}

    monkeypatch.setattr(app.extensions["aih_cds"].engine.fetcher, "fetch_many", fetch_many)
    return calls


def logged_outcomes(app: Flask, cards: list[dict[str, Any]]) -> set[tuple[str, str]]:
    with app.extensions["aih_cds"].store.sessions() as session:
        rows = [session.get(CardLog, card["uuid"]) for card in cards]
        return {(row.rule_id, row.rule_outcome) for row in rows if row is not None}


def test_patient_view_fetches_the_chart_and_reads_a_panel(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fake_fetch(
        app,
        monkeypatch,
        {
            "patient": [f.patient()],
            "observations": [f.metabolite_panel(160, 9100, days_ago=20)],
            "medicationRequests": [f.azathioprine(150, status="active", start_days_ago=200)],
        },
    )
    body = f.hook_request("patient-view", fhirServer=FHIR_SERVER, fhirAuthorization=AUTH)
    response = client.post("/cds-services/aih-patient-view", json=body)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert all_violations(response.get_json(), set(app.extensions["aih_cds"].config.rules)) == []
    assert logged_outcomes(app, cards) == {("thiopurine-metabolites", "shunting")}
    [call] = calls
    assert (call["base_url"], call["token"]) == (FHIR_SERVER, "opaque-token")
    assert call["queries"]["observations"].startswith(f"Observation?patient={f.PATIENT_ID}&")


def test_patient_view_without_a_thiopurine_gives_no_card(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_fetch(app, monkeypatch, {"observations": [f.tgn(100)]})
    body = f.hook_request("patient-view", fhirServer=FHIR_SERVER, fhirAuthorization=AUTH)
    response = client.post("/cds-services/aih-patient-view", json=body)
    assert response.get_json() == {"cards": []}


@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
def test_new_thiopurine_beside_allopurinol_gives_one_card_per_rule(
    app: Flask, client: FlaskClient, hook: str
) -> None:
    prefetch = f.full_prefetch(
        observations=(f.tpmt_phenotype("Intermediate metabolizer"),),
        medication_requests=(f.allopurinol(status="active", mid="allo", start_days_ago=30),),
    )
    body = f.hook_request(hook, drafts=(f.azathioprine(100),), prefetch=prefetch)
    response = client.post(f"/cds-services/aih-{hook}", json=body)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert all_violations(response.get_json(), set(app.extensions["aih_cds"].config.rules)) == []
    assert logged_outcomes(app, cards) == {
        ("tpmt-before-thiopurine", "intermediate-metabolizer"),
        ("allopurinol-thiopurine", "dose-reduction-needed"),
    }
    assert all(len(card["summary"]) < 140 for card in cards)


def test_removal_suggestion_names_the_budesonide_draft(app: Flask, client: FlaskClient) -> None:
    prefetch = f.full_prefetch(conditions=(f.cirrhosis(),))
    body = f.hook_request("order-sign", drafts=(f.budesonide(),), prefetch=prefetch)
    [card] = client.post("/cds-services/aih-order-sign", json=body).get_json()["cards"]
    [suggestion] = card["suggestions"]
    assert "isRecommended" not in suggestion
    assert suggestion["actions"] == [
        {
            "type": "delete",
            "description": f"Remove draft budesonide order: {BUDESONIDE_LABEL}",
            "resourceId": "MedicationRequest/draft-bud",
        }
    ]
    assert card["selectionBehavior"] == "at-most-one"
    assert {r["code"] for r in card["overrideReasons"]} >= {"no-cirrhosis", "not-for-aih"}
