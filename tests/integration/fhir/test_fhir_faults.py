"""The fault matrix (docs/fhir-servers.md): each FHIR failure has one defined answer.

Required data that cannot be had -> 412 OperationOutcome naming the failure; data that is had but
incomplete -> cards with the gap stated under "Missing or assumed data". Never a 500, never a
hang: each case runs over real HTTP on 127.0.0.1, and the slow case proves the service answered
within its short budget while the server was still stalling (no wall-clock threshold). Every other
case is about the answer, not time: it gets a generous budget, so a loaded machine cannot turn a
401 or a retried 503 into a timeout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from cds_service.cli.demo_run import without_prefetch
from tests.integration.fhir.conftest import GOLDEN
from tests.integration.fhir.fault_server import (
    SLOW_ANSWER_S,
    ChartServer,
    FaultHandler,
    chart_server,
    outcome,
)
from tests.integration.fhir.test_fetch_path import read
from tests.integration.ports import free_port

# info card "recent-negative-test": any data mix-up (another patient's positive test, a lost
# Observation) changes the answer, so a clean run proves the data came through intact.
SCENARIO = GOLDEN / "mmf-negative-hcg-3-days"
TOKEN = "fault-token"
BUDGET_S = 1.0  # the slow case only: the server stalls for 30 s, far beyond it
GENEROUS_BUDGET_S = 20.0  # every other case: never reached, whatever the load
MAX_BYTES = 200_000
pytestmark = pytest.mark.integration


def chart() -> list[dict[str, Any]]:
    bundle = read(SCENARIO / "bundle.json")
    return [entry["resource"] for entry in bundle["entry"]]


@pytest.fixture
def server() -> Iterator[ChartServer]:
    with chart_server(chart(), TOKEN) as running:
        yield running


Ask = Callable[..., tuple[int, dict[str, Any]]]


@pytest.fixture
def ask(app_factory: Callable[..., Flask]) -> Ask:
    """POST the scenario without prefetch against ``fhirServer``; (status, body)."""
    scenario = read(SCENARIO / "scenario.json")
    now = datetime.fromisoformat(scenario["now"].replace("Z", "+00:00"))

    def call(base_url: str, budget_s: float = GENEROUS_BUDGET_S) -> tuple[int, dict[str, Any]]:
        app = app_factory(
            clock=lambda: now,
            fhir_timeout_s=budget_s,
            fhir_max_response_bytes=MAX_BYTES,
            fhir_max_pages=5,
        )
        body = without_prefetch(read(SCENARIO / "request.json"), base_url, TOKEN)
        response = app.test_client().post(f"/cds-services/{scenario['service']}", json=body)
        assert response.status_code in {200, 412}, response.get_data(as_text=True)
        return response.status_code, response.get_json()

    return call


def diagnostics(body: dict[str, Any]) -> str:
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "incomplete"
    return str(body["issue"][0]["diagnostics"])


def only_card(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body["cards"]) == 1
    card: dict[str, Any] = body["cards"][0]
    assert card["indicator"] == "info"  # recent-negative-test: the data that came through counts
    return card


# -- faults that leave required data unobtainable: 412


def stall(handler: FaultHandler, bundle: dict[str, Any]) -> None:
    if handler.server.release.wait(SLOW_ANSWER_S):
        return  # test over; nobody is listening
    handler.server.late_answers += 1
    handler.send_json(200, bundle)


def status(code: int) -> Callable[[FaultHandler, dict[str, Any]], None]:
    return lambda handler, _: handler.send_json(code, outcome("exception", f"HTTP {code}"))


def malformed(handler: FaultHandler, bundle: dict[str, Any]) -> None:
    handler.send_bytes(200, json.dumps(bundle).encode()[:-40])


def oversized(handler: FaultHandler, bundle: dict[str, Any]) -> None:
    padding = {"resourceType": "Basic", "id": "pad", "text": {"div": "x" * (MAX_BYTES * 3)}}
    bundle["entry"].append({"resource": padding})
    handler.send_json(200, bundle)


def bare_outcome(handler: FaultHandler, _: dict[str, Any]) -> None:
    handler.send_json(200, outcome("too-costly", "search too expensive"))


UNOBTAINABLE = {
    "slow": (stall, "budget"),
    "401": (status(401), "refused access (HTTP 401)"),
    "403": (status(403), "refused access (HTTP 403)"),
    "500": (status(500), "answered HTTP 500"),
    "503": (status(503), "answered HTTP 503"),
    "malformed-json": (malformed, "malformed JSON"),
    "oversized": (oversized, f"larger than {MAX_BYTES} bytes"),
    # severity and code only: the server's own text is never repeated to the caller
    "operation-outcome-instead-of-bundle": (bare_outcome, "OperationOutcome (error/too-costly"),
}


@pytest.mark.parametrize("fault", sorted(UNOBTAINABLE))
def test_unobtainable_data_gives_412(server: ChartServer, ask: Ask, fault: str) -> None:
    server.fault, expected = UNOBTAINABLE[fault]
    code, body = ask(server.base_url, BUDGET_S if fault == "slow" else GENEROUS_BUDGET_S)
    assert code == 412
    text = diagnostics(body)
    assert "observations" in text
    assert expected in text
    assert server.late_answers == 0  # for "slow": answered while the server still stalled


def test_connection_refused_gives_412(ask: Ask) -> None:
    code, body = ask(f"http://127.0.0.1:{free_port()}/fhir")  # nothing listens there
    assert code == 412
    assert "could not connect to the FHIR server" in diagnostics(body)


def test_one_transient_503_is_retried(server: ChartServer, ask: Ask) -> None:
    failures = iter([True])

    def once(handler: FaultHandler, bundle: dict[str, Any]) -> None:
        if next(failures, False):
            handler.send_json(503, outcome("transient", "busy"))
        else:
            handler.send_json(200, bundle)

    server.fault = once
    code, body = ask(server.base_url)
    assert code == 200
    assert body == read(SCENARIO / "expected-cards.json")


# -- faults that leave usable data: cards, with the gap stated


def outcome_entry(handler: FaultHandler, bundle: dict[str, Any]) -> None:
    problem = outcome("incomplete", "lab archive offline; results before 2020 omitted")
    bundle["entry"].append({"resource": problem, "search": {"mode": "outcome"}})
    handler.send_json(200, bundle)


def looping_next(handler: FaultHandler, bundle: dict[str, Any]) -> None:
    bundle["link"] = [{"relation": "next", "url": handler.self_url()}]
    handler.send_json(200, bundle)


def endless_pages(handler: FaultHandler, bundle: dict[str, Any]) -> None:
    page = int(handler.path.rpartition("page=")[2]) if "page=" in handler.path else 0
    base = handler.self_url().partition("&page=")[0]
    bundle["link"] = [{"relation": "next", "url": f"{base}&page={page + 1}"}]
    handler.send_json(200, bundle if page == 0 else {**bundle, "entry": []})


GAPS = {
    "operation-outcome-entry": (outcome_entry, "problem with this search (error/incomplete)"),
    "looping-next-link": (looping_next, "next-page links loop"),
    "endless-pages": (endless_pages, "more than 5 pages"),
}


@pytest.mark.parametrize("fault", sorted(GAPS))
def test_incomplete_data_gives_cards_with_the_gap_stated(
    server: ChartServer, ask: Ask, fault: str
) -> None:
    server.fault, expected = GAPS[fault]
    code, body = ask(server.base_url)
    assert code == 200
    card = only_card(body)
    missing = card["detail"].split("**Missing or assumed data**")[1]
    assert expected in missing


def test_server_order_and_foreign_resources_do_not_change_the_answer(
    server: ChartServer, ask: Ask
) -> None:
    """Local filtering and sorting: results oldest first plus another patient's positive hCG (a
    server that ignored ``patient=``) give exactly the golden cards."""
    foreign = {
        "resourceType": "Observation",
        "id": "someone-else-hcg",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2106-3"}]},
        "subject": {"reference": "Patient/someone-else"},
        "effectiveDateTime": "2026-05-31T09:00:00Z",
        "valueCodeableConcept": {
            "coding": [{"system": "http://snomed.info/sct", "code": "10828004"}]
        },
    }

    def careless(handler: FaultHandler, bundle: dict[str, Any]) -> None:
        entries = [{"resource": foreign, "search": {"mode": "match"}}, *bundle["entry"]]
        handler.send_json(200, {**bundle, "entry": entries[::-1]})  # oldest first

    server.fault = careless
    code, body = ask(server.base_url)
    assert code == 200
    assert body == read(SCENARIO / "expected-cards.json")


def test_scenario_has_what_the_fault_tests_rely_on() -> None:
    types = {r["resourceType"] for r in chart()}
    assert {"Patient", "Observation"} <= types
    assert read(SCENARIO / "scenario.json")["expect"]["outcome"] == "recent-negative-test"
    assert Path(SCENARIO / "expected-cards.json").is_file()
