"""``aih-cds demo``: each demo patient's hook request with prefetch, then without (the service
reads the chart from a FHIR server), and the cards printed readably.

By default the requests run in-process with the clock pinned to each scenario's ``now``, so the
answers are the documented ones; ``--service-url`` sends them to a running service instead (its
own clock: charts dated around a past ``now`` may then give other cards).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from cds_service import create_app
from cds_service.cli.card_text import format_cards

SCENARIO_FILE = "scenario.json"
REQUEST_FILE = "request.json"

Caller = Callable[[str, dict[str, Any], datetime], tuple[int, dict[str, Any]]]


def without_prefetch(request: dict[str, Any], fhir_server: str, token: str) -> dict[str, Any]:
    """The same hook request as an EHR that sends no prefetch: fhirServer plus a bearer token."""
    body = {k: v for k, v in request.items() if k != "prefetch"}
    body["fhirServer"] = fhir_server
    body["fhirAuthorization"] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Patient.read patient/Observation.read patient/MedicationRequest.read "
        "patient/Condition.read patient/Medication.read",
        "subject": "aih-cds-demo",
        "patient": request["context"]["patientId"],
    }
    return body


def scenario_dirs(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if (path / SCENARIO_FILE).is_file():
            found.append(path)
        else:
            found.extend(sorted(p.parent for p in path.glob(f"*/{SCENARIO_FILE}")))
    return [d for d in found if (d / REQUEST_FILE).is_file()]


def in_process_caller() -> Caller:
    """One app whose clock is set to each scenario's pinned instant before the call."""
    instant: list[datetime] = []
    app = create_app({"auth": False, "database_url": "sqlite://", "clock": lambda: instant[-1]})
    client = app.test_client()

    def call(service: str, body: dict[str, Any], now: datetime) -> tuple[int, dict[str, Any]]:
        instant.append(now)
        response = client.post(f"/cds-services/{service}", json=body)
        return response.status_code, response.get_json()

    return call


def http_caller(service_url: str) -> Caller:
    def call(service: str, body: dict[str, Any], _now: datetime) -> tuple[int, dict[str, Any]]:
        url = f"{service_url.rstrip('/')}/cds-services/{service}"
        response = requests.post(url, json=body, timeout=30)
        return response.status_code, response.json()

    return call


def run_demo(
    directories: list[Path],
    call: Caller,
    fhir_server: str | None,
    token: str,
    show: Callable[[str], None] = print,
) -> tuple[int, int]:
    """Print every scenario's cards; (scenarios whose two answers differ, scenarios compared).
    A scenario marked ``prefetch_only`` is about a request without fhirServer: not compared."""
    differing = compared = 0
    for directory in directories:
        scenario = json.loads((directory / SCENARIO_FILE).read_text(encoding="utf-8"))
        request = json.loads((directory / REQUEST_FILE).read_text(encoding="utf-8"))
        now = datetime.fromisoformat(scenario["now"].replace("Z", "+00:00"))
        service = scenario["service"]
        show(f"=== {directory.name} ({service}): {scenario.get('description', '')}")
        status, prefetched = call(service, request, now)
        show(f"--- with prefetch (HTTP {status})")
        show(_readable(status, prefetched))
        if fhir_server is None:
            show("")
            continue
        if scenario.get("prefetch_only"):
            show(f"--- without prefetch: not compared ({scenario['prefetch_only']})\n")
            continue
        compared += 1
        status, fetched = call(service, without_prefetch(request, fhir_server, token), now)
        show(f"--- without prefetch, read from {fhir_server} (HTTP {status})")
        if _comparable(fetched) == _comparable(prefetched):
            show("same cards as with prefetch\n")
        else:
            differing += 1
            show(_readable(status, fetched) + "\n")
    return differing, compared


def _readable(status: int, body: dict[str, Any]) -> str:
    if status == 200:
        return format_cards(body["cards"])
    return json.dumps(body, indent=2, ensure_ascii=False)


def _comparable(body: Any) -> Any:
    """The response without the per-call uuids."""
    if isinstance(body, dict):
        return {k: _comparable(v) for k, v in body.items() if k != "uuid"}
    if isinstance(body, list):
        return [_comparable(v) for v in body]
    return body
