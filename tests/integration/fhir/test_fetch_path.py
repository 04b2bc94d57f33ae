"""The fetch path against real FHIR servers: every golden scenario with NO prefetch.

The service gets only ``fhirServer`` and a bearer token, reads the chart from Medplum or SEKMET,
and must give exactly the cards it gives with full prefetch (and, where the scenario has one,
exactly ``expected-cards.json``). Scenarios are discovered from fixtures/fhir/*/scenario.json, so
new ones are covered without editing this file.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask

from cds_service.cli.demo_run import without_prefetch
from tests.integration.fhir.conftest import GOLDEN, LoadedServer
from tests.scenarios import scenario_dirs

SCENARIOS = [d.name for d in scenario_dirs()]
# Generous: these tests are about the answer, not speed (faults test the budget).
SETTINGS = {"fhir_timeout_s": 15.0, "fhir_max_pages": 200}


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def post(app: Flask, service: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = app.test_client().post(f"/cds-services/{service}", json=body)
    return response.status_code, response.get_json()


def loaded_or_skip(fhir_server: LoadedServer, name: str) -> None:
    prefetch_only = read(GOLDEN / name / "scenario.json").get("prefetch_only")
    if prefetch_only:
        pytest.skip(f"prefetch-only scenario: {prefetch_only}")
    result = fhir_server.loaded[name]
    if result.ok:
        return
    if read(GOLDEN / name / "scenario.json").get("deliberately_invalid"):
        pytest.skip(
            f"{fhir_server.server.name} rejects the deliberately invalid chart ({result.message})"
        )
    pytest.fail(f"{name} could not be loaded into {fhir_server.server.name}: {result.message}")


def both_ways(
    app_factory: Callable[..., Flask], fhir_server: LoadedServer, name: str, **settings: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(cards with full prefetch, cards fetched from the server), each from a fresh app."""
    directory = GOLDEN / name
    scenario = read(directory / "scenario.json")
    now = datetime.fromisoformat(scenario["now"].replace("Z", "+00:00"))
    request = read(directory / "request.json")
    config = {**SETTINGS, **settings, "clock": lambda: now, "database_url": "sqlite://"}
    status, prefetched = post(app_factory(**config), scenario["service"], request)
    assert status == 200, prefetched
    server = fhir_server.server
    fetch_request = without_prefetch(request, server.base_url, server.token)
    status, fetched = post(app_factory(**config), scenario["service"], fetch_request)
    assert status == 200, fetched
    return prefetched, fetched


@pytest.mark.integration
@pytest.mark.parametrize("name", SCENARIOS)
def test_no_prefetch_gives_the_prefetch_cards(
    app_factory: Callable[..., Flask], fhir_server: LoadedServer, name: str
) -> None:
    loaded_or_skip(fhir_server, name)
    prefetched, fetched = both_ways(app_factory, fhir_server, name)
    assert fetched == prefetched
    golden = GOLDEN / name / "expected-cards.json"
    if golden.is_file():
        assert fetched == read(golden)


@pytest.fixture
def small_pages_cards(tmp_path: Path) -> Path:
    """A copy of cards/ whose prefetch searches ask for one result per page."""
    from cds_service.common.settings import DEFAULT_CARDS_DIR

    target = tmp_path / "cards"
    shutil.copytree(DEFAULT_CARDS_DIR, target)
    for service in (target / "services").glob("*.yaml"):
        text = service.read_text(encoding="utf-8")
        service.write_text(re.sub(r"_count=\d+", "_count=1", text), encoding="utf-8")
    return target


@pytest.mark.integration
@pytest.mark.parametrize("name", SCENARIOS)
def test_paging_is_followed(
    app_factory: Callable[..., Flask],
    fhir_server: LoadedServer,
    small_pages_cards: Path,
    name: str,
) -> None:
    """One result per page: every next link must be followed to reach the same cards."""
    loaded_or_skip(fhir_server, name)
    server = fhir_server.server
    if server.request_log is not None:
        server.request_log.write_text("", encoding="utf-8")
    prefetched, fetched = both_ways(app_factory, fhir_server, name, cards_dir=small_pages_cards)
    assert fetched == prefetched
    if server.request_log is not None:  # every stored result after the first came on its own page
        later_pages = sum("_offset=" in line for line in server.requests_seen())
        chart = read(GOLDEN / name / "bundle.json")["entry"]
        searched = [
            e for e in chart if e["resource"]["resourceType"] not in {"Patient", "Medication"}
        ]
        assert later_pages >= len(searched) - 3  # 3 searches: each first page holds one result


@pytest.mark.integration
def test_the_server_pages_one_result_at_a_time(fhir_server: LoadedServer) -> None:
    """The paging test above really pages: a chart with several Observations gives next links."""
    server = fhir_server.server
    patient = _patient_with_most("Observation")
    response = requests.get(
        f"{server.base_url}/Observation",
        params={"patient": patient, "_count": "1", "_sort": "-date"},
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    )
    bundle = response.json()
    assert len(bundle["entry"]) == 1
    assert any(link["relation"] == "next" for link in bundle["link"])


