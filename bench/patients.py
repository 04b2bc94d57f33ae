"""Deterministic benchmark patients and the hook requests built from them.

- ``large``: a woman of 34 with five years of AIH follow-up: 5 Conditions, 30 MedicationRequests
  (prednisolone and azathioprine courses, budesonide, an infliximab course started 10 weeks ago,
  supportive drugs) and ~300 Observations (ALT, AST, IgG, bilirubin, haemoglobin, platelets every
  six weeks, 6-TGN quarterly, hCG before each recent visit), with an ALT relapse on infliximab.
- ``small``: the same story in ~20 resources.

Every value comes from a seeded generator and dates are counted back from an anchor day, so the
same anchor always gives byte-identical requests. The anchor is today (UTC) by default because the
service evaluates against its real clock: the rules must see "recent" results to do real work.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from cds_service.common.settings import DEFAULT_CARDS_DIR
from cds_service.config.configuration import ServiceConfig, load_configuration
from cds_service.informatics.charts import prefetch_for
from cds_service.rules.registry import REGISTRY

REPO = Path(__file__).resolve().parent.parent
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
PRESCRIBER = "Practitioner/bench-prescriber"
HOOK_NAMESPACE = uuid.UUID("0b7e4c1a-93d2-4f55-8a61-2c4e6f1d9b30")

# analyte -> (LOINC, display, UCUM unit)
LABS: dict[str, tuple[str, str, str]] = {
    "alt": (
        "1742-6",
        "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
    ),
    "ast": (
        "1920-8",
        "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
    ),
    "igg": ("2465-3", "IgG [Mass/volume] in Serum or Plasma", "g/L"),
    "bilirubin": ("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL"),
    "haemoglobin": ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL"),
    "platelets": ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL"),
    "tgn6": ("32660-3", "6-Thioguanine [Entitic substance] in Red Blood Cells", "pmol/8x10^8 RBC"),
    "hcg": ("2106-3", "Choriogonadotropin (pregnancy test) [Presence] in Urine", ""),
}
ULN = {"alt": 35, "ast": 35, "igg": 16, "bilirubin": 1.2}

# name -> (RxNorm code, display)
DRUGS: dict[str, tuple[str, str]] = {
    "prednisolone": ("8638", "prednisolone"),
    "azathioprine": ("1256", "azathioprine"),
    "budesonide": ("19831", "budesonide"),
    "infliximab": ("191831", "infliximab"),
    "mycophenolate": ("68149", "mycophenolate mofetil"),
    "colecalciferol": ("2418", "cholecalciferol"),
    "calcium": ("1897", "calcium carbonate"),
    "omeprazole": ("7646", "omeprazole"),
}

CONDITIONS: dict[str, tuple[str, str]] = {
    "aih": ("408335007", "Autoimmune hepatitis (disorder)"),
    "crohns": ("34000006", "Crohn's disease (disorder)"),
    "osteopenia": ("312894000", "Osteopenia (disorder)"),
    "hypothyroidism": ("40930008", "Hypothyroidism (disorder)"),
    "hypertension": ("38341003", "Hypertensive disorder, systemic arterial (disorder)"),
}


@dataclass(frozen=True)
class Patient:
    """One benchmark patient: its chart (resources) and the draft order signed for it."""

    id: str
    resources: list[dict[str, Any]]
    draft: dict[str, Any]

    def transaction(self) -> dict[str, Any]:
        """A FHIR transaction that loads the chart with stable ids (PUT), for a FHIR server."""
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": resource,
                    "request": {
                        "method": "PUT",
                        "url": f"{resource['resourceType']}/{resource['id']}",
                    },
                }
                for resource in self.resources
            ],
        }

    def count(self, resource_type: str) -> int:
        return sum(1 for r in self.resources if r["resourceType"] == resource_type)


class _Chart:
    """Builds one patient's resources with ids ``<patient>-<kind>-<n>``."""

    def __init__(self, patient_id: str, anchor: date, seed: int) -> None:
        self.patient_id = patient_id
        self.anchor = anchor
        self.random = random.Random(seed)  # noqa: S311 - test data, not security
        self.resources: list[dict[str, Any]] = []
        self._serial = 0

    def day(self, days_ago: int) -> date:
        return self.anchor - timedelta(days=days_ago)

    def _id(self, kind: str) -> str:
        self._serial += 1
        return f"{self.patient_id}-{kind}-{self._serial}"

    def _subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.patient_id}"}

    def patient(self, birth: date) -> None:
        self.resources.append(
            {
                "resourceType": "Patient",
                "id": self.patient_id,
                "identifier": [{"system": "urn:aih-cds:bench-mrn", "value": self.patient_id}],
                "name": [{"family": "Bench", "given": ["Alex"]}],
                "gender": "female",
                "birthDate": birth.isoformat(),
            }
        )

    def condition(self, name: str, onset_days_ago: int) -> None:
        code, display = CONDITIONS[name]
        self.resources.append(
            {
                "resourceType": "Condition",
                "id": self._id(name),
                "clinicalStatus": _coded(
                    "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"
                ),
                "verificationStatus": _coded(
                    "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"
                ),
                "category": [
                    _coded(
                        "http://terminology.hl7.org/CodeSystem/condition-category",
                        "problem-list-item",
                    )
                ],
                "code": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
                "subject": self._subject(),
                "onsetDateTime": self.day(onset_days_ago).isoformat(),
            }
        )

    def course(self, drug: str, start_days_ago: int, end_days_ago: int | None) -> None:
        """A MedicationRequest: completed when it has an end, active otherwise."""
        bounds = {"start": self.day(start_days_ago).isoformat()}
        if end_days_ago is not None:
            bounds["end"] = self.day(end_days_ago).isoformat()
        self.resources.append(
            {
                "resourceType": "MedicationRequest",
                "id": self._id(drug),
                "status": "active" if end_days_ago is None else "completed",
                "intent": "order",
                "medicationCodeableConcept": _medication(drug),
                "subject": self._subject(),
                "authoredOn": self.day(start_days_ago).isoformat(),
                "requester": {"reference": PRESCRIBER},
                "dosageInstruction": [
                    {"text": "as directed", "timing": {"repeat": {"boundsPeriod": bounds}}}
                ],
            }
        )

    def lab(self, analyte: str, days_ago: int, value: float) -> None:
        code, display, unit = LABS[analyte]
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "id": self._id(analyte),
            "status": "final",
            "category": [
                _coded("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory")
            ],
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
            "subject": self._subject(),
            "effectiveDateTime": f"{self.day(days_ago).isoformat()}T08:30:00Z",
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
        }
        if analyte in ULN:
            observation["referenceRange"] = [
                {"high": {"value": ULN[analyte], "unit": unit, "system": UCUM, "code": unit}}
            ]
        self.resources.append(observation)

    def negative_hcg(self, days_ago: int) -> None:
        code, display, _ = LABS["hcg"]
        self.resources.append(
            {
                "resourceType": "Observation",
                "id": self._id("hcg"),
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                "subject": self._subject(),
                "effectiveDateTime": f"{self.day(days_ago).isoformat()}T08:00:00Z",
                "valueCodeableConcept": {
                    "coding": [{"system": SNOMED, "code": "260385009", "display": "Negative"}]
                },
            }
        )

    def jitter(self, value: float, spread: float = 0.12) -> float:
        return round(value * self.random.uniform(1 - spread, 1 + spread), 1)


