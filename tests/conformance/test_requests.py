"""Service calls driven by third-party material: spec example 02, the hooks-library R4 contexts,
AHRQ's null/missing prefetch invocations, HAPI's ``Patient/123`` context; plus prefetch
semantics (null / absent / OperationOutcome / paginated), FHIR fallback with the bearer token,
and the error answers (400/404/412/413/415) with OperationOutcome bodies.

No test reaches the network: every app's fetcher is either forbidden (the test fails if it is
called), replaced by a recorder, or given a fake ``requests`` transport.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from cds_service.fhir.client import FetchError, FetchResult
from cds_service.storage.store import CardLog
from tests import factories as f
from tests.conformance.support import (
    AHRQ_FIXTURES,
    HAPI_RESOURCES,
    LIBRARY_EXAMPLES,
    all_violations,
    assert_operation_outcome,
    load_material,
    response_violations,
    spec_example,
)
from tests.conftest import MATERIAL

SERVICE_FOR_HOOK = {
    "order-sign": "aih-order-sign",
    "order-select": "aih-order-select",
    "patient-view": "aih-patient-view",
}
RULES = {"mmf-teratogenicity"}
AHRQ_R4 = f"{AHRQ_FIXTURES}/hooks-patients/R4"
# AHRQ's prefetch keys are resource types; ours are named in cards/services/*.yaml.
AHRQ_KEYS = {
    "Patient": "patient",
    "Observation": "observations",
    "MedicationRequest": "medicationRequests",
    "Condition": "conditions",
}
OUR_KEYS = (
    "patient",
    "observations",
    "medicationRequests",
    "conditions",
    "medicationAdministrations",
    "medicationStatements",
    "procedures",
)
SUPPLEMENTARY_KEYS = {"medicationAdministrations", "medicationStatements", "procedures"}
ERROR_OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "timeout", "diagnostics": "search timed out"}],
}


# ---------------------------------------------------------------- fetcher doubles


class RecordingFetcher:
    """Stands in for ``FhirFetcher.fetch_many``; answers from ``answers`` by prefetch key."""

    def __init__(self, answers: Mapping[str, FetchResult | FetchError] | None = None) -> None:
        self.answers = dict(answers or {})
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self,
        base_url: str,
        access_token: str | None,
        queries: Mapping[str, str],
        continuations: Mapping[str, dict[str, Any]] | None = None,
    ) -> dict[str, FetchResult | FetchError]:
        self.calls.append(
            {
                "base_url": base_url,
                "access_token": access_token,
                "queries": dict(queries),
                "continuations": dict(continuations or {}),
            }
        )
        keys = [*queries, *(continuations or {})]
        return {key: self.answers.get(key, FetchResult()) for key in keys}


def forbid_fetch(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        pytest.fail("the service fetched from the FHIR server although it must not")

    monkeypatch.setattr(app.extensions["aih_cds"].engine.fetcher, "fetch_many", fail)


def record_fetch(
    app: Flask, monkeypatch: pytest.MonkeyPatch, answers: Mapping[str, Any] | None = None
) -> RecordingFetcher:
    recorder = RecordingFetcher(answers)
    monkeypatch.setattr(app.extensions["aih_cds"].engine.fetcher, "fetch_many", recorder)
    return recorder


@pytest.fixture
def ahrq_app(app_factory: Callable[..., Flask]) -> Flask:
    """The AHRQ invocations name ``http://test:9080``: listed for development mode."""
    return app_factory(fhir_servers=("http://test:9080",))


