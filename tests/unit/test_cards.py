"""Card rendering and serialisation rules."""

from __future__ import annotations

import itertools
from pathlib import Path

from cds_service.config.cards import SUMMARY_MAX, prune, render_card
from cds_service.config.configuration import load_configuration
from cds_service.patient.record import DraftOrder
from cds_service.patient.terminology import CodedConcept
from cds_service.rules.base import Finding
from cds_service.rules.registry import REGISTRY

CARDS = Path(__file__).resolve().parents[2] / "cards"
RULE = load_configuration(CARDS, REGISTRY).rules["mmf-teratogenicity"]
DRAFT = DraftOrder(
    "MedicationRequest", "d1", CodedConcept(text="CellCept"), frozenset({"mycophenolate"}), None
)
VARIABLES = {
    "drug": "CellCept",
    "age": "30",
    "sex": "female",
    "age_window": "12 to 54 years",
    "postpartum": "",
}


def uuids() -> itertools.count[int]:
    return itertools.count(1)


def render(outcome: str, **variables: str) -> dict:  # type: ignore[type-arg]
    counter = uuids()
    finding = Finding(
        "mmf-teratogenicity", outcome, VARIABLES | variables, (DRAFT,), ("age assumed",)
    )
    card = render_card(
        finding,
        RULE,
        patient_id="pt-1",
        data_gaps=["1 Observation ignored"],
        new_uuid=lambda: f"u{next(counter)}",
    )
    assert card is not None
    return card


def test_critical_card_has_delete_suggestion_and_override_reasons() -> None:
    card = render("pregnant", pregnancy_evidence="- hCG positive on 2026-05-01")
    assert card["indicator"] == "critical"
    assert card["source"]["topic"] == {
        "system": "urn:aih-cds:rule",
        "code": "mmf-teratogenicity",
        "display": "Mycophenolate teratogenicity",
    }
    (suggestion,) = card["suggestions"]
    assert suggestion["actions"] == [
        {
            "type": "delete",
            "description": "Remove draft mycophenolate order: CellCept",
            "resourceId": "MedicationRequest/d1",
        }
    ]
    assert card["selectionBehavior"] == "at-most-one"
    assert all(r["display"] for r in card["overrideReasons"])
    assert "- age assumed\n- 1 Observation ignored" in card["detail"]


def test_create_suggestion_targets_the_patient() -> None:
    card = render("pregnancy-test-needed", last_test="none", window_days="7")
    resource = card["suggestions"][0]["actions"][0]["resource"]
    assert resource["resourceType"] == "ServiceRequest"
    assert resource["subject"] == {"reference": "Patient/pt-1"}
    assert resource["code"]["coding"][0]["code"] == "19080-1"


def test_info_card_has_no_override_reasons_or_suggestions() -> None:
    card = render("male-patient")
    assert card["indicator"] == "info"
    assert "overrideReasons" not in card
    assert "suggestions" not in card
    assert "selectionBehavior" not in card


def test_long_summary_is_shortened_below_140() -> None:
    card = render("male-patient", drug="x" * 200)
    assert len(card["summary"]) <= SUMMARY_MAX
    assert "…" in card["summary"]
    assert card["summary"].startswith("Mycophenolate for a male patient")  # wording is kept


def test_disabled_outcome_gives_no_card() -> None:
    outcomes = dict(RULE.outcomes)
    outcomes["male-patient"] = dict(outcomes["male-patient"], enabled=False)
    rule = type(RULE)(**{**RULE.__dict__, "outcomes": outcomes})
    finding = Finding("mmf-teratogenicity", "male-patient", VARIABLES, (DRAFT,))
    assert render_card(finding, rule, patient_id="p", data_gaps=[], new_uuid=lambda: "u") is None


def test_prune_removes_null_and_empty_members() -> None:
    assert prune(
        {"a": None, "b": "", "c": [], "d": {}, "e": [{"x": None}], "f": 0, "g": False, "h": "k"}
    ) == {
        "f": 0,
        "g": False,
        "h": "k",
    }
