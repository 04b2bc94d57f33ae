"""The benchmark's generated patients: deterministic, valid R4, loadable with stable ids."""

from __future__ import annotations

import json
from datetime import date

from bench.patients import hook_request, large_patient, prefetch_queries, small_patient
from cds_service.fhir.validation import validation_problem

ANCHOR = date(2026, 6, 1)


def test_the_same_anchor_gives_the_same_requests() -> None:
    first = hook_request(large_patient(ANCHOR), "aih-order-sign")
    second = hook_request(large_patient(ANCHOR), "aih-order-sign")
    assert json.dumps(first) == json.dumps(second)
    assert json.dumps(first) != json.dumps(
        hook_request(large_patient(date(2026, 6, 2)), "aih-order-sign")
    )


def test_the_large_patient_has_five_years_of_follow_up() -> None:
    patient = large_patient(ANCHOR)
    assert 280 <= patient.count("Observation") <= 320
    assert patient.count("MedicationRequest") == 30
    assert patient.count("Condition") == 5
    assert 18 <= len(small_patient(ANCHOR).resources) <= 22


def test_every_generated_resource_is_valid_r4() -> None:
    for patient in (large_patient(ANCHOR), small_patient(ANCHOR)):
        for resource in [*patient.resources, patient.draft]:
            assert validation_problem(resource) is None, resource["id"]


def test_the_transaction_puts_each_resource_at_its_id() -> None:
    patient = small_patient(ANCHOR)
    entries = patient.transaction()["entry"]
    assert [e["request"] for e in entries] == [
        {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"} for r in patient.resources
    ]


def test_the_fetch_path_request_has_no_prefetch() -> None:
    patient = large_patient(ANCHOR)
    request = hook_request(patient, "aih-patient-view", fhir_server="http://127.0.0.1:1/fhir")
    assert "prefetch" not in request
    assert request["fhirServer"] == "http://127.0.0.1:1/fhir"
    assert prefetch_queries(patient, "aih-patient-view")["patient"] == f"Patient/{patient.id}"
