"""bench/run.py: which wrk runs the benchmark makes, and for how long."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from bench.fhir_server import FhirServer
from bench.patients import large_patient, today
from bench.run import FETCH_PATH_DURATION_FACTOR, Plan, Service, load_jobs


def test_fetch_path_runs_last_long_enough_for_a_meaningful_p99() -> None:
    plan = Plan(duration_s=3, connections=(1, 8), workers=2, rounds=3)
    bodies = {
        "large order-sign": Path("large-order-sign.json"),
        "fetch patient-view": Path("fetch.json"),
    }
    service = cast(Service, type("S", (), {"base_url": "http://127.0.0.1:1"})())
    fhir = FhirServer(base_url="http://127.0.0.1:2", name="stand-in")
    jobs = load_jobs(plan, bodies, service, fhir, large_patient(today()))
    factors: dict[tuple[str, str], set[int]] = {}
    for job in jobs:
        factors.setdefault((job.scenario, job.endpoint), set()).add(job.duration_factor)
    assert factors[("fetch patient-view", "service")] == {FETCH_PATH_DURATION_FACTOR}
    assert FETCH_PATH_DURATION_FACTOR > 1
    others: set[Any] = set().union(
        *(f for key, f in factors.items() if key != ("fetch patient-view", "service"))
    )
    assert others == {1}
