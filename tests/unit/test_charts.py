"""Charts -> hook requests: what the demo page and whatif send for a patient Bundle."""

from __future__ import annotations

from cds_service.config.configuration import ServiceConfig
from cds_service.informatics.charts import charts_in_bundle, prefetch_for
from tests import factories as f


def service(hook: str) -> ServiceConfig:
    return ServiceConfig(
        id=f"svc-{hook}",
        hook=hook,
        title="t",
        description="d",
        usage_requirements=None,
        prefetch={
            "patient": "Patient/{{context.patientId}}",
            "meds": "MedicationRequest?patient={{context.patientId}}"
            "&_include=MedicationRequest:medication",
        },
        rules=(),
        file="-",
    )


def test_a_bundle_of_two_patients_gives_two_charts_with_their_own_drafts() -> None:
    ann, bob = f.patient(pid="ann"), f.patient(pid="bob", gender="male")
    active = f.medication_request(mid="ann-aza", pid="ann")
    draft = f.mmf_draft("ann-draft", pid="ann")
    bundle = f.bundle(ann, bob, active, draft, kind="collection")

    charts = {c.patient_id: c for c in charts_in_bundle(bundle)}
    assert set(charts) == {"ann", "bob"}
    assert [d["id"] for d in charts["ann"].drafts] == ["ann-draft"]
    assert [r["id"] for r in charts["ann"].resources] == ["ann", "ann-aza"]
    assert charts["bob"].drafts == ()

    request = charts["ann"].hook_request(service("order-select"), hook_instance="h", user_id="u")
    assert request["context"]["selections"] == ["MedicationRequest/ann-draft"]
    assert request["prefetch"]["meds"]["total"] == 1
    view = charts["bob"].hook_request(service("patient-view"), hook_instance="h", user_id="u")
    assert "draftOrders" not in view["context"]


def test_prefetch_without_a_patient_is_null_and_includes_medications() -> None:
    medication = {"resourceType": "Medication", "id": "m1"}
    prefetch = prefetch_for(service("order-sign"), [medication])
    assert prefetch["patient"] is None
    assert prefetch["meds"]["entry"] == [{"resource": medication, "search": {"mode": "include"}}]


def test_not_a_bundle_has_no_charts() -> None:
    assert charts_in_bundle({"resourceType": "Patient", "id": "x"}) == []
    assert charts_in_bundle([]) == []
