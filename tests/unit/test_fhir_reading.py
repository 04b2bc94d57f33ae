"""The reading policy (cds_service/fhir/reading.py): what is repaired, ignored or left out."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cds_service.fhir.reading import proven_as_sent, read_resource, strict_problem
from tests import factories as f


def sandbox_draft() -> dict[str, Any]:
    draft = f.mmf_draft()
    draft["category"] = {"coding": [{"code": "outpatient"}]}
    draft["reasonCode"] = {"text": "Autoimmune hepatitis"}
    draft["dosageInstruction"] = [
        {"doseQuantity": {"value": 1}, "timing": {"repeat": {"frequency": 2}}}
    ]
    return draft


def test_valid_resource_is_used_as_it_is() -> None:
    resource = f.alt(50)
    result = read_resource(resource)
    assert result.resource is resource
    assert result.repairs == ()


def test_proven_as_sent_only_when_reading_would_change_nothing() -> None:
    """The record's fast path (proven_as_sent) takes a resource as sent only where the full
    reading would keep it, unchanged and unrepaired."""
    sandbox, unknown_type = sandbox_draft(), {"resourceType": "Nope", "id": "x"}
    trailing_space = f.alt(50) | {"status": "final "}
    for resource in (f.alt(50), f.patient(), sandbox, unknown_type, trailing_space):
        result = read_resource(resource)
        as_sent = result.resource is resource and not result.repairs and not result.unusable
        assert proven_as_sent(resource) is as_sent
    assert proven_as_sent(f.alt(50))
    assert not proven_as_sent(sandbox)


def test_sandbox_draft_is_read_with_arrays_and_without_unknown_elements() -> None:
    draft = sandbox_draft()
    assert strict_problem(draft) is not None  # not valid R4B ...
    result = read_resource(draft)
    assert result.resource is not None  # ... and read all the same
    assert result.resource["category"] == [draft["category"]]
    assert result.resource["reasonCode"] == [draft["reasonCode"]]
    assert "doseQuantity" not in result.resource["dosageInstruction"][0]
    assert result.resource["medicationCodeableConcept"] == draft["medicationCodeableConcept"]
    assert any("one value read as an array" in r for r in result.repairs)
    assert strict_problem(result.resource) is None  # what the readers see is valid R4B


@pytest.mark.parametrize(
    ("value", "read_as"),
    [
        ("2026-05-01T10:30Z", "2026-05-01T10:30:00+00:00"),
        ("2026-05-01T10:30", "2026-05-01T10:30:00+00:00"),
        (" 2026-05-01 ", "2026-05-01"),
    ],
)
def test_readable_dates_are_written_out_in_full(value: str, read_as: str) -> None:
    obs = f.alt(50)
    obs["effectiveDateTime"] = value
    result = read_resource(obs)
    assert result.resource is not None
    assert result.resource["effectiveDateTime"] == read_as
    assert value not in " ".join(result.repairs)  # repairs never carry the value itself


def test_trailing_space_in_status_is_trimmed() -> None:
    request = f.medication_request(status="active ")
    result = read_resource(request)
    assert result.resource is not None
    assert result.resource["status"] == "active"


def test_wrong_typed_unread_element_is_dropped_not_the_resource() -> None:
    obs = f.alt(50)
    obs["category"] = 7
    obs["note"] = [{"text": 12}]
    result = read_resource(obs)
    assert result.resource is not None
    assert "category" not in result.resource
    assert result.unread_elements("Observation") == []


def test_unusable_read_element_is_named() -> None:
    obs = f.alt(50)
    obs["referenceRange"] = "0-40"
    result = read_resource(obs)
    assert result.resource is not None
    assert result.unread_elements("Observation") == ["referenceRange"]


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda r: r.update(code="ALT"), "unusable code"),
        (lambda r: r.pop("status"), "no status"),
        (lambda r: r.update(subject="Patient/p"), "unusable subject"),
        (lambda r: r.update(subject={"reference": 5}), "unusable subject"),
    ],
)
def test_needed_element_unusable_leaves_the_resource_out(mutate: Any, problem: str) -> None:
    obs = f.alt(50)
    mutate(obs)
    result = read_resource(obs)
    assert result.resource is None
    assert result.problem == problem


def test_medication_request_without_a_usable_medication_is_left_out_but_a_draft_is_not() -> None:
    request = f.medication_request()
    request["medicationCodeableConcept"] = "mycophenolate"
    assert read_resource(request).problem == "unusable medication[x]"
    kept = read_resource(request, required=False)
    assert kept.resource is not None
    assert kept.unread_elements("MedicationRequest") == ["medicationCodeableConcept"]


def test_contained_resources_are_read_under_the_same_policy() -> None:
    draft = f.mmf_draft()
    draft.pop("medicationCodeableConcept")
    draft["medicationReference"] = {"reference": "#m"}
    draft["contained"] = {
        "resourceType": "Medication",
        "id": "m",
        "code": {"text": "mycophenolate", "vendor": 1},
    }
    result = read_resource(draft)
    assert result.resource is not None
    assert result.resource["contained"] == [
        {"resourceType": "Medication", "id": "m", "code": {"text": "mycophenolate"}}
    ]


@pytest.mark.parametrize("value", [None, [], "x", {"resourceType": 3}, {"resourceType": "Nope"}])
def test_non_resources_are_left_out_with_a_reason(value: Any) -> None:
    result = read_resource(value)
    assert result.resource is None
    assert result.problem


def test_reading_never_changes_the_input() -> None:
    draft = sandbox_draft()
    before = copy.deepcopy(draft)
    read_resource(draft)
    assert draft == before
