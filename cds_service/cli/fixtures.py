"""Load scenario charts (``<dir>/bundle.json`` transaction Bundles) into any FHIR R4 server.

Every entry is ``PUT <type>/<id>``, so loading is idempotent and ids stay stable: the same
request files work against a local test server, a demo server or a SMART sandbox. One
transaction per scenario; a server that rejects one (e.g. a strict validator meeting a
deliberately invalid resource) fails that scenario only.

With ``today`` (``aih-cds fixtures load --shift-to-today``) every chart is first moved in time so
its scenario's ``now`` is today (cds_service/common/date_shift.py, as the demo page does): a
client such as the CDS Hooks Sandbox, which evaluates on the real clock, then gets the golden
cards any day.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from cds_service.common.date_shift import days_between, shift_resources
from cds_service.common.fhirdates import parse_fhir_datetime
from cds_service.fhir.bundles import issue_text

BUNDLE_FILE = "bundle.json"
SCENARIO_FILE = "scenario.json"
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class LoadResult:
    scenario: str
    ok: bool
    message: str


def bundle_dirs(paths: Iterable[Path]) -> list[Path]:
    """Each path is a scenario directory (holds bundle.json) or a folder of them."""
    found: list[Path] = []
    for path in paths:
        if (path / BUNDLE_FILE).is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p.parent for p in path.glob(f"*/{BUNDLE_FILE}")))
        else:
            raise FileNotFoundError(f"{path}: neither a scenario directory nor a folder of them")
    return found


def load_fixtures(
    base_url: str,
    directories: Iterable[Path],
    bearer: str | None = None,
    session: requests.Session | None = None,
    today: datetime | None = None,
) -> Iterator[LoadResult]:
    """POST each directory's transaction Bundle to ``base_url``; one result per directory
    (each chart moved so its scenario's ``now`` is ``today``, when given)."""
    http = session or requests.Session()
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    for directory in directories:
        bundle = json.loads((directory / BUNDLE_FILE).read_text(encoding="utf-8"))
        if today is not None:
            bundle = shifted_bundle(bundle, directory, today)
        try:
            response = http.post(
                base_url.rstrip("/"), json=bundle, headers=headers, timeout=TIMEOUT_S
            )
        except requests.RequestException as exc:
            yield LoadResult(directory.name, False, f"no answer from {base_url}: {exc}")
            continue
        yield _judge(directory.name, len(bundle.get("entry") or ()), response)


def shifted_bundle(bundle: dict[str, Any], directory: Path, today: datetime) -> dict[str, Any]:
    """The transaction Bundle with its chart moved so the scenario's ``now`` is ``today``."""
    scenario = json.loads((directory / SCENARIO_FILE).read_text(encoding="utf-8"))
    now = parse_fhir_datetime(scenario.get("now"))
    if now is None:
        raise ValueError(f"{directory.name}/{SCENARIO_FILE}: no readable 'now' to shift from")
    entries = [e for e in bundle.get("entry") or () if isinstance(e, dict)]
    moved = shift_resources([e.get("resource") or {} for e in entries], days_between(now, today))
    return {**bundle, "entry": [{**e, "resource": r} for e, r in zip(entries, moved, strict=True)]}


def _judge(scenario: str, entries: int, response: requests.Response) -> LoadResult:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return LoadResult(scenario, False, f"HTTP {response.status_code}, body is not JSON")
    if response.status_code >= 400 or body.get("resourceType") == "OperationOutcome":
        return LoadResult(scenario, False, f"HTTP {response.status_code}: {issue_text(body)}")
    statuses = [
        str((entry.get("response") or {}).get("status", ""))
        for entry in body.get("entry") or ()
        if isinstance(entry, dict)
    ]
    failed = [s for s in statuses if not s.startswith("2")]
    if body.get("type") != "transaction-response" or len(statuses) != entries or failed:
        return LoadResult(
            scenario, False, f"unexpected transaction response (entry statuses {statuses})"
        )
    return LoadResult(scenario, True, f"{entries} resources")
