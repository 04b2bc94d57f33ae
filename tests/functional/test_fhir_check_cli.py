"""``aih-cds fhir check``: the strict R4B verdict is reported next to the service's reading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_service.cli.main import main

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"


def test_sandbox_request_is_reported_not_valid_yet_read(capsys: pytest.CaptureFixture[str]) -> None:
    request = GOLDEN / "client-sandbox-mmf-pregnant" / "request.json"
    assert main(["fhir", "check", str(request)]) == 1
    out = capsys.readouterr().out
    draft_line = next(line for line in out.splitlines() if "draft-mmf" in line)
    assert "strict R4B: list_type at category" in draft_line
    assert "category (one value read as an array)" in draft_line


def test_valid_file_exits_0_and_left_out_resources_say_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = GOLDEN / "tnf-alt-5x-critical" / "bundle.json"
    assert main(["fhir", "check", str(good)]) == 0
    bad = tmp_path / "obs.json"
    bad.write_text(
        json.dumps({"resourceType": "Observation", "id": "o", "status": "final", "code": "ALT"})
    )
    assert main(["fhir", "check", str(bad)]) == 1
    assert "left out (unusable code)" in capsys.readouterr().out
