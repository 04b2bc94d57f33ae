"""The demo's order catalogue and the draft MedicationRequests it puts into hook requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@dataclass(frozen=True)
class Orderable:
    key: str
    text: str
    code: str
    display: str
    dosage: str


# RxNorm codes as in cards/valuesets (product where the value set lists one, else ingredient).
CATALOGUE = (
    Orderable(
        "mmf",
        "Mycophenolate mofetil 500 mg tablet",
        "200060",
        "mycophenolate mofetil 500 MG Oral Tablet",
        "1000 mg by mouth twice daily",
    ),
    Orderable(
        "azathioprine",
        "Azathioprine 50 mg tablet",
        "197388",
        "azathioprine 50 MG Oral Tablet",
        "50 mg by mouth once daily",
    ),
    Orderable(
        "infliximab",
        "Infliximab 100 mg injection",
        "310994",
        "infliximab 100 MG Injection",
        "5 mg/kg intravenously at weeks 0, 2 and 6",
    ),
    Orderable(
        "budesonide", "Budesonide 3 mg capsule", "19831", "budesonide", "3 mg three times daily"
    ),
    Orderable(
        "allopurinol", "Allopurinol 100 mg tablet", "519", "allopurinol", "100 mg once daily"
    ),
    Orderable(
        "prednisolone", "Prednisolone 5 mg tablet", "8638", "prednisolone", "30 mg once daily"
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
        "dosageInstruction": [{"text": item.dosage}],
    }