@pytest.fixture
def guarded(app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    """The default client with outbound fetching forbidden."""
    forbid_fetch(app, monkeypatch)
    return client


class FakeFhirServer(BaseAdapter):
    """A ``requests`` transport answering FHIR searches from a dict keyed by path?query."""

    def __init__(self, base: str, pages: Mapping[str, Any], status: int = 200) -> None:
        super().__init__()
        self.base = base.rstrip("/")
        self.pages = dict(pages)
        self.status = status
        self.requests: list[requests.PreparedRequest] = []

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        self.requests.append(request)
        relative = str(request.url).removeprefix(self.base + "/")
        resource_type = relative.split("?")[0].split("/")[0]
        page = self.pages.get(relative, self.pages.get(resource_type, f.bundle()))
        response = requests.Response()
        response.url = str(request.url)
        response.request = request
        response.status_code = self.status
        response.headers = CaseInsensitiveDict({"Content-Type": "application/fhir+json"})
        response.raw = io.BytesIO(json.dumps(page).encode())
        return response

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- request builders


def wrap(
    context: Mapping[str, Any], hook: str, prefetch: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A hooks-library context example as a complete CDS Hooks request."""
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": dict(context),
    }
    if prefetch is not None:
        body["prefetch"] = dict(prefetch)
    return body


def our_prefetch(patient_id: str, **kwargs: Any) -> dict[str, Any]:
    return f.full_prefetch(patient_resource=f.patient(pid=patient_id), **kwargs)


def add_mmf_draft(body: dict[str, Any]) -> dict[str, Any]:
    patient_id = body["context"]["patientId"].removeprefix("Patient/")
    draft = f.mmf_draft(pid=patient_id)
    body["context"]["draftOrders"]["entry"].append({"resource": draft})
    if "selections" in body["context"]:
        body["context"]["selections"].append(f"MedicationRequest/{draft['id']}")
    return body


def adapt_ahrq(name: str, hook: str) -> dict[str, Any]:
    """AHRQ's R4 invocation with our prefetch keys; for order hooks a mycophenolate draft is added
    so the rule runs and needs data. The fixture's Patient id ("1") differs from its
    context.patientId ("1288992"); the data is re-pointed to the patient in context."""
    body: dict[str, Any] = load_material(f"{AHRQ_R4}/{name}")
    patient_id = body["context"]["patientId"]
    prefetch = {}
    for key, original in body.get("prefetch", {}).items():
        text = json.dumps(original).replace('"Patient/1"', f'"Patient/{patient_id}"')
        value = json.loads(text)
        if isinstance(value, dict) and value.get("resourceType") == "Patient":
            value["id"] = patient_id
        prefetch[AHRQ_KEYS[key]] = value
    body["prefetch"] = prefetch
    body["hook"] = hook
    if hook in {"order-sign", "order-select"}:
        body["context"]["draftOrders"] = f.bundle(kind="collection")
        if hook == "order-select":
            body["context"]["selections"] = []
        add_mmf_draft(body)
    return body


def post(client: FlaskClient, body: Any, hook: str | None = None) -> Any:
    service = SERVICE_FOR_HOOK[hook or body["hook"]]
    return client.post(f"/cds-services/{service}", json=body)


def ok_cards(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert all_violations(body, RULES) == []
    cards: list[dict[str, Any]] = body["cards"]
    return cards


def outcome_of(app: Flask, card: Mapping[str, Any]) -> str:
    with app.extensions["aih_cds"].store.sessions() as session:
        logged = session.get(CardLog, card["uuid"])
        assert logged is not None
        return logged.rule_outcome


def library_cases() -> list[Any]:
    root = MATERIAL / LIBRARY_EXAMPLES
    files: list[tuple[str, Path]] = [
        *(("order-sign", p) for p in sorted((root / "order-sign").glob("*r4*.json"))),
        *(("order-select", p) for p in sorted((root / "order-select").glob("*r4*.json"))),
        *(("patient-view", p) for p in sorted((root / "patient-view").glob("*.json"))),
    ]
    return [pytest.param(hook, path, id=f"{hook}/{path.name}") for hook, path in files]


# ---------------------------------------------------------------- spec and library examples


def test_spec_example_02_request_is_answered_with_our_prefetch(guarded: FlaskClient) -> None:
    body = spec_example("02")
    body["prefetch"] = our_prefetch(body["context"]["patientId"])
    assert ok_cards(post(guarded, body)) == []


def test_spec_example_02_as_published_fetches_what_its_prefetch_lacks(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The published example's only prefetch key is not one of ours; patient-view rules read the
    Patient, labs, medications and conditions, so those are read from fhirServer with the
    given token."""
    body = spec_example("02")
    recorder = record_fetch(app, monkeypatch)
    assert ok_cards(post(client, body)) == []
    [fetch] = recorder.calls
    assert fetch["base_url"] == body["fhirServer"]
    assert fetch["access_token"] == body["fhirAuthorization"]["access_token"]
    assert set(fetch["queries"]) == set(OUR_KEYS) - {"procedures"}  # patient-view reads none


def test_library_examples_cover_our_hooks() -> None:
    assert {hook for hook, *_ in (case.values for case in library_cases())} == set(SERVICE_FOR_HOOK)


@pytest.mark.parametrize(("hook", "path"), library_cases())
def test_library_r4_context_is_answered(guarded: FlaskClient, hook: str, path: Path) -> None:
    context = json.loads(path.read_text(encoding="utf-8"))["context"]
    body = wrap(context, hook, our_prefetch(context["patientId"]))
    assert ok_cards(post(guarded, body)) == []  # amoxicillin and a diet: no AIH advice


@pytest.mark.parametrize(
    ("hook", "path"), [c for c in library_cases() if c.values[0] != "patient-view"]
)
def test_library_r4_context_with_mmf_draft_gets_card(
    app: Flask, guarded: FlaskClient, hook: str, path: Path
) -> None:
    context = json.loads(path.read_text(encoding="utf-8"))["context"]
    body = add_mmf_draft(wrap(context, hook, our_prefetch(context["patientId"])))
    [card] = ok_cards(post(guarded, body))
    assert card["source"]["topic"]["code"] == "mmf-teratogenicity"
    assert outcome_of(app, card) == "pregnancy-test-needed"


def test_order_select_advises_only_on_selections(guarded: FlaskClient) -> None:
    path = MATERIAL / LIBRARY_EXAMPLES / "order-select" / "01-example-r4.json"
    context = json.loads(path.read_text(encoding="utf-8"))["context"]
    body = add_mmf_draft(wrap(context, "order-select", our_prefetch(context["patientId"])))
    body["context"]["selections"] = body["context"]["selections"][:1]  # the diet only
    assert ok_cards(post(guarded, body)) == []


def test_request_extensions_are_tolerated(guarded: FlaskClient) -> None:
    body = f.hook_request("patient-view", prefetch=f.full_prefetch())
    body["extension"] = spec_example("26")["extension"]
    body["context"]["com.example.vendorField"] = {"anything": True}
    assert ok_cards(post(guarded, body)) == []


# ---------------------------------------------------------------- prefetch semantics


@pytest.mark.parametrize("hook", ["patient-view", "order-sign", "order-select"])
def test_ahrq_null_prefetch_values_are_not_refetched(
    app: Flask, guarded: FlaskClient, hook: str
) -> None:
    body = adapt_ahrq("null_prefetch_values_invocation.json", hook)
    body["prefetch"] = dict.fromkeys(OUR_KEYS)  # the client looked: there is nothing
    assert body["fhirServer"]  # fetching would be possible
    assert body["fhirAuthorization"]
    cards = ok_cards(post(guarded, body))
    if hook == "patient-view":
        assert cards == []
    else:
        [card] = cards  # no sex, no age: still possibly of reproductive potential
        assert outcome_of(app, card) == "pregnancy-test-needed"
        assert "No Patient resource was available" in card["detail"]


def test_ahrq_missing_prefetch_keys_without_fhir_server_is_412(guarded: FlaskClient) -> None:
    body = adapt_ahrq("missing_prefetch_keys_invocation.json", "order-sign")
    del body["fhirServer"], body["fhirAuthorization"]
    assert set(body["prefetch"]) == {"patient", "observations"}
    response = post(guarded, body)
    assert_operation_outcome(response, 412)
    diagnostics = response.get_json()["issue"][0]["diagnostics"]
    assert "medicationRequests" in diagnostics
    assert "conditions" in diagnostics


def test_ahrq_missing_prefetch_keys_fetched_from_fhir_server_with_bearer_token(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = adapt_ahrq("missing_prefetch_keys_invocation.json", "order-sign")
    course = f.medication_request(pid="1288992", start_days_ago=60)  # current mycophenolate
    recorder = record_fetch(
        app, monkeypatch, {"medicationRequests": FetchResult(resources=[course])}
    )
    [card] = ok_cards(post(client, body))
    [fetch] = recorder.calls
    assert fetch["base_url"] == "http://test:9080"
    assert fetch["access_token"] == body["fhirAuthorization"]["access_token"]
    assert set(fetch["queries"]) == {"medicationRequests", "conditions", *SUPPLEMENTARY_KEYS}
    assert fetch["queries"]["medicationRequests"].startswith("MedicationRequest?patient=1288992&")
    assert fetch["queries"]["conditions"].startswith("Condition?patient=1288992&")
    assert outcome_of(app, card) == "continuing-therapy"  # the fetched data was used


def test_prefetch_operation_outcome_is_treated_as_absent(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = f.hook_request(
        "order-sign",
        drafts=(f.mmf_draft(),),
        prefetch={**f.full_prefetch(), "observations": ERROR_OUTCOME},
        fhirServer="https://ehr.example.org/fhir",
        fhirAuthorization=spec_example("09")["fhirAuthorization"],
    )
    negative = f.hcg_qualitative(False, days_ago=2)
    recorder = record_fetch(app, monkeypatch, {"observations": FetchResult(resources=[negative])})
    [card] = ok_cards(post(client, body))
    [fetch] = recorder.calls
    assert set(fetch["queries"]) == {"observations"}
    assert fetch["access_token"] == "some-opaque-fhir-access-token"
    assert outcome_of(app, card) == "recent-negative-test"


def _bundle_with_outcome(severity: str, *resources: dict[str, Any]) -> dict[str, Any]:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": "too-costly", "diagnostics": "too many results"}],
    }
    bundle = f.bundle(*resources)
    bundle["entry"].append({"resource": outcome, "search": {"mode": "outcome"}})
    return bundle


def test_prefetch_bundle_with_error_outcome_is_treated_as_absent(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefetch = {**f.full_prefetch(), "observations": _bundle_with_outcome("error")}
    body = f.hook_request(
        "order-sign", drafts=(f.mmf_draft(),), prefetch=prefetch, fhirServer="https://ehr.example"
    )
    recorder = record_fetch(app, monkeypatch)
    ok_cards(post(client, body))
    assert [set(call["queries"]) for call in recorder.calls] == [{"observations"}]


def test_prefetch_bundle_with_error_outcome_without_fhir_server_is_not_silent(
    guarded: FlaskClient,
) -> None:
    prefetch = {**f.full_prefetch(), "observations": _bundle_with_outcome("error")}
    response = post(
        guarded, f.hook_request("order-sign", drafts=(f.mmf_draft(),), prefetch=prefetch)
    )
    if response.status_code != 412:
        [card] = ok_cards(response)
        assert "all data the rule reads was available" not in card["detail"]


def test_prefetch_bundle_with_informational_outcome_is_used(
    app: Flask, guarded: FlaskClient
) -> None:
    negative = f.hcg_qualitative(False, days_ago=2)
    prefetch = {**f.full_prefetch(), "observations": _bundle_with_outcome("information", negative)}
    body = f.hook_request("order-sign", drafts=(f.mmf_draft(),), prefetch=prefetch)
    [card] = ok_cards(post(guarded, body))
    assert outcome_of(app, card) == "recent-negative-test"


def test_prefetch_operation_outcome_without_fhir_server_is_412(guarded: FlaskClient) -> None:
    prefetch = {**f.full_prefetch(), "observations": ERROR_OUTCOME}
    body = f.hook_request("order-sign", drafts=(f.mmf_draft(),), prefetch=prefetch)
    response = post(guarded, body)
    assert_operation_outcome(response, 412)
    assert "observations" in response.get_json()["issue"][0]["diagnostics"]


def test_unreachable_fhir_server_is_412(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_fetch(app, monkeypatch, {"conditions": FetchError("could not connect")})
    prefetch = f.full_prefetch()
    del prefetch["conditions"]
    body = f.hook_request(
        "order-sign", drafts=(f.mmf_draft(),), prefetch=prefetch, fhirServer="https://ehr.example"
    )
    assert_operation_outcome(post(client, body), 412)


def test_paginated_prefetch_is_continued_on_the_fhir_server(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_page = f.bundle(f.alt(30))
    first_page["link"] = [{"relation": "next", "url": "https://ehr.example/fhir/Observation?p=2"}]
    prefetch = {**f.full_prefetch(), "observations": first_page}
    body = f.hook_request(
        "order-sign", drafts=(f.mmf_draft(),), prefetch=prefetch, fhirServer="https://ehr.example"
    )
    negative = f.hcg_qualitative(False, days_ago=1)
    recorder = record_fetch(app, monkeypatch, {"observations": FetchResult(resources=[negative])})
    [card] = ok_cards(post(client, body))
    [fetch] = recorder.calls
    assert fetch["queries"] == {}
    assert fetch["continuations"] == {"observations": first_page}
    assert outcome_of(app, card) == "recent-negative-test"


def test_real_fetcher_sends_bearer_token_and_follows_pages(ahrq_app: Flask) -> None:
    app, client = ahrq_app, ahrq_app.test_client()
    body = adapt_ahrq("missing_prefetch_keys_invocation.json", "order-sign")
    base = body["fhirServer"]
    page_2 = "MedicationRequest?page=2"
    first = f.bundle()
    first["link"] = [{"relation": "next", "url": f"{base}/{page_2}"}]
    server = FakeFhirServer(
        base,
        {
            "MedicationRequest": first,
            page_2: f.bundle(f.medication_request(pid="1288992", start_days_ago=60)),
        },
    )
    app.extensions["aih_cds"].engine.fetcher.session.mount(base, server)
    [card] = ok_cards(post(client, body))
    assert outcome_of(app, card) == "continuing-therapy"
    paths = sorted(str(r.url).removeprefix(base + "/").split("?")[0] for r in server.requests)
    assert paths == [
        "Condition",
        "MedicationAdministration",
        "MedicationRequest",
        "MedicationRequest",
        "MedicationStatement",
        "Procedure",
    ]
    token = body["fhirAuthorization"]["access_token"]
    for sent in server.requests:
        assert sent.method == "GET"
        assert sent.headers["Authorization"] == f"Bearer {token}"
        assert "application/fhir+json" in sent.headers["Accept"]


def test_real_fetcher_server_error_is_412(ahrq_app: Flask) -> None:
    app, client = ahrq_app, ahrq_app.test_client()
    body = adapt_ahrq("missing_prefetch_keys_invocation.json", "order-sign")
    server = FakeFhirServer(body["fhirServer"], {}, status=500)
    app.extensions["aih_cds"].engine.fetcher.session.mount(body["fhirServer"], server)
    response = post(client, body)
    assert_operation_outcome(response, 412)
    assert "some-opaque-fhir-access-token" not in response.get_data(as_text=True)


def test_patient_reference_style_patient_id_is_normalised(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    hapi_patient_id = load_material(f"{HAPI_RESOURCES}/CdsServiceRequestJson.json")["context"][
        "patientId"
    ]
    assert hapi_patient_id == "Patient/123"
    prefetch = our_prefetch("123")
    prefetch["patient"]["gender"] = "male"
    del prefetch["conditions"]
    body = f.hook_request(
        "order-sign",
        drafts=(f.mmf_draft(pid="123"),),
        prefetch=prefetch,
        pid=hapi_patient_id,
        fhirServer="https://ehr.example",
    )
    recorder = record_fetch(app, monkeypatch)
    [card] = ok_cards(post(client, body))
    assert outcome_of(app, card) == "male-patient"  # the prefetched Patient/123 was matched
    assert recorder.calls[0]["queries"]["conditions"].startswith("Condition?patient=123&")


# ---------------------------------------------------------------- error answers


def test_hook_mismatch_is_400_naming_hook(guarded: FlaskClient) -> None:
    body = f.hook_request("order-sign", drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    response = guarded.post("/cds-services/aih-order-select", json=body)
    assert_operation_outcome(response, 400, names="hook")


def test_fhir_authorization_without_fhir_server_is_400(guarded: FlaskClient) -> None:
    body = f.hook_request("patient-view", prefetch=f.full_prefetch())
    body["fhirAuthorization"] = spec_example("09")["fhirAuthorization"]
    assert_operation_outcome(post(guarded, body), 400, names="fhirServer")


@pytest.mark.parametrize("member", ["hook", "hookInstance", "context"])
def test_missing_required_request_member_is_400(guarded: FlaskClient, member: str) -> None:
    body = f.hook_request("patient-view", prefetch=f.full_prefetch())
    del body[member]
    response = guarded.post("/cds-services/aih-patient-view", json=body)
    assert_operation_outcome(response, 400, names=member)


@pytest.mark.parametrize("hook", ["patient-view", "order-sign", "order-select"])
def test_missing_patient_id_is_400(guarded: FlaskClient, hook: str) -> None:
    body = f.hook_request(hook, drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    del body["context"]["patientId"]
    assert_operation_outcome(post(guarded, body), 400, names="context.patientId")


def test_unknown_service_is_404(guarded: FlaskClient) -> None:
    body = f.hook_request("patient-view")
    assert_operation_outcome(guarded.post("/cds-services/no-such-service", json=body), 404)


def test_non_json_content_type_is_415(guarded: FlaskClient) -> None:
    body = json.dumps(f.hook_request("patient-view"))
    response = guarded.post("/cds-services/aih-patient-view", data=body, content_type="text/plain")
    assert_operation_outcome(response, 415)


def test_malformed_json_is_400(guarded: FlaskClient) -> None:
    response = guarded.post(
        "/cds-services/aih-patient-view",
        data='{"hook": "patient-view",',
        content_type="application/json",
    )
    assert_operation_outcome(response, 400)


def test_json_that_is_not_an_object_is_400(guarded: FlaskClient) -> None:
    response = guarded.post("/cds-services/aih-patient-view", json=[spec_example("02")])
    assert_operation_outcome(response, 400)


def _oversized_body() -> bytes:
    observations = tuple(f.alt(30 + i) for i in range(30))
    body = f.hook_request(
        "order-sign", drafts=(f.mmf_draft(),), prefetch=f.full_prefetch(observations=observations)
    )
    raw = json.dumps(body).encode()
    assert len(raw) > 2048
    return raw


def test_oversized_body_is_413(app_factory: Callable[..., Flask]) -> None:
    client = app_factory(max_request_bytes=2048).test_client()
    response = client.post(
        "/cds-services/aih-order-sign", data=_oversized_body(), content_type="application/json"
    )
    assert_operation_outcome(response, 413)


def test_oversized_chunked_body_is_413(app_factory: Callable[..., Flask]) -> None:
    client = app_factory(max_request_bytes=2048).test_client()
    response = client.post(
        "/cds-services/aih-order-sign",
        input_stream=io.BytesIO(_oversized_body()),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn sets for chunked input
    )
    assert_operation_outcome(response, 413)


def test_small_chunked_body_is_accepted(app_factory: Callable[..., Flask]) -> None:
    client = app_factory(max_request_bytes=2048).test_client()
    body = json.dumps(f.hook_request("patient-view", prefetch=f.full_prefetch())).encode()
    response = client.post(
        "/cds-services/aih-patient-view",
        input_stream=io.BytesIO(body),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_selection_not_among_draft_orders_is_400(guarded: FlaskClient) -> None:
    body = f.hook_request(
        "order-select",
        drafts=(f.mmf_draft(),),
        selections=["MedicationRequest/not-in-the-bundle"],
        prefetch=f.full_prefetch(),
    )
    assert_operation_outcome(post(guarded, body), 400, names="context.selections[0]")


def test_responses_are_json(guarded: FlaskClient) -> None:
    ok = post(guarded, f.hook_request("patient-view", prefetch=f.full_prefetch()))
    assert ok.mimetype == "application/json"
    assert response_violations(ok.get_json()) == []
    bad = guarded.post("/cds-services/aih-patient-view", json={})
    assert bad.mimetype == "application/json"
    assert bad.get_json()["resourceType"] == "OperationOutcome"


# ---------------------------------------------------------------- authentication default


def test_calls_require_client_jwt_by_default(app_factory: Callable[..., Flask]) -> None:
    client = app_factory(auth=True).test_client()
    body = f.hook_request("patient-view", prefetch=f.full_prefetch())
    expired_spec_token = spec_example("25b")["authorizationHeader"]
    for headers in ({}, {"Authorization": expired_spec_token}):
        for response in (
            client.get("/cds-services", headers=headers),
            client.post("/cds-services/aih-patient-view", json=body, headers=headers),
            client.post(
                "/cds-services/aih-patient-view/feedback",
                json=spec_example("20"),
                headers=headers,
            ),
        ):
            assert response.status_code == 401
            assert response.get_data() == b""
