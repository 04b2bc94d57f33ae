"""``aih-cds fixtures load --shift-to-today``: charts moved so the scenario's now is today."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cds_service.cli.fixtures import shifted_bundle
from cds_service.cli.main import main

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"
SCENARIO = GOLDEN / "client-infliximab-administrations"


def test_shifted_bundle_moves_every_chart_date_by_the_days_to_today() -> None:
    bundle = json.loads((SCENARIO / "bundle.json").read_text())
    today = datetime(2027, 1, 10, 15, 0, tzinfo=UTC)  # scenario now: 2026-06-01
    moved = shifted_bundle(bundle, SCENARIO, today)
    by_id = {e["resource"]["id"]: e["resource"] for e in moved["entry"]}
    original = {e["resource"]["id"]: e["resource"] for e in bundle["entry"]}
    alt = "client-infliximab-administrations-alt-3"
    assert original[alt]["effectiveDateTime"] == "2026-05-26T09:00:00Z"
    assert by_id[alt]["effectiveDateTime"] == "2027-01-04T09:00:00Z"  # still 6 days before now
    admin = "client-infliximab-administrations-ifx-admin-1"
    assert (
        by_id[admin]["effectivePeriod"]["start"] == "2026-10-04T09:30:00Z"
    )  # 223 days later, like now
    assert [e["request"] for e in moved["entry"]] == [e["request"] for e in bundle["entry"]]


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def post(self, url: str, json: dict[str, Any], **_: Any) -> Any:
        self.bodies.append(json)
        return Answer(json)


class Answer:
    status_code = 200

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.bundle = bundle

    def json(self) -> dict[str, Any]:
        entries = [{"response": {"status": "201 Created"}} for _ in self.bundle["entry"]]
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}


@pytest.mark.parametrize("shift", [True, False])
def test_cli_option_shifts_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], shift: bool
) -> None:
    recorder = Recorder()
    monkeypatch.setattr("cds_service.cli.fixtures.requests.Session", lambda: recorder)
    argv = ["fixtures", "load", "--fhir-server", "http://fhir.test/fhir", str(SCENARIO)]
    assert main([*argv, "--shift-to-today"] if shift else argv) == 0
    assert "1 of 1 scenarios loaded" in capsys.readouterr().out
    (sent,) = recorder.bodies
    dates = [e["resource"].get("effectiveDateTime") for e in sent["entry"]]
    assert ("2026-05-26T09:00:00Z" in dates) is not shift
