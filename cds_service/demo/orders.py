"""The demo's order catalogue and the draft MedicationRequests it puts into hook requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True)
class Dose:
    """A structured dose as EHRs send it: amount and unit per administration, times per day."""

    amount: int
    unit: str  # UCUM: "mg" or "mg/kg"
    per_day: int | None  # None: not a daily schedule (e.g. infusions at weeks 0, 2 and 6)
    route: str


@dataclass(frozen=True)
class Orderable:
    key: str
    text: str
    code: str
    display: str
    dosage: str
    dose: Dose


ORAL = "Oral route"


# RxNorm codes as in cards/valuesets (product where the value set lists one, else ingredient).
CATALOGUE = (
    Orderable(
        "mmf",
        "Mycophenolate mofetil 500 mg tablet",
        "200060",
        "mycophenolate mofetil 500 MG Oral Tablet",
        "1000 mg by mouth twice daily",
        Dose(1000, "mg", 2, ORAL),
    ),
    Orderable(
        "azathioprine",
        "Azathioprine 50 mg tablet",
        "197388",
        "azathioprine 50 MG Oral Tablet",
        "50 mg by mouth once daily",
        Dose(50, "mg", 1, ORAL),
    ),
    Orderable(
        "infliximab",
        "Infliximab 100 mg injection",
        "310994",
        "infliximab 100 MG Injection",
        "5 mg/kg intravenously at weeks 0, 2 and 6",
        Dose(5, "mg/kg", None, "Intravenous route"),
    ),
    Orderable(
        "budesonide",
        "Budesonide 3 mg capsule",
        "19831",
        "budesonide",
        "3 mg by mouth three times daily",
        Dose(3, "mg", 3, ORAL),
    ),
    Orderable(
        "allopurinol",
        "Allopurinol 100 mg tablet",
        "519",
        "allopurinol",
        "100 mg by mouth once daily",
        Dose(100, "mg", 1, ORAL),
    ),
    Orderable(
        "prednisolone",
        "Prednisolone 5 mg tablet",
        "8638",
        "prednisolone",
        "30 mg by mouth once daily",
        Dose(30, "mg", 1, ORAL),
    ),
)
BY_KEY = {o.key: o for o in CATALOGUE}


def draft_order(patient_id: str, item: Orderable, index: int, now: datetime) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": f"{patient_id}-demo-draft-{index}-{item.key}",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": item.code, "display": item.display}],
            "text": item.text,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": now.date().isoformat(),
        "requester": {"reference": "Practitioner/demo-prescriber"},
        "dosageInstruction": [dosage_instruction(item)],
    }


def dosage_instruction(item: Orderable) -> dict[str, Any]:
    """FHIR Dosage with the text and its structured form (doseAndRate, timing, route), so rules
    that compute a daily dose read it as they would from an EHR."""
    dose = item.dose
    dosage: dict[str, Any] = {
        "text": item.dosage,
        "route": {"text": dose.route},
        "doseAndRate": [
            {
                "doseQuantity": {
                    "value": dose.amount,
                    "unit": dose.unit,
                    "system": UCUM,
                    "code": dose.unit,
                }
            }
        ],
    }
    if dose.per_day is not None:
        dosage["timing"] = {"repeat": {"frequency": dose.per_day, "period": 1, "periodUnit": "d"}}
    return dosage