def _coded(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _medication(drug: str) -> dict[str, Any]:
    code, display = DRUGS[drug]
    return {"coding": [{"system": RXNORM, "code": code, "display": display}], "text": display}


def _alt_course(days_ago: int) -> float:
    """ALT (U/L) over five years: high at diagnosis, remission, a rise on infliximab."""
    if days_ago > 1700:
        return 420 - (1826 - days_ago) * 2.5
    if days_ago > 90:
        return 28
    return 60 + (90 - days_ago) * 3  # relapse after the anti-TNF start (~70 days ago)


def large_patient(anchor: date, patient_id: str = "bench-large") -> Patient:
    chart = _Chart(patient_id, anchor, seed=20261122)
    chart.patient(birth=anchor - timedelta(days=34 * 365 + 120))
    chart.condition("aih", 1826)
    chart.condition("crohns", 1500)
    chart.condition("osteopenia", 900)
    chart.condition("hypothyroidism", 1200)
    chart.condition("hypertension", 600)
    # 8 prednisolone tapers, the last one open; 10 azathioprine renewals, the last one open
    for n in range(8):
        start = 1826 - n * 228
        chart.course("prednisolone", start, None if n == 7 else start - 200)
    for n in range(10):
        start = 1800 - n * 180
        chart.course("azathioprine", start, None if n == 9 else start - 179)
    chart.course("budesonide", 1300, 1150)
    chart.course("budesonide", 700, 560)
    chart.course("infliximab", 70, None)
    for n in range(4):
        chart.course("colecalciferol", 1700 - n * 400, 1350 - n * 400)
    chart.course("calcium", 1700, 1000)
    chart.course("calcium", 999, 300)
    for n in range(3):
        chart.course("omeprazole", 1826 - n * 500, 1500 - n * 500)
    for visit in range(43):  # every six weeks
        days_ago = 1826 - visit * 42 - 5
        alt = chart.jitter(_alt_course(days_ago), 0.08)
        chart.lab("alt", days_ago, alt)
        chart.lab("ast", days_ago, chart.jitter(alt * 0.8))
        chart.lab("igg", days_ago, chart.jitter(22 if days_ago > 1650 else 13))
        chart.lab("bilirubin", days_ago, chart.jitter(2.4 if days_ago > 1700 else 0.7))
        chart.lab("haemoglobin", days_ago, chart.jitter(13.1, 0.05))
        chart.lab("platelets", days_ago, chart.jitter(240, 0.1))
        if visit % 2 == 0:
            chart.lab("tgn6", days_ago, chart.jitter(260, 0.25))
        if visit >= 33:
            chart.negative_hcg(days_ago + 1)
    chart.lab("alt", 12, 340.0)  # > 5 x ULN since infliximab: the liver-injury rule fires
    chart.lab("alt", 4, 365.0)
    return Patient(patient_id, chart.resources, _mmf_draft(patient_id, anchor))


def small_patient(anchor: date, patient_id: str = "bench-small") -> Patient:
    chart = _Chart(patient_id, anchor, seed=7)
    chart.patient(birth=anchor - timedelta(days=29 * 365))
    chart.condition("aih", 200)
    chart.course("prednisolone", 190, None)
    chart.course("azathioprine", 170, None)
    for visit, alt in enumerate((380.0, 210.0, 150.0, 120.0)):
        days_ago = 190 - visit * 50
        chart.lab("alt", days_ago, alt)
        chart.lab("ast", days_ago, chart.jitter(alt * 0.8))
        chart.lab("igg", days_ago, chart.jitter(19))
        chart.lab("bilirubin", days_ago, chart.jitter(1.0))
    return Patient(patient_id, chart.resources, _mmf_draft(patient_id, anchor))


def _mmf_draft(patient_id: str, anchor: date) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": f"{patient_id}-draft-mmf",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": _medication("mycophenolate"),
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": anchor.isoformat(),
        "requester": {"reference": PRESCRIBER},
    }


