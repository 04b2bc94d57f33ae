"""budesonide-cirrhosis: cirrhosis on record, and only oral (or unknown-route) budesonide."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.config.configuration import Configuration
from tests import factories as f
from tests.rule_harness import configuration, decide, outcome

RULE = "budesonide-cirrhosis"


@pytest.fixture(scope="module")
def config() -> Configuration:
    return configuration()


def order(config: Configuration, draft: dict[str, Any], **kwargs: Any) -> Any:
    kwargs.setdefault("conditions", (f.cirrhosis(),))
    return decide(config, RULE, drafts=(draft,), **kwargs)


def test_oral_budesonide_with_cirrhosis_warns(config: Configuration) -> None:
    finding = order(config, f.budesonide())
    assert finding.outcome == "cirrhosis"
    assert "oral" in finding.variables["route"]
    assert finding.drafts[0].reference == "MedicationRequest/draft-bud"
    assert finding.gaps == ()


@pytest.mark.parametrize(
    "display",
    [
        "budesonide 0.5 MG/ML Inhalation Suspension",
        "budesonide 32 MCG/ACTUAT Metered Dose Nasal Spray",
        "budesonide 2 MG/ACTUAT Rectal Foam",
        "Pulmicort Respules",
    ],
)
def test_non_systemic_products_are_not_checked(config: Configuration, display: str) -> None:
    assert order(config, f.budesonide(display=display)) is None


def test_route_decides_for_an_ingredient_only_code(config: Configuration) -> None:
    inhaled = f.budesonide(display="budesonide", dosages=[f.dosage(0.4, route="Inhalation")])
    assert order(config, inhaled) is None
    oral = f.budesonide(display="budesonide", dosages=[f.dosage(9, route="Oral route")])
    assert outcome(order(config, oral)) == "cirrhosis"


def test_unknown_route_is_assumed_oral_and_said(config: Configuration) -> None:
    finding = order(config, f.budesonide(display="budesonide"))
    assert finding.outcome == "cirrhosis"
    assert any("taken as oral" in gap for gap in finding.gaps)


def test_oral_atc_code_wins(config: Configuration) -> None:
    draft = f.drug_order("A07EA06", "budesonide", mid="bud-atc")
    draft["medicationCodeableConcept"]["coding"][0]["system"] = "http://www.whocc.no/atc"
    finding = order(config, draft)
    assert "A07EA06" in finding.variables["route"]


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ((), None),
        ((f.condition("K74.60", system="http://hl7.org/fhir/sid/icd-10-cm"),), "cirrhosis"),
        ((f.condition("716203000"),), "decompensated"),  # rev 2: critical
        ((f.cirrhosis(clinical_status="resolved"),), None),
        ((f.condition("408335007"),), None),  # AIH without cirrhosis
    ],
    ids=["none", "icd10", "decompensated", "resolved", "aih-only"],
)
def test_cirrhosis_conditions(
    config: Configuration, conditions: tuple[dict[str, Any], ...], expected: str | None
) -> None:
    assert outcome(order(config, f.budesonide(), conditions=conditions)) == expected


def test_prednisolone_does_not_trigger(config: Configuration) -> None:
    pred = f.drug_order("8638", "prednisolone 5 MG Oral Tablet", mid="pred")
    assert order(config, pred) is None


# ---------------------------------------------------------------- rev 2


CM = "http://hl7.org/fhir/sid/icd-10-cm"
WHO = "http://hl7.org/fhir/sid/icd-10"


@pytest.mark.parametrize(
    ("code", "system"),
    [("K76.6", CM), ("K76.6", WHO), ("34742003", f.SNOMED), ("I85.00", CM)],
    ids=["icd10cm", "who-icd10", "snomed", "varices"],
)
def test_portal_hypertension_counts_like_cirrhosis(
    config: Configuration, code: str, system: str
) -> None:
    finding = order(config, f.budesonide(), conditions=(f.condition(code, system=system),))
    assert outcome(finding) in {"cirrhosis", "decompensated"}


def test_portal_hypertension_alone_is_the_warning(config: Configuration) -> None:
    finding = order(config, f.budesonide(), conditions=(f.condition("K76.6", system=CM),))
    assert outcome(finding) == "cirrhosis"


@pytest.mark.parametrize(
    ("code", "system"),
    [
        ("716203000", f.SNOMED),
        ("R18.8", CM),
        ("K76.82", CM),
        ("K76.7", CM),
        ("I85.01", CM),
        ("R18", WHO),
    ],
)
def test_decompensated_liver_disease_is_critical(
    config: Configuration, code: str, system: str
) -> None:
    conditions = (f.cirrhosis(), f.condition(code, system=system))
    finding = order(config, f.budesonide(), conditions=conditions)
    assert outcome(finding) == "decompensated"
    assert finding.drafts[0].reference == "MedicationRequest/draft-bud"


def test_resolved_decompensation_is_the_warning(config: Configuration) -> None:
    resolved = f.condition("R18.8", system=CM, clinical_status="resolved")
    finding = order(config, f.budesonide(), conditions=(f.cirrhosis(), resolved))
    assert outcome(finding) == "cirrhosis"


def test_inhaled_budesonide_with_decompensation_gives_no_card(config: Configuration) -> None:
    inhaler = f.budesonide("budesonide 0.5 MG/ML Inhalation Suspension")
    conditions = (f.condition("716203000"),)
    assert order(config, inhaler, conditions=conditions) is None


def test_decompensation_check_is_configurable(config: Configuration) -> None:
    conditions = (f.cirrhosis(), f.condition("R18.8", system=CM))
    finding = order(
        config, f.budesonide(), conditions=conditions, params={"decompensated_valuesets": []}
    )
    assert outcome(finding) == "cirrhosis"
