"""The fallback fetch with the network edge faked by a requests transport adapter."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from cds_service.fhir.client import FetchError, FetchLimits, FetchResult, FhirFetcher
from tests import factories as f

BASE = "https://ehr.example.org/fhir"


class FakeServer(BaseAdapter):
    """Answers GETs from a handler; records every request (URL and headers)."""

    def __init__(self, handler: Callable[[requests.PreparedRequest], tuple[int, Any]]) -> None:
        super().__init__()
        self.handler = handler
        self.requests: list[requests.PreparedRequest] = []
        self.lock = threading.Lock()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        with self.lock:
            self.requests.append(request)
        status, body = self.handler(request)
        if isinstance(body, Exception):
            raise body
        response = requests.Response()
        response.status_code = status
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        response.raw = _Raw(raw)
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.done = False

    def stream(self, chunk_size: int, decode_content: bool = True) -> Any:
        for i in range(0, len(self.data), chunk_size):
            yield self.data[i : i + chunk_size]

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        if self.done:
            return b""
        self.done = True
        return self.data

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


def fetcher_for(
    handler: Callable[[requests.PreparedRequest], tuple[int, Any]], **limits: Any
) -> tuple[FhirFetcher, FakeServer]:
    server = FakeServer(handler)
    session = requests.Session()
    session.mount("https://", server)
    session.mount("http://", server)
    return FhirFetcher(FetchLimits(**limits), session=session), server


def only(result: FetchResult | FetchError) -> FetchResult:
    assert isinstance(result, FetchResult), result
    return result


def test_queries_run_with_bearer_token_and_results_by_key() -> None:
    def handler(request: requests.PreparedRequest) -> tuple[int, Any]:
        if "Patient/" in (request.url or ""):
            return 200, f.patient()
        return 200, f.bundle(f.alt(50))

    fetcher, server = fetcher_for(handler)
    results = fetcher.fetch_many(
        BASE, "tok-123", {"patient": "Patient/pt-1", "obs": "Observation?patient=pt-1"}
    )
    assert only(results["patient"]).resources[0]["resourceType"] == "Patient"
    assert only(results["obs"]).resources[0]["code"]["coding"][0]["code"] == "1742-6"
    assert {r.headers["Authorization"] for r in server.requests} == {"Bearer tok-123"}
    assert {r.url for r in server.requests} == {
        f"{BASE}/Patient/pt-1",
        f"{BASE}/Observation?patient=pt-1",
    }


def test_no_token_means_no_authorization_header() -> None:
    fetcher, server = fetcher_for(lambda r: (200, f.bundle()))
    only(fetcher.fetch_many(BASE, None, {"obs": "Observation"})["obs"])
    assert "Authorization" not in server.requests[0].headers


def test_next_links_are_followed() -> None:
    def handler(request: requests.PreparedRequest) -> tuple[int, Any]:
        page = 2 if "page=2" in (request.url or "") else 1
        body = f.bundle(f.alt(40 + page))
        if page == 1:
            body["link"] = [{"relation": "next", "url": f"{BASE}/Observation?page=2"}]
        return 200, body

    fetcher, server = fetcher_for(handler)
    result = only(fetcher.fetch_many(BASE, None, {"obs": "Observation"})["obs"])
    assert [r["valueQuantity"]["value"] for r in result.resources] == [41, 42]
    assert len(server.requests) == 2


def test_looping_next_link_stops_with_a_note() -> None:
    def handler(request: requests.PreparedRequest) -> tuple[int, Any]:
        body = f.bundle(f.alt(50))
        body["link"] = [{"relation": "next", "url": f"{BASE}/Observation?page=2"}]
        return 200, body

    fetcher, server = fetcher_for(handler)
    result = only(fetcher.fetch_many(BASE, None, {"obs": "Observation"})["obs"])
    assert any("loop" in note for note in result.notes)
    assert len(server.requests) == 2


def test_page_cap() -> None:
    counter = iter(range(100))

    def handler(request: requests.PreparedRequest) -> tuple[int, Any]:
        body = f.bundle(f.alt(50))
        body["link"] = [{"relation": "next", "url": f"{BASE}/Observation?page={next(counter)}"}]
        return 200, body

    fetcher, server = fetcher_for(handler, max_pages=3)
    result = only(fetcher.fetch_many(BASE, None, {"obs": "Observation"})["obs"])
    assert len(server.requests) == 3
    assert any("more than 3 pages" in note for note in result.notes)


@pytest.mark.parametrize(
    "link",
    [
        BASE + "/../admin/secrets",
        BASE + "/%2e%2e/admin",
        BASE + "x/Observation?page=2",  # same host, a sibling path
        "https://user@ehr.example.org/fhir/Observation?page=2",
    ],
)
def test_next_link_escaping_the_base_path_is_not_followed(link: str) -> None:
    def handler(request: requests.PreparedRequest) -> tuple[int, Any]:
        body = f.bundle(f.alt(50))
        body["link"] = [{"relation": "next", "url": link}]
        return 200, body

    fetcher, server = fetcher_for(handler)
    result = only(fetcher.fetch_many(BASE, "secret", {"obs": "Observation"})["obs"])
    assert len(server.requests) == 1
    assert result.notes


def test_next_link_to_another_server_is_not_followed() -> None:
    def handler(request: requests.PreparedRequest) -> tuple[int, Any]:
        body = f.bundle(f.alt(50))
        body["link"] = [{"relation": "next", "url": "https://evil.example.com/steal"}]
        return 200, body

    fetcher, server = fetcher_for(handler)
    result = only(fetcher.fetch_many(BASE, "secret", {"obs": "Observation"})["obs"])
    assert len(server.requests) == 1
    assert any("another server" in note for note in result.notes)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, {}, "refused access"),
        (403, {}, "refused access"),
        (500, {}, "HTTP 500"),
        (200, b"{not json", "malformed JSON"),
        (
            200,
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "x"}]},
            "OperationOutcome",
        ),
        (200, [1, 2], "not a resource"),
    ],
)
def test_server_failures_become_fetch_errors(status: int, body: Any, message: str) -> None:
    fetcher, _ = fetcher_for(lambda r: (status, body))
    result = fetcher.fetch_many(BASE, "tok", {"obs": "Observation"})["obs"]
    assert isinstance(result, FetchError)
    assert message in str(result)
    assert "tok" not in str(result)


def test_connection_refused_is_retried_once_then_reported() -> None:
    fetcher, server = fetcher_for(lambda r: (0, requests.ConnectionError("refused")))
    result = fetcher.fetch_many(BASE, None, {"obs": "Observation"})["obs"]
    assert isinstance(result, FetchError)
    assert "could not connect" in str(result)
    assert len(server.requests) == 2


def test_503_is_retried_once() -> None:
    answers = iter([(503, {}), (200, f.bundle(f.alt(50)))])
    fetcher, server = fetcher_for(lambda r: next(answers))
    result = only(fetcher.fetch_many(BASE, None, {"obs": "Observation"})["obs"])
    assert len(result.resources) == 1
    assert len(server.requests) == 2


def test_oversized_response_is_refused() -> None:
    big = f.bundle(*(f.alt(50) for _ in range(200)))
    fetcher, _ = fetcher_for(lambda r: (200, big), max_response_bytes=10_000)
    result = fetcher.fetch_many(BASE, None, {"obs": "Observation"})["obs"]
    assert isinstance(result, FetchError)
    assert "larger than" in str(result)


def test_slow_server_cannot_exceed_the_budget() -> None:
    """The server holds both queries until the test releases them: fetch_many must give up at
    its 0.3 s budget while they are still held. No wall-clock threshold: a broken budget shows
    as answers (the hold ends after a generous 30 s), not as a slow run."""
    release = threading.Event()
    answered: list[str] = []

    def held(request: requests.PreparedRequest) -> tuple[int, Any]:
        release.wait(timeout=30)
        answered.append(str(request.url))
        return 200, f.bundle()

    fetcher, server = fetcher_for(held, budget_s=0.3)
    try:
        results = fetcher.fetch_many(BASE, None, {"a": "Observation", "b": "Condition"})
        assert answered == []  # returned while the server still held every query
    finally:
        release.set()
    assert len(server.requests) == 2
    for result in results.values():
        assert isinstance(result, FetchError)
        assert "0.3 s budget" in str(result)


def test_queries_run_in_parallel() -> None:
    """All four queries are in flight at once: each waits until the others have arrived. The
    waits are generous (20 s, budget 30 s) so a loaded machine cannot fail it; run one by one,
    the queries would break the barrier."""
    barrier = threading.Barrier(4, timeout=20.0)

    def rendezvous(request: requests.PreparedRequest) -> tuple[int, Any]:
        barrier.wait()  # raises BrokenBarrierError if the queries were run one by one
        return 200, f.bundle()

    fetcher, _ = fetcher_for(rendezvous, budget_s=30.0)
    results = fetcher.fetch_many(BASE, None, {k: "Observation?k=" + k for k in "abcd"})
    assert all(isinstance(r, FetchResult) for r in results.values())


def test_error_outcome_entry_in_searchset_is_stated() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "x", "diagnostics": "partial"}],
    }
    warning = {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "x"}]}
    fetcher, _ = fetcher_for(lambda r: (200, f.bundle(f.alt(50), outcome, warning)))
    result = only(fetcher.fetch_many(BASE, None, {"obs": "Observation"})["obs"])
    assert len(result.resources) == 1
    # Severity and code only: the server's own text is never repeated to our callers.
    assert result.notes == ["the server reported a problem with this search (error/x)"]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ((401, {}), "refused"),
        ((500, {}), "http-status"),
        ((200, b"{not json"), "malformed"),
        ((200, {"resourceType": "OperationOutcome", "issue": []}), "operation-outcome"),
        ((0, requests.ConnectionError("refused")), "connect"),
    ],
)
def test_failures_and_fetch_time_are_measured(answer: tuple[int, Any], reason: str) -> None:
    from cds_service.ops.metrics import metrics

    measured = metrics()
    failures = measured.fhir_fetch_failures.labels(reason)
    failures_before = failures._value.get()  # type: ignore[attr-defined]
    fetches_before = _histogram_count(measured.fhir_fetch_latency)
    fetcher, _ = fetcher_for(lambda r: answer)
    result = fetcher.fetch_many(BASE, None, {"obs": "Observation", "cond": "Condition"})
    assert all(isinstance(r, FetchError) and r.reason == reason for r in result.values())
    assert failures._value.get() == failures_before + 2  # type: ignore[attr-defined]
    assert _histogram_count(measured.fhir_fetch_latency) == fetches_before + 1


def _histogram_count(histogram: Any) -> float:
    return next(
        s.value for m in histogram.collect() for s in m.samples if s.name.endswith("_count")
    )


def test_entries_are_capped_per_hook_call_across_queries_and_pages() -> None:
    def handler(request: requests.PreparedRequest) -> tuple[int, Any]:
        body = f.bundle(*(f.alt(50) for _ in range(3)))
        if "page=2" not in str(request.url):
            body["link"] = [{"relation": "next", "url": BASE + "/Observation?page=2"}]
        return 200, body

    fetcher, _ = fetcher_for(handler, max_entries_per_call=10)
    results = fetcher.fetch_many(BASE, None, {"a": "Observation", "b": "Condition"})
    # 2 queries x 2 pages x 3 entries = 12 > 10: not everything can be read
    refused = [r for r in results.values() if isinstance(r, FetchError)]
    assert refused
    assert all(r.reason == "too-large" for r in refused)


def test_bytes_are_capped_per_hook_call() -> None:
    big = f.bundle(*(f.alt(50) for _ in range(40)))
    fetcher, _ = fetcher_for(lambda r: (200, big), max_bytes_per_call=len(json.dumps(big)) + 10)
    results = fetcher.fetch_many(BASE, None, {"a": "Observation", "b": "Condition"})
    assert [r.reason for r in results.values() if isinstance(r, FetchError)] == ["too-large"]
