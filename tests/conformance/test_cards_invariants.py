"""Every card the service can issue, checked against CDS Hooks 2.0 and the service's own promises.

The scenario table must drive every enabled outcome of every enabled rule on every hook a
service runs it for; ``test_scenarios_cover_every_rule_outcome`` fails when a rule or outcome is
added without a scenario here. The checker itself is proven on third-party material: it must
accept the Inferno CRD test kit's valid cards and the spec's example response, and reject HAPI's
intentionally incomplete response and AHRQ's invalid card configurations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service.rules.registry import REGISTRY
from cds_service.storage.store import CardLog
from tests import factories as f
from tests.conformance.support import (
    AHRQ_FIXTURES,
    HAPI_RESOURCES,
    all_violations,
    deep,
    load_material,
    response_violations,
    spec_example,
    uuids_of,
)

ICD10 = "http://hl7.org/fhir/sid/icd-10"
SERVICE_FOR_HOOK = {
    "order-sign": "aih-order-sign",
    "order-select": "aih-order-select",
    "patient-view": "aih-patient-view",
}
# which drafts trigger a rule on the order hooks (patient-view sends none); a scenario runs on
# every hook its rule is configured for
AZA_RENEWAL = (f.draft(f.AZATHIOPRINE),)
INFLIXIMAB_ORDER = (f.draft(f.INFLIXIMAB),)

# (rule id, outcome) -> (draft orders, prefetch) that lead the rule to that outcome.
Scenario = Callable[[], tuple[tuple[dict[str, Any], ...], dict[str, Any]]]
SCENARIOS: dict[tuple[str, str], Scenario] = {
    ("mmf-teratogenicity", "pregnant"): lambda: (
        (f.mmf_draft(),),
        f.full_prefetch(observations=(f.pregnancy_status(True),)),
    ),
    ("mmf-teratogenicity", "pregnancy-test-needed"): lambda: (
        (f.mmf_draft(),),
        f.full_prefetch(observations=(f.hcg_qualitative(False, days_ago=30),)),
    ),
    ("mmf-teratogenicity", "recent-negative-test"): lambda: (
        (f.mmf_draft(),),
        f.full_prefetch(observations=(f.hcg_qualitative(False, days_ago=2),)),
    ),
    ("mmf-teratogenicity", "continuing-therapy"): lambda: (
        (f.mmf_draft(),),
        f.full_prefetch(medication_requests=(f.medication_request(),)),
    ),
    ("mmf-teratogenicity", "male-patient"): lambda: (
        (f.mmf_draft(),),
        f.full_prefetch(patient_resource=f.patient(gender="male")),
    ),
    # refractory also meets insufficient response: the engine must keep only this card
    ("aih-refractory", "steroid-refractory"): lambda: (
        AZA_RENEWAL,
        f.on_aih_treatment((400, 305), (150, 60), (120, 10), start_days_ago=300),
    ),
    ("aih-insufficient-response", "not-in-complete-response"): lambda: (
        AZA_RENEWAL,
        f.on_aih_treatment((300, 255), (60, 20), extra_observations=(f.igg(14, days_ago=20),)),
    ),
    ("aih-insufficient-response", "monitoring-gap"): lambda: (
        AZA_RENEWAL,
        f.on_aih_treatment((300, 255), (30, 20)),
    ),
    # complete response (normal ALT and IgG 60 days ago), then ALT 2.25 x ULN
    ("aih-insufficient-response", "relapse"): lambda: (
        AZA_RENEWAL,
        f.on_aih_treatment(
            (300, 255), (30, 60), (90, 5), extra_observations=(f.igg(12, days_ago=60),)
        ),
    ),
    # the only results after T0 + 150 d are 200 days old (recency window 120 days)
    ("aih-insufficient-response", "stale-results"): lambda: (
        AZA_RENEWAL,
        f.on_aih_treatment(
            (300, 505), (90, 200), start_days_ago=500, extra_observations=(f.igg(14, 200),)
        ),
    ),
    ("aih-nonresponse", "no-early-response"): lambda: (
        AZA_RENEWAL,
        f.on_aih_treatment((400, 37), (300, 7), start_days_ago=35),
    ),
    ("anti-tnf-liver-injury", "severe-injury"): lambda: (
        INFLIXIMAB_ORDER,
        f.on_anti_tnf((25, 110), (250, 5)),
    ),
    ("anti-tnf-liver-injury", "marked-elevation"): lambda: (
        INFLIXIMAB_ORDER,
        f.on_anti_tnf((25, 110), (130, 5)),
    ),
    ("anti-tnf-liver-injury", "persistent-elevation"): lambda: (
        INFLIXIMAB_ORDER,
        f.on_anti_tnf((25, 110), (55, 40), (60, 5)),
    ),
    # the metabolite scenarios hold an active course and a draft, so they work on every hook
    ("thiopurine-metabolites", "shunting"): lambda: (
        (f.azathioprine(),),
        f.full_prefetch(
            observations=(f.tgn(180), f.mmp(7000)), medication_requests=(_active_aza(),)
        ),
    ),
    ("thiopurine-metabolites", "low-tgn"): lambda: (
        (f.azathioprine(),),
        f.full_prefetch(
            observations=(f.metabolite_panel(180, 900),), medication_requests=(_active_aza(),)
        ),
    ),
    ("thiopurine-metabolites", "high-tgn"): lambda: (
        (f.azathioprine(),),
        f.full_prefetch(observations=(f.tgn(520),), medication_requests=(_active_aza(),)),
    ),
    ("thiopurine-metabolites", "high-mmp"): lambda: (
        (f.azathioprine(),),
        f.full_prefetch(
            observations=(f.tgn(300), f.mmp(8000)), medication_requests=(_active_aza(),)
        ),
    ),
    ("tpmt-before-thiopurine", "poor-metabolizer"): lambda: (
        (f.azathioprine(),),
        f.full_prefetch(observations=(f.tpmt_activity(2),)),
    ),
    ("tpmt-before-thiopurine", "intermediate-metabolizer"): lambda: (
        (f.azathioprine(),),
        f.full_prefetch(observations=(f.tpmt_phenotype("Intermediate metabolizer"),)),
    ),
    ("tpmt-before-thiopurine", "uninterpreted-result"): lambda: (
        (f.azathioprine(),),
        f.full_prefetch(observations=(f.tpmt_phenotype("TPMT *1/*8"),)),
    ),
    ("tpmt-before-thiopurine", "no-result"): lambda: ((f.azathioprine(),), f.full_prefetch()),
    ("allopurinol-thiopurine", "dose-reduction-needed"): lambda: (
        (f.allopurinol(),),
        f.full_prefetch(medication_requests=(_active_aza(150),)),
    ),
    ("allopurinol-thiopurine", "reduced-dose"): lambda: (
        (f.allopurinol(),),
        f.full_prefetch(medication_requests=(_active_aza(50),)),
    ),
    ("budesonide-cirrhosis", "cirrhosis"): lambda: (
        (f.budesonide(),),
        f.full_prefetch(conditions=(f.cirrhosis(),)),
    ),
    ("unidentified-draft-order", "drug-unidentified"): lambda: (
        (f.medication_request(rxnorm=None, status="draft", mid="draft-unknown"),),
        f.full_prefetch(),
    ),
    ("budesonide-cirrhosis", "decompensated"): lambda: (
        (f.budesonide(),),
        f.full_prefetch(
            conditions=(f.cirrhosis(), f.condition("R18.8", system=f"{ICD10}-cm")),
        ),
    ),
    ("allopurinol-thiopurine", "contraindicated"): lambda: (
        (f.drug_order("73689", "febuxostat", mid="draft-febux", dosages=[f.dosage(80)]),),
        f.full_prefetch(medication_requests=(_active_aza(50),)),
    ),
}


def _active_aza(mg: float = 100) -> dict[str, Any]:
    return f.azathioprine(mg, status="active", start_days_ago=300)


def hooks_of(rule: str) -> list[str]:
    return [hook for hook in SERVICE_FOR_HOOK if hook in REGISTRY[rule].hooks]


CASES = [
    pytest.param(rule, outcome, hook, id=f"{rule}:{outcome}:{hook}")
    for rule, outcome in SCENARIOS
    for hook in hooks_of(rule)
]


def rule_ids(app: Flask) -> set[str]:
    return set(app.extensions["aih_cds"].config.rules)


def call(client: FlaskClient, rule: str, outcome: str, hook: str) -> dict[str, Any]:
    drafts, prefetch = SCENARIOS[(rule, outcome)]()
    response = client.post(
        f"/cds-services/{SERVICE_FOR_HOOK[hook]}",
        json=f.hook_request(hook, drafts=drafts, prefetch=prefetch),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    return body


def test_scenarios_cover_every_rule_outcome(app: Flask) -> None:
    config = app.extensions["aih_cds"].config
    expected = set()
    for service in config.services.values():
        for rule_id in service.rules:
            rule = config.rules[rule_id]
            if not rule.enabled or service.hook not in rule.spec.hooks:
                continue
            for outcome in rule.spec.outcomes:
                if rule.outcomes[outcome]["enabled"]:
                    expected.add((rule_id, outcome, service.hook))
    covered = {(rule, outcome, hook) for rule, outcome in SCENARIOS for hook in hooks_of(rule)}
    assert expected - covered == set(), "add a scenario for these (rule, outcome, hook)"
    assert {hook for _, _, hook in expected} <= set(SERVICE_FOR_HOOK)


@pytest.mark.parametrize(("rule", "outcome", "hook"), CASES)
def test_card_invariants(
    app: Flask, client: FlaskClient, rule: str, outcome: str, hook: str
) -> None:
    body = call(client, rule, outcome, hook)
    assert all_violations(body, rule_ids(app)) == []
    assert "systemActions" not in body  # the service issues none; the checker covers them anyway
    [card] = body["cards"]
    assert card["source"]["topic"]["code"] == rule
    rule_config = app.extensions["aih_cds"].config.rules[rule]
    assert card["indicator"] == rule_config.outcomes[outcome]["indicator"]
    with app.extensions["aih_cds"].store.sessions() as session:
        logged = session.get(CardLog, card["uuid"])
        assert logged is not None
        assert (logged.rule_id, logged.rule_outcome) == (rule, outcome)
        assert logged.service_id == SERVICE_FOR_HOOK[hook]


def test_uuids_unique_across_calls(app: Flask, client: FlaskClient) -> None:
    seen: list[str] = []
    for rule, outcome in SCENARIOS:
        for hook in hooks_of(rule):
            seen.extend(uuids_of(call(client, rule, outcome, hook)))
    assert len(seen) >= 2 * len(SCENARIOS)
    assert len(seen) == len(set(seen))


def test_card_without_advice_is_empty_array(client: FlaskClient) -> None:
    for hook in ("order-sign", "order-select"):
        service = SERVICE_FOR_HOOK[hook]
        amoxicillin = f.medication_request(rxnorm="723", display="amoxicillin", status="draft")
        body = f.hook_request(hook, drafts=(amoxicillin,), prefetch=f.full_prefetch())
        response = client.post(f"/cds-services/{service}", json=body)
        assert response.status_code == 200
        assert response.get_json() == {"cards": []}


def test_long_drug_names_keep_summary_under_140(app: Flask, client: FlaskClient) -> None:
    long_name = "mycophenolate mofetil 500 MG Oral Tablet [CellCept] " * 3
    drafts = (
        f.mmf_draft(mid="mmf-a", display=long_name.strip()),
        f.mmf_draft(mid="mmf-b", rxnorm="1116003", display="mycophenolic acid " + long_name),
    )
    for outcome in ("pregnant", "pregnancy-test-needed"):
        _, prefetch = SCENARIOS[("mmf-teratogenicity", outcome)]()
        body = f.hook_request("order-sign", drafts=drafts, prefetch=prefetch)
        response = client.post("/cds-services/aih-order-sign", json=body)
        assert response.status_code == 200
        assert all_violations(response.get_json(), rule_ids(app)) == []
        [card] = response.get_json()["cards"]
        assert len(card["summary"]) < 140


def test_draft_order_without_id_gets_no_broken_delete_action(
    app: Flask, client: FlaskClient
) -> None:
    draft = f.mmf_draft()
    del draft["id"]
    _, prefetch = SCENARIOS[("mmf-teratogenicity", "pregnant")]()
    body = f.hook_request("order-sign", drafts=(draft,), prefetch=prefetch)
    response = client.post("/cds-services/aih-order-sign", json=body)
    assert response.status_code == 200
    assert all_violations(response.get_json(), rule_ids(app)) == []
    [card] = response.get_json()["cards"]
    assert card["indicator"] == "critical"  # the warning itself must still be given


# ------------------------------------------------------------------ the checker on known material

INFERNO_VALID = "davinci-crd-test-kit/spec/fixtures/valid_cards.json"


def known_valid_cards() -> list[Any]:
    cases = [
        pytest.param(INFERNO_VALID, index, id=f"inferno-valid-card-{index}")
        for index in range(len(load_material(INFERNO_VALID)))
    ]
    cases.append(pytest.param("spec-17", None, id="spec-example-17-response"))
    return cases


@pytest.mark.parametrize(("source", "index"), known_valid_cards())
def test_checker_accepts_known_valid_cards(source: str, index: int | None) -> None:
    body = spec_example("17") if source == "spec-17" else {"cards": [load_material(source)[index]]}
    assert response_violations(body) == []


def _ahrq_card(name: str) -> dict[str, Any]:
    config = load_material(f"{AHRQ_FIXTURES}/negative-test-hooks/{name}/{name}.json")
    return {"cards": [config["_config"]["cards"][0]["card"]]}


KNOWN_BAD = [
    pytest.param(
        lambda: load_material(f"{HAPI_RESOURCES}/CdsServiceResponseJson.json"),
        [
            "$.cards[0].summary: REQUIRED",
            "$.cards[0].indicator",
            "$.cards[0].source: REQUIRED",
            "cds-resp-6",
            "$.cards[0].suggestions[0].label: REQUIRED",
            "$.cards[0].suggestions[0].actions[0].type",
            "$.cards[0].suggestions[0].actions[0].description: cds-resp-5",
            "$.systemActions[0].type",
        ],
        id="hapi-CdsServiceResponseJson",
    ),
    pytest.param(lambda: spec_example("18"), ["$.cards[0].indicator"], id="spec-example-18"),
    pytest.param(
        lambda: _ahrq_card("invalid-selectionBehavior"),
        ["selectionBehavior: 'pick-as-many-as-you-want'"],
        id="ahrq-invalid-selectionBehavior",
    ),
    pytest.param(
        lambda: _ahrq_card("missing-selectionBehavior"),
        ["cds-resp-6"],
        id="ahrq-missing-selectionBehavior",
    ),
]


@pytest.mark.parametrize(("load", "expected"), KNOWN_BAD)
def test_checker_rejects_known_bad_material(load: Callable[[], Any], expected: list[str]) -> None:
    problems = response_violations(load())
    for fragment in expected:
        assert any(fragment in problem for problem in problems), (fragment, problems)


def _base() -> dict[str, Any]:
    """A rich valid card from the Inferno fixture (suggestions, create and delete actions)."""
    card = deep(load_material(INFERNO_VALID)[3])
    card["overrideReasons"] = deep(spec_example("15")["overrideReasons"])
    card["links"] = deep(spec_example("17")["cards"][0]["links"])
    card["suggestions"][0]["uuid"] = "s-1"
    return {"cards": [card]}


def _second_recommended(body: dict[str, Any]) -> None:
    card = body["cards"][0]
    card["selectionBehavior"] = "at-most-one"
    extra = deep(card["suggestions"][0])
    extra["uuid"] = "s-2"
    card["suggestions"] += [extra]
    for suggestion in card["suggestions"]:
        suggestion["isRecommended"] = True


def _action(body: dict[str, Any], kind: str) -> dict[str, Any]:
    actions = body["cards"][0]["suggestions"][0]["actions"]
    action: dict[str, Any] = next(a for a in actions if a["type"] == kind)
    return action


MUTATIONS: list[Any] = [
    pytest.param(lambda b: b["cards"][0].update(summary="x" * 140), "140", id="summary-140"),
    pytest.param(lambda b: b["cards"][0].update(indicator="hard-stop"), "indicator", id="ind"),
    pytest.param(lambda b: b["cards"][0]["source"].pop("label"), "source.label", id="label"),
    pytest.param(lambda b: b["cards"][0].pop("selectionBehavior"), "cds-resp-6", id="resp-6"),
    pytest.param(lambda b: b["cards"][0].update(selectionBehavior="all"), "at-most-one", id="sb"),
    pytest.param(_second_recommended, "cds-resp-1", id="resp-1"),
    pytest.param(
        lambda b: _action(b, "delete").update(resource={"resourceType": "MedicationRequest"}),
        "cds-resp-2",
        id="resp-2",
    ),
    pytest.param(lambda b: _action(b, "delete").pop("resourceId"), "resourceId", id="delete-id"),
    pytest.param(
        lambda b: b["cards"][0]["links"][0].update(appContext="{}"), "cds-resp-3", id="resp-3"
    ),
    pytest.param(
        lambda b: b["cards"][0]["overrideReasons"][0].pop("display"), "cds-resp-4", id="resp-4"
    ),
    pytest.param(lambda b: _action(b, "create").pop("description"), "cds-resp-5", id="resp-5"),
    pytest.param(lambda b: _action(b, "create").update(type="remove"), ".type", id="type"),
    pytest.param(lambda b: _action(b, "create").pop("resource"), "needs a FHIR", id="create"),
    pytest.param(
        lambda b: b["cards"][0]["links"][0].update(url="/relative"), "absolute URL", id="link-url"
    ),
    pytest.param(lambda b: b["cards"][0]["links"][0].update(type="web"), ".type", id="link-type"),
    pytest.param(lambda b: b["cards"][0].update(detail=None), "null or empty", id="null"),
    pytest.param(lambda b: b["cards"][0].update(links=[]), "null or empty", id="empty-array"),
    pytest.param(lambda b: b["cards"][0]["source"].update(topic={}), "null or empty", id="{}"),
    pytest.param(lambda b: b["cards"].append(deep(b["cards"][0])), "not unique", id="dup-uuid"),
    pytest.param(
        lambda b: b.update(systemActions=[{"type": "update", "resource": {"resourceType": "X"}}]),
        "$.systemActions[0].description",
        id="system-action",
    ),
    pytest.param(lambda b: b.pop("cards"), "$.cards: REQUIRED", id="no-cards"),
]


@pytest.mark.parametrize(("mutate", "expected"), MUTATIONS)
def test_checker_detects_each_violation(mutate: Callable[[Any], Any], expected: str) -> None:
    body = _base()
    assert response_violations(body) == []
    mutate(body)
    problems = response_violations(body)
    assert any(expected in problem for problem in problems), problems


def test_policy_layer_rejects_cards_the_service_must_not_issue() -> None:
    card = spec_example("17")["cards"][1]  # a warning card: no uuid, foreign topic
    problems = all_violations({"cards": [card]}, {"mmf-teratogenicity"})
    assert any("uuid: missing" in p for p in problems), problems
    assert any("source.topic" in p for p in problems), problems
    card = spec_example("17")["cards"][1]
    card.pop("overrideReasons")
    card["uuid"] = "c-1"
    problems = all_violations({"cards": [card]}, {"mmf-teratogenicity"})
    assert any("without overrideReasons" in p for p in problems), problems
