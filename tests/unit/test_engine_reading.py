"""The engine under the reading policy: a draft's Medication read from fhirServer in the same
fetch, never a silent empty answer, supplementary data never a 412, the strict R4B report."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cds_service.fhir.client import FetchError, FetchResult
from cds_service.hooks.engine import Engine
from tests import factories as f
from tests.rule_harness import configuration, rule_of
from tests.unit.test_prefetch import RecordingFetcher as Fetcher

SERVER = "https://ehr.example/fhir"
MMF_MEDICATION = {
    "resourceType": "Medication",
    "id": "med-7",
    "code": {"coding": [{"system": f.RXNORM, "code": "68149", "display": "mycophenolate mofetil"}]},
}


def engine(fetcher: Fetcher, *, strict: bool = False) -> Engine:
    return Engine(
        configuration(),
        fetcher,  # type: ignore[arg-type]
        lambda: f.NOW,
        lambda: str(uuid.uuid4()),
        strict_report=strict,
    )


def referencing_draft(reference: str = "Medication/med-7", **extra: Any) -> dict[str, Any]:
    draft = f.mmf_draft()
    draft.pop("medicationCodeableConcept")
    draft["medicationReference"] = {"reference": reference, **extra}
    return draft


def pregnant_prefetch() -> dict[str, Any]:
    return f.full_prefetch(conditions=(f.condition("77386006"),))


def call(eng: Engine, body: dict[str, Any]) -> list[dict[str, Any]]:
    return eng.call("aih-order-sign", body).response()["cards"]


def test_unresolved_medication_is_read_from_the_server_in_the_same_fetch() -> None:
    fetcher = Fetcher({"draft Medication/med-7": FetchResult([MMF_MEDICATION])})
    prefetch = pregnant_prefetch()
    del prefetch["observations"]  # also fetched: one parallel fetch for both
    body = f.hook_request(drafts=(referencing_draft(),), prefetch=prefetch, fhirServer=SERVER)
    cards = call(engine(fetcher), body)
    assert [rule_of(c) for c in cards] == ["mmf-teratogenicity"]
    assert cards[0]["indicator"] == "critical"
    ((_, _, queries, _),) = fetcher.calls
    assert "Medication/med-7" in queries.values()
    assert any(q.startswith("Observation?") for q in queries.values())


def test_medication_that_cannot_be_read_gives_the_unidentified_order_card() -> None:
    fetcher = Fetcher({"draft Medication/med-7": FetchError("the FHIR server answered HTTP 404")})
    body = f.hook_request(
        drafts=(referencing_draft(),), prefetch=pregnant_prefetch(), fhirServer=SERVER
    )
    (card,) = call(engine(fetcher), body)
    assert rule_of(card) == "unidentified-draft-order"
    assert "MedicationRequest/draft-mmf" in card["detail"]
    assert "Mycophenolate in pregnancy" in card["detail"]
    assert "HTTP 404" in card["detail"]  # the failed read is named in the missing data


def test_without_a_server_the_unresolved_draft_is_named_and_nothing_is_fetched() -> None:
    fetcher = Fetcher()
    body = f.hook_request(drafts=(referencing_draft(),), prefetch=pregnant_prefetch())
    (card,) = call(engine(fetcher), body)
    assert rule_of(card) == "unidentified-draft-order"
    assert fetcher.calls == []


def test_medication_included_in_prefetch_resolves_the_draft() -> None:
    prefetch = pregnant_prefetch()
    prefetch["medicationRequests"] = f.bundle(MMF_MEDICATION)
    body = f.hook_request(drafts=(referencing_draft(),), prefetch=prefetch)
    assert [rule_of(c) for c in call(engine(Fetcher()), body)] == ["mmf-teratogenicity"]


@pytest.mark.parametrize(
    "reference", ["https://other.example/fhir/Medication/med-7", "Medication/../../x", "Patient/1"]
)
def test_absolute_or_odd_references_are_never_fetched(reference: str) -> None:
    fetcher = Fetcher()
    body = f.hook_request(
        drafts=(referencing_draft(reference),), prefetch=pregnant_prefetch(), fhirServer=SERVER
    )
    (card,) = call(engine(fetcher), body)
    assert rule_of(card) == "unidentified-draft-order"
    assert fetcher.calls == []


def test_identified_draft_that_no_rule_checks_gives_an_empty_answer() -> None:
    draft = f.medication_request(rxnorm=None, text="ibuprofen 400 mg", status="draft", mid="d")
    body = f.hook_request(drafts=(draft,), prefetch=pregnant_prefetch())
    assert call(engine(Fetcher()), body) == []


def test_missing_supplementary_prefetch_without_server_is_named_not_412() -> None:
    prefetch = pregnant_prefetch()
    del prefetch["medicationAdministrations"]
    del prefetch["medicationStatements"]
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=prefetch)
    (card,) = call(engine(Fetcher()), body)
    assert card["indicator"] == "critical"
    assert (
        "medicationAdministrations (absent from prefetch and no fhirServer given)" in card["detail"]
    )


def test_strict_report_names_findings_but_drops_nothing() -> None:
    draft = f.mmf_draft()
    draft["category"] = {"text": "outpatient"}  # the Sandbox's single object
    body = f.hook_request(drafts=(draft,), prefetch=pregnant_prefetch())
    plain = call(engine(Fetcher()), body)
    (strict,) = call(engine(Fetcher(), strict=True), body)
    assert [c["indicator"] for c in plain] == [strict["indicator"]] == ["critical"]
    assert "Strict R4B check" in strict["detail"]
    assert "Strict R4B check" not in plain[0]["detail"]


def test_a_malformed_prefetched_medication_is_named_once() -> None:
    prefetch = pregnant_prefetch()
    prefetch["medicationRequests"] = f.bundle(
        {"resourceType": "Medication", "id": "m", "code": "MMF"}
    )
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=prefetch)
    (card,) = call(engine(Fetcher()), body)
    assert "1 Medication resource(s) could not be read" in card["detail"]
