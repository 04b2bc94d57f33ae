"""Prefetch states: absent, null, OperationOutcome, Bundle with next, resource; 412 rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cds_service.common.errors import BadRequest, PreconditionFailed
from cds_service.config.configuration import ServiceConfig, load_configuration
from cds_service.fhir.client import FetchError, FetchResult
from cds_service.hooks.prefetch import render_template, resolve
from cds_service.hooks.protocol import parse_hook_request
from cds_service.rules.registry import REGISTRY
from tests import factories as f

CARDS = Path(__file__).resolve().parents[2] / "cards"
ALL = {"Patient", "Observation", "MedicationRequest", "Medication", "Condition"}


class RecordingFetcher:
    def __init__(self, answers: dict[str, FetchResult | FetchError] | None = None) -> None:
        self.calls: list[tuple[str, str | None, dict[str, str], dict[str, Any]]] = []
        self.answers = answers or {}

    def fetch_many(
        self,
        base_url: str,
        access_token: str | None,
        queries: dict[str, str],
        continuations: dict[str, Any] | None = None,
    ) -> dict[str, FetchResult | FetchError]:
        self.calls.append((base_url, access_token, dict(queries), dict(continuations or {})))
        keys = [*queries, *(continuations or {})]
        return {
            k: self.answers.get(k, FetchResult([f.alt(10)] if k == "observations" else []))
            for k in keys
        }


@pytest.fixture(scope="module")
def service() -> ServiceConfig:
    return load_configuration(CARDS, REGISTRY).services["aih-order-sign"]


def request(prefetch: dict[str, Any] | None, **extra: Any) -> Any:
    return parse_hook_request(
        f.hook_request(drafts=(f.mmf_draft(),), prefetch=prefetch, **extra), "order-sign"
    )


def test_full_prefetch_needs_no_fetch(service: ServiceConfig) -> None:
    fetcher = RecordingFetcher()
    data = resolve(service, request(f.full_prefetch(observations=(f.alt(50),))), ALL, fetcher)  # type: ignore[arg-type]
    assert fetcher.calls == []
    assert len(data.of_type("Observation")) == 1
    assert data.of_type("Patient")[0]["id"] == f.PATIENT_ID


def test_null_keys_are_no_data_and_never_fetched(service: ServiceConfig) -> None:
    fetcher = RecordingFetcher()
    nulls = dict.fromkeys(("patient", "observations", "medicationRequests", "conditions"))
    data = resolve(service, request(nulls, fhirServer="https://ehr.example.org/fhir"), ALL, fetcher)  # type: ignore[arg-type]
    assert fetcher.calls == []
    assert data.resources == {}


def test_absent_and_error_keys_are_fetched_with_the_token(service: ServiceConfig) -> None:
    fetcher = RecordingFetcher()
    prefetch = f.full_prefetch()
    del prefetch["observations"]
    prefetch["conditions"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "x"}],
    }
    auth = {
        "access_token": "tok",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "cds",
    }
    data = resolve(
        service,
        request(prefetch, fhirServer="https://ehr.example.org/fhir", fhirAuthorization=auth),
        ALL,
        fetcher,  # type: ignore[arg-type]
    )
    ((base, token, queries, _),) = fetcher.calls
    assert (base, token) == ("https://ehr.example.org/fhir", "tok")
    assert set(queries) == {"observations", "conditions"}
    assert queries["observations"].startswith(f"Observation?patient={f.PATIENT_ID}&")
    assert len(data.of_type("Observation")) == 1


def test_absent_without_server_is_412_naming_the_keys(service: ServiceConfig) -> None:
    prefetch = f.full_prefetch()
    del prefetch["conditions"]
    with pytest.raises(PreconditionFailed, match="conditions"):
        resolve(service, request(prefetch), ALL, RecordingFetcher())  # type: ignore[arg-type]


def test_failed_fetch_is_412(service: ServiceConfig) -> None:
    fetcher = RecordingFetcher({"patient": FetchError("could not connect to the FHIR server")})
    prefetch = f.full_prefetch()
    del prefetch["patient"]
    with pytest.raises(PreconditionFailed, match="could not connect"):
        resolve(service, request(prefetch, fhirServer="https://ehr.example.org/fhir"), ALL, fetcher)  # type: ignore[arg-type]


def test_unneeded_keys_are_not_fetched(service: ServiceConfig) -> None:
    fetcher = RecordingFetcher()
    resolve(service, request({}, fhirServer="https://ehr.example.org/fhir"), {"Patient"}, fetcher)  # type: ignore[arg-type]
    assert set(fetcher.calls[0][2]) == {"patient"}


def test_paginated_prefetch_is_continued(service: ServiceConfig) -> None:
    prefetch = f.full_prefetch(observations=(f.alt(50),))
    prefetch["observations"]["link"] = [
        {"relation": "next", "url": "https://ehr.example.org/fhir/Observation?page=2"}
    ]
    fetcher = RecordingFetcher({"observations": FetchResult([f.alt(50), f.alt(60)])})
    data = resolve(
        service, request(prefetch, fhirServer="https://ehr.example.org/fhir"), ALL, fetcher
    )  # type: ignore[arg-type]
    assert fetcher.calls[0][3].keys() == {"observations"}
    assert len(data.of_type("Observation")) == 2


def test_paginated_prefetch_without_server_keeps_first_page_and_says_so(
    service: ServiceConfig,
) -> None:
    prefetch = f.full_prefetch(observations=(f.alt(50),))
    prefetch["observations"]["link"] = [
        {"relation": "next", "url": "https://x/fhir/Observation?page=2"}
    ]
    data = resolve(service, request(prefetch), ALL, RecordingFetcher())  # type: ignore[arg-type]
    assert len(data.of_type("Observation")) == 1
    assert any("more pages" in note for note in data.notes)


def test_failed_continuation_keeps_first_page(service: ServiceConfig) -> None:
    prefetch = f.full_prefetch(observations=(f.alt(50),))
    prefetch["observations"]["link"] = [
        {"relation": "next", "url": "https://ehr.example.org/fhir/Observation?p=2"}
    ]
    fetcher = RecordingFetcher({"observations": FetchError("the FHIR server answered HTTP 500")})
    data = resolve(
        service, request(prefetch, fhirServer="https://ehr.example.org/fhir"), ALL, fetcher
    )  # type: ignore[arg-type]
    assert len(data.of_type("Observation")) == 1
    assert any("HTTP 500" in note for note in data.notes)


@pytest.mark.parametrize(
    "value", ["text", 3, {"resourceType": "Condition", "id": "c"}, {"no": "type"}]
)
def test_wrong_prefetch_shape_is_400(service: ServiceConfig, value: Any) -> None:
    prefetch = f.full_prefetch()
    prefetch["patient"] = value
    with pytest.raises(BadRequest) as caught:
        resolve(service, request(prefetch), ALL, RecordingFetcher())  # type: ignore[arg-type]
    assert caught.value.expression == "prefetch.patient"


def test_template_values_are_url_encoded() -> None:
    # patientId must be a FHIR id (a 400 otherwise); other tokens are encoded.
    request = f.hook_request(drafts=())
    request["context"]["userId"] = "Practitioner/1&_count=99999"
    hook = parse_hook_request(request, "order-sign")
    assert render_template("Practitioner?_id={{userPractitionerId}}", hook) == (
        "Practitioner?_id=1%26_count%3D99999"
    )


def test_user_tokens_come_from_user_id() -> None:
    hook = parse_hook_request(f.hook_request(drafts=()), "order-sign")
    assert render_template("Practitioner/{{userPractitionerId}}", hook) == "Practitioner/dr-1"
    assert render_template("Patient/{{userPatientId}}", hook) is None


def test_missing_procedures_without_server_is_named_not_a_412(service: ServiceConfig) -> None:
    prefetch = f.full_prefetch()
    del prefetch["procedures"]
    data = resolve(service, request(prefetch), ALL | {"Procedure"}, RecordingFetcher())  # type: ignore[arg-type]
    assert [n for n in data.notes if "procedures " in n] == [
        "Not read (the decision was made without them): procedures (absent from prefetch and"
        " no fhirServer given)"
    ]


def test_missing_core_data_is_still_a_412_next_to_missing_procedures(
    service: ServiceConfig,
) -> None:
    prefetch = f.full_prefetch()
    del prefetch["procedures"], prefetch["conditions"]
    with pytest.raises(PreconditionFailed) as caught:
        resolve(service, request(prefetch), ALL | {"Procedure"}, RecordingFetcher())  # type: ignore[arg-type]
    assert "conditions" in str(caught.value.diagnostics)
    assert "procedures" not in str(caught.value.diagnostics)


def test_failed_procedure_fetch_is_named_not_a_412(service: ServiceConfig) -> None:
    prefetch = f.full_prefetch()
    del prefetch["procedures"]
    fetcher = RecordingFetcher({"procedures": FetchError("timed out")})
    body = request(prefetch, fhirServer="https://ehr.example.org/fhir")
    data = resolve(service, body, ALL | {"Procedure"}, fetcher)  # type: ignore[arg-type]
    assert any("procedures (timed out)" in n for n in data.notes)
