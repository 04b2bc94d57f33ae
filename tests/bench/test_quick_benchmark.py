"""The quick load benchmark runs in CI. It fails only if the service errors, never on timings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.fhir_server import MEDPLUM_NODE, ServerNotInstalled, installed
from tests.bench.modules import run_module


def require_prerequisites() -> None:
    """Fail (not install) when what ``make test`` installs first is missing."""
    try:
        installed(MEDPLUM_NODE, "the Medplum FHIR server")
    except ServerNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed: run scripts/install-bench-deps.sh (make test does)")


@pytest.mark.integration
def test_quick_benchmark_gets_an_answer_to_every_request(tmp_path: Path) -> None:
    require_prerequisites()
    output = tmp_path / "quick.json"
    run = run_module("bench", "--quick", "--output", str(output))
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    results = json.loads(output.read_text(encoding="utf-8"))
    assert results["errors"] == {}
    assert {s["scenario"] for s in results["scenarios"]} == {
        "large order-sign",
        "large patient-view",
        "small order-sign",
        "small patient-view",
    }
    for scenario in results["scenarios"]:
        assert scenario["service"]["requests"] > 0
        assert scenario["ceiling"]["requests"] > 0
    assert results["fetch_path"][0]["service"]["requests"] > 0
    # the rules really ran on the generated patients: the MMF draft and the ALT relapse give cards
    assert "warning: mmf-teratogenicity" in results["meta"]["cards"]["large order-sign"]
    assert "critical: anti-tnf-liver-injury" in results["meta"]["cards"]["large patient-view"]
    assert (
        results["meta"]["cards"]["fetch patient-view"]
        == (results["meta"]["cards"]["large patient-view"])
    )