@pytest.mark.integration
def test_the_bearer_token_is_required_and_forwarded(
    app_factory: Callable[..., Flask], fhir_server: LoadedServer
) -> None:
    """Both servers refuse requests without the token, so the passing scenarios above prove it
    was forwarded; a wrong token must give a 412 naming the refusal, never cards."""
    name = "mmf-pregnant-status"
    loaded_or_skip(fhir_server, name)
    server = fhir_server.server
    anonymous = requests.get(f"{server.base_url}/Patient/{name}", timeout=10)
    assert anonymous.status_code == 401
    request = without_prefetch(read(GOLDEN / name / "request.json"), server.base_url, "wrong")
    status, body = post(app_factory(**SETTINGS), "aih-order-sign", request)
    assert status == 412
    assert body["resourceType"] == "OperationOutcome"
    assert "refused access (HTTP 401)" in body["issue"][0]["diagnostics"]


@pytest.mark.integration
def test_query_hygiene_on_the_wire(
    app_factory: Callable[..., Flask], fhir_server: LoadedServer
) -> None:
    """What the service really sent (Medplum's request log): the token on every call, bare
    patient ids, ``_sort=-date`` and never the spec example's ``sort:desc`` or ``code:in``."""
    server = fhir_server.server
    if server.request_log is None:
        pytest.skip(f"{server.name} keeps no request log")
    name = "mmf-continuing-therapy"
    loaded_or_skip(fhir_server, name)
    server.request_log.write_text("", encoding="utf-8")
    both_ways(app_factory, fhir_server, name)
    lines = server.requests_seen()
    searches = [line for line in lines if "?" in line]
    assert searches, lines
    assert all(line.endswith(" auth") for line in lines)
    for line in searches:
        query = parse_qs(urlsplit(line.split(" ")[1]).query)
        assert query["patient"] == [name]
        assert not any(key.endswith(":in") or key.startswith("sort") for key in query)
        if "/Observation?" in line or "/MedicationRequest?" in line:
            assert query["_sort"] == ["-date"]


def _patient_with_most(resource_type: str) -> str:
    def count(name: str) -> int:
        bundle = read(GOLDEN / name / "bundle.json")
        return sum(e["resource"]["resourceType"] == resource_type for e in bundle["entry"])

    return max(SCENARIOS, key=count)


@pytest.mark.integration
def test_the_server_listens_on_loopback_only(fhir_server: LoadedServer) -> None:
    """SEKMET's default is 0.0.0.0: the listening socket must be 127.0.0.1 only (Linux /proc)."""
    port = urlsplit(fhir_server.server.base_url).port
    listening = [
        line.split()[1]
        for line in Path("/proc/net/tcp").read_text(encoding="utf-8").splitlines()[1:]
        if line.split()[3] == "0A"  # LISTEN
    ]
    ours = [address for address in listening if int(address.split(":")[1], 16) == port]
    assert ours == ["0100007F:" + f"{port:04X}"]
    assert not any(int(line.split(":")[1], 16) == port for line in _tcp6_listeners())


def _tcp6_listeners() -> list[str]:
    path = Path("/proc/net/tcp6")
    if not path.exists():
        return []
    rows = path.read_text(encoding="utf-8").splitlines()[1:]
    return [row.split()[1] for row in rows if row.split()[3] == "0A"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("client-unresolved-reference", "unidentified-draft-order"),
        ("client-reference-display-only", "mmf-teratogenicity"),
    ],
)
def test_unknown_draft_medication_on_the_server(
    app_factory: Callable[..., Flask], fhir_server: LoadedServer, name: str, rule: str
) -> None:
    """A draft's Medication the server does not hold: read as Medication/{id} in the same fetch,
    the server's 404 named on the card; the draft is then judged by what it still says."""
    assert fhir_server.loaded[name].ok, fhir_server.loaded[name].message
    scenario = read(GOLDEN / name / "scenario.json")
    now = datetime.fromisoformat(scenario["now"].replace("Z", "+00:00"))
    server = fhir_server.server
    request = without_prefetch(read(GOLDEN / name / "request.json"), server.base_url, server.token)
    app = app_factory(**SETTINGS, clock=lambda: now, database_url="sqlite://")
    status, body = post(app, scenario["service"], request)
    assert status == 200, body
    (card,) = body["cards"]
    assert card["source"]["topic"]["code"] == rule
    assert re.search(
        r"draft Medication/\S+-med-404 \(the FHIR server answered HTTP 404\)", card["detail"]
    )


@pytest.mark.integration
@pytest.mark.parametrize(
    "resource_type", ["Medication", "MedicationAdministration", "MedicationStatement"]
)
def test_the_new_reads_are_answered_by_the_server(
    fhir_server: LoadedServer, resource_type: str
) -> None:
    """The queries the service sends for them, straight to the server: the chart comes back."""
    server = fhir_server.server
    name, query = {
        "Medication": (
            "client-draft-medication-on-server",
            "Medication/client-draft-medication-on-server-med",
        ),
        "MedicationAdministration": (
            "client-infliximab-administrations",
            "MedicationAdministration?patient=client-infliximab-administrations"
            "&_include=MedicationAdministration:medication&_count=200",
        ),
        "MedicationStatement": (
            "client-statement-active-anti-tnf",
            "MedicationStatement?patient=client-statement-active-anti-tnf"
            "&_include=MedicationStatement:medication&_count=200",
        ),
    }[resource_type]
    assert fhir_server.loaded[name].ok, fhir_server.loaded[name].message
    response = requests.get(
        f"{server.base_url}/{query}",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    found = (
        [body]
        if body["resourceType"] == resource_type
        else [e["resource"] for e in body.get("entry", [])]
    )
    patients = {
        str((r.get("subject") or {}).get("reference"))
        for r in found
        if r["resourceType"] == resource_type and resource_type != "Medication"
    }
    assert any(r["resourceType"] == resource_type for r in found)
    assert patients <= {f"Patient/{name}"}
