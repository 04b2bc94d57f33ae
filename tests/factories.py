"""Small builders for FHIR resources and hook requests used across the tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PATIENT_ID = "pt-1"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_ids = itertools.count(1)


def when(days_ago: float | None) -> str | None:
    if days_ago is None:
        return None
    return (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")


def patient(
    gender: str | None = "female", birth_date: str | None = "1994-03-10", pid: str = PATIENT_ID
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient", "id": pid}
    if gender is not None:
        resource["gender"] = gender
    if birth_date is not None:
        resource["birthDate"] = birth_date
    return resource


def observation(
    code: str,
    *,
    system: str = LOINC,
    days_ago: float | None = 1,
    value: float | None = None,
    unit: str | None = None,
    value_code: tuple[str, str] | None = None,
    value_string: str | None = None,
    uln: float | None = None,
    status: str = "final",
    oid: str | None = None,
    pid: str = PATIENT_ID,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid or f"obs-{next(_ids)}",
        "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
    }
    if days_ago is not None:
        resource["effectiveDateTime"] = when(days_ago)
    if value is not None:
        resource["valueQuantity"] = {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        }
    if value_code is not None:
        resource["valueCodeableConcept"] = {
            "coding": [{"system": value_code[0], "code": value_code[1]}]
        }
    if value_string is not None:
        resource["valueString"] = value_string
    if uln is not None:
        resource["referenceRange"] = [
            {
                "high": {
                    "value": uln,
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit,
                }
            }
        ]
    return resource


def alt(value: float, days_ago: float = 1, uln: float | None = None) -> dict[str, Any]:
    return observation("1742-6", value=value, unit="U/L", days_ago=days_ago, uln=uln)


def hcg_quantitative(value: float, days_ago: float = 1, unit: str = "m[IU]/mL") -> dict[str, Any]:
    return observation("19080-1", value=value, unit=unit, days_ago=days_ago)


def hcg_qualitative(positive: bool, days_ago: float = 1) -> dict[str, Any]:
    answer = "10828004" if positive else "260385009"
    return observation("2106-3", value_code=(SNOMED, answer), days_ago=days_ago)


def pregnancy_status(pregnant: bool, days_ago: float = 1) -> dict[str, Any]:
    answer = "LA15173-0" if pregnant else "LA26683-5"
    return observation("82810-3", value_code=(LOINC, answer), days_ago=days_ago)


def medication_request(
    *,
    rxnorm: str | None = "68149",
    display: str = "mycophenolate mofetil",
    text: str | None = None,
    coding: list[dict[str, str]] | None = None,
    status: str = "active",
    start_days_ago: float | None = 200,
    end_days_ago: float | None = None,
    mid: str | None = None,
    pid: str = PATIENT_ID,
) -> dict[str, Any]:
    concept: dict[str, Any] = {}
    if coding is not None:
        concept["coding"] = coding
    elif rxnorm is not None:
        concept["coding"] = [{"system": RXNORM, "code": rxnorm, "display": display}]
    if text is not None:
        concept["text"] = text
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": mid or f"mr-{next(_ids)}",
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "medicationCodeableConcept": concept,
    }
    if start_days_ago is not None:
        resource["authoredOn"] = when(start_days_ago)
    if end_days_ago is not None:
        period: dict[str, Any] = {"end": when(end_days_ago)}
        if start_days_ago is not None:
            period["start"] = when(start_days_ago)
        resource["dosageInstruction"] = [{"timing": {"repeat": {"boundsPeriod": period}}}]
    return resource


def mmf_draft(mid: str = "draft-mmf", **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("start_days_ago", 0)
    return medication_request(status="draft", mid=mid, **kwargs)


def condition(
    code: str,
    *,
    system: str = SNOMED,
    clinical_status: str | None = "active",
    cid: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": cid or f"cond-{next(_ids)}",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }
    if clinical_status is not None:
        resource["clinicalStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": clinical_status,
                }
            ]
        }
    return resource


def bundle(*resources: dict[str, Any], kind: str = "searchset") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": [{"resource": r} for r in resources]}


def hook_request(
    hook: str = "order-sign",
    *,
    drafts: tuple[dict[str, Any], ...] = (),
    selections: list[str] | None = None,
    prefetch: dict[str, Any] | None = None,
    pid: str = PATIENT_ID,
    **extra: Any,
) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/dr-1", "patientId": pid}
    if hook in {"order-sign", "order-select"}:
        context["draftOrders"] = bundle(*drafts, kind="collection")
    if hook == "order-select":
        context["selections"] = (
            selections
            if selections is not None
            else [f"MedicationRequest/{d['id']}" for d in drafts]
        )
    body: dict[str, Any] = {"hook": hook, "hookInstance": f"hi-{next(_ids)}", "context": context}
    if prefetch is not None:
        body["prefetch"] = prefetch
    body.update(extra)
    return body


def full_prefetch(
    *,
    patient_resource: dict[str, Any] | None = None,
    observations: tuple[dict[str, Any], ...] = (),
    medication_requests: tuple[dict[str, Any], ...] = (),
    conditions: tuple[dict[str, Any], ...] = (),
    procedures: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    return {
        "patient": patient_resource if patient_resource is not None else patient(),
        "observations": bundle(*observations),
        "medicationRequests": bundle(*medication_requests),
        "conditions": bundle(*conditions),
        "medicationAdministrations": bundle(),
        "medicationStatements": bundle(),
        "procedures": bundle(*procedures),
    }


# ------------------------------------------------------------------ AIH treatment and anti-TNF

PREDNISOLONE = ("8638", "prednisolone")
AZATHIOPRINE = ("1256", "azathioprine")
INFLIXIMAB = ("191831", "infliximab")
TACROLIMUS = ("42316", "tacrolimus")


def aih_condition(**kwargs: Any) -> dict[str, Any]:
    return condition("408335007", **kwargs)


def course(drug: tuple[str, str], start_days_ago: float | None, **kwargs: Any) -> dict[str, Any]:
    """A MedicationRequest for an ingredient-coded drug (active unless status is given)."""
    rxnorm, display = drug
    return medication_request(
        rxnorm=rxnorm, display=display, start_days_ago=start_days_ago, **kwargs
    )


def draft(drug: tuple[str, str], mid: str | None = None) -> dict[str, Any]:
    return course(drug, 0, status="draft", mid=mid or f"draft-{drug[1]}")


def ast(value: float, days_ago: float = 1, uln: float | None = None) -> dict[str, Any]:
    return observation("1920-8", value=value, unit="U/L", days_ago=days_ago, uln=uln)


def igg(
    value: float, days_ago: float = 1, unit: str = "g/L", uln: float | None = None
) -> dict[str, Any]:
    return observation("2465-3", value=value, unit=unit, days_ago=days_ago, uln=uln)


def bilirubin(
    value: float, days_ago: float = 1, unit: str = "mg/dL", uln: float | None = None
) -> dict[str, Any]:
    return observation("1975-2", value=value, unit=unit, days_ago=days_ago, uln=uln)


def on_aih_treatment(
    *alts: tuple[float, float],
    start_days_ago: float = 250,
    extra_observations: tuple[dict[str, Any], ...] = (),
    courses: tuple[dict[str, Any], ...] | None = None,
) -> dict[str, Any]:
    """Prefetch for a patient with AIH on prednisolone + azathioprine since ``start_days_ago``;
    ``alts`` are (value U/L, days ago) pairs, ULN from the configured default (40 U/L)."""
    return full_prefetch(
        observations=(*(alt(v, days_ago=d) for v, d in alts), *extra_observations),
        medication_requests=courses
        if courses is not None
        else (
            course(PREDNISOLONE, start_days_ago),
            course(AZATHIOPRINE, start_days_ago - 14),
        ),
        conditions=(aih_condition(),),
    )


def on_anti_tnf(
    *alts: tuple[float, float],
    start_days_ago: float = 100,
    extra_observations: tuple[dict[str, Any], ...] = (),
    conditions: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """Prefetch for a patient on infliximab since ``start_days_ago`` (no AIH unless given)."""
    return full_prefetch(
        observations=(*(alt(v, days_ago=d) for v, d in alts), *extra_observations),
        medication_requests=(course(INFLIXIMAB, start_days_ago),),
        conditions=conditions,
    )


# ------------------------------------------------------------------ more drugs, dates, metabolites

MERCAPTOPURINE = ("103", "mercaptopurine")
MYCOPHENOLATE = ("68149", "mycophenolate mofetil")
ADALIMUMAB = ("327361", "adalimumab")
ATORVASTATIN = ("83367", "atorvastatin")


def effective(resource: dict[str, Any], date_text: str | None) -> dict[str, Any]:
    """A copy of an Observation with another ``effectiveDateTime`` (None: undated, any FHIR
    date or partial date such as "2026-03" otherwise)."""
    changed = dict(resource)
    changed.pop("effectiveDateTime", None)
    if date_text is not None:
        changed["effectiveDateTime"] = date_text
    return changed


def tgn6(days_ago: float = 30, value: float = 300) -> dict[str, Any]:
    return observation("32660-3", value=value, unit="pmol/8x10^8 RBC", days_ago=days_ago)


def metabolite_panel_report(days_ago: float = 30) -> dict[str, Any]:
    """A metabolite panel resulted as a text report (no numeric components)."""
    return observation("82869-9", value_string="see report", days_ago=days_ago)


# ---------------------------------------------------------------- thiopurines and drug safety

RBC_UNIT = "pmol/8x10^8 RBC"


def dosage(
    dose: float | None = 50,
    unit: str = "mg",
    *,
    frequency: int | None = 1,
    period: float | None = 1,
    period_unit: str = "d",
    timing_code: str | None = None,
    route: str | None = None,
    sequence: int | None = None,
) -> dict[str, Any]:
    """One R4 Dosage: doseAndRate.doseQuantity and timing.repeat (or timing.code)."""
    item: dict[str, Any] = {}
    if sequence is not None:
        item["sequence"] = sequence
    timing: dict[str, Any] = {}
    if period is not None:
        repeat: dict[str, Any] = {"period": period, "periodUnit": period_unit}
        if frequency is not None:
            repeat["frequency"] = frequency
        timing["repeat"] = repeat
    if timing_code is not None:
        timing["code"] = {"coding": [{"code": timing_code}]}
    if timing:
        item["timing"] = timing
    if route is not None:
        item["route"] = {"text": route}
    if dose is not None:
        item["doseAndRate"] = [
            {"doseQuantity": {"value": dose, "unit": unit, "system": "http://unitsofmeasure.org"}}
        ]
    return item


def drug_order(
    rxnorm: str,
    display: str,
    *,
    status: str = "draft",
    mid: str | None = None,
    dosages: list[dict[str, Any]] | None = None,
    start_days_ago: float | None = 0,
    text: str | None = None,
) -> dict[str, Any]:
    resource = medication_request(
        rxnorm=rxnorm,
        display=display,
        status=status,
        mid=mid,
        start_days_ago=start_days_ago,
        text=text,
    )
    if dosages is not None:
        resource["dosageInstruction"] = dosages
    return resource


def azathioprine(mg: float | None = 50, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("mid", "draft-aza" if kwargs.get("status", "draft") == "draft" else None)
    kwargs.setdefault("dosages", [dosage(mg)] if mg is not None else None)
    return drug_order("197388", "azathioprine 50 MG Oral Tablet", **kwargs)


def allopurinol(**kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("mid", "draft-allo" if kwargs.get("status", "draft") == "draft" else None)
    kwargs.setdefault("dosages", [dosage(100)])
    return drug_order("519", "allopurinol", **kwargs)


def budesonide(
    display: str = "budesonide 3 MG Delayed Release Oral Capsule", **kwargs: Any
) -> dict[str, Any]:
    kwargs.setdefault("mid", "draft-bud")
    return drug_order("19831", display, **kwargs)


def tgn(value: float, unit: str = RBC_UNIT, days_ago: float = 10) -> dict[str, Any]:
    return observation("32660-3", value=value, unit=unit, days_ago=days_ago)


def mmp(value: float, unit: str = RBC_UNIT, days_ago: float = 10) -> dict[str, Any]:
    return observation("32654-6", value=value, unit=unit, days_ago=days_ago)


def metabolite_panel(
    tgn_value: float, mmp_value: float | None, *, unit: str = RBC_UNIT, days_ago: float = 10
) -> dict[str, Any]:
    """The 82869-9 panel with both metabolites as components."""
    panel = observation("82869-9", days_ago=days_ago)
    components = [("32660-3", tgn_value)]
    if mmp_value is not None:
        components.append(("32654-6", mmp_value))
    panel["component"] = [
        {
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "valueQuantity": {"value": value, "unit": unit},
        }
        for code, value in components
    ]
    return panel


def tpmt_activity(
    value: float, low: float | None = 15, unit: str = "U/mL", days_ago: float = 400
) -> dict[str, Any]:
    resource = observation("21563-2", value=value, unit=unit, days_ago=days_ago)
    if low is not None:
        resource["referenceRange"] = [{"low": {"value": low, "unit": unit}}]
    return resource


def tpmt_phenotype(text: str, code: str = "79713-4", days_ago: float = 400) -> dict[str, Any]:
    return observation(code, value_string=text, days_ago=days_ago)


def cirrhosis(**kwargs: Any) -> dict[str, Any]:
    return condition("19943007", **kwargs)


def json_objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object inside a value (a resource, a request), the value itself included."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from json_objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from json_objects(item)