# ---------------------------------------------------------------- hook requests


@cache
def _services() -> dict[str, ServiceConfig]:
    return dict(load_configuration(DEFAULT_CARDS_DIR, REGISTRY).services)


def hook_request(
    patient: Patient, service_id: str, *, fhir_server: str | None = None
) -> dict[str, Any]:
    """The request an EHR sends: with full prefetch, or (``fhir_server`` given) none at all."""
    service = _services()[service_id]
    context: dict[str, Any] = {"userId": PRESCRIBER, "patientId": patient.id}
    if service.hook == "order-sign":
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": patient.draft}],
        }
    request: dict[str, Any] = {
        "hook": service.hook,
        "hookInstance": str(uuid.uuid5(HOOK_NAMESPACE, f"{patient.id}/{service_id}")),
        "context": context,
    }
    if fhir_server is None:
        request["prefetch"] = prefetch_for(service, list(patient.resources))
    else:
        request["fhirServer"] = fhir_server
    return request


def prefetch_queries(patient: Patient, service_id: str) -> dict[str, str]:
    """The relative FHIR queries the service issues for a request without prefetch."""
    service = _services()[service_id]
    return {
        key: template.replace("{{context.patientId}}", patient.id)
        for key, template in service.prefetch.items()
    }


def today() -> date:
    return datetime.now(UTC).date()
