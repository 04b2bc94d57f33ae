"""Hook latency on the fetch path (no prefetch) against each real FHIR server; prints figures.

    .venv/bin/python -m bench.fetch_path [--calls 300]

Starts Medplum and SEKMET on free loopback ports (as the integration tests do), loads the golden
scenarios, then times complete hook calls (in-process Flask client, real HTTP to the FHIR server,
clock pinned per scenario) cycling through every loadable scenario. Prefetch timing is printed
as the baseline. Figures, not assertions: this is not part of the test suite.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from cds_service.cli.demo_run import in_process_caller, scenario_dirs, without_prefetch
from cds_service.cli.fixtures import bundle_dirs, load_fixtures
from tests.integration.fhir.servers import START, stop

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"
TOKEN = "bench-token"  # noqa: S105 - a throwaway token for a loopback test server


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):6.1f} ms  p99 {p99:6.1f} ms  (n={len(ordered)})"


def timed_calls(calls: int, requests: list[tuple[str, dict[str, Any], datetime]]) -> list[float]:
    call = in_process_caller()
    for service, body, now in requests:  # warm-up: models, connection pool
        call(service, body, now)
    samples = []
    for service, body, now in itertools.islice(itertools.cycle(requests), calls):
        start = time.perf_counter()
        status, _ = call(service, body, now)
        samples.append((time.perf_counter() - start) * 1000)
        if status != 200:
            raise SystemExit(f"unexpected HTTP {status}")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    scenarios = []
    for directory in scenario_dirs([GOLDEN]):
        scenario = json.loads((directory / "scenario.json").read_text(encoding="utf-8"))
        request = json.loads((directory / "request.json").read_text(encoding="utf-8"))
        now = datetime.fromisoformat(scenario["now"].replace("Z", "+00:00"))
        scenarios.append((directory.name, scenario["service"], request, now))
    prefetch = [(service, request, now) for _, service, request, now in scenarios]
    print(f"with prefetch (baseline):  {percentiles(timed_calls(args.calls, prefetch))}")
    for name in sorted(START):
        with tempfile.TemporaryDirectory() as workdir:
            server = START[name](Path(workdir), TOKEN)
            try:
                loaded = {
                    r.scenario
                    for r in load_fixtures(server.base_url, bundle_dirs([GOLDEN]), TOKEN)
                    if r.ok
                }
                fetch = [
                    (service, without_prefetch(request, server.base_url, TOKEN), now)
                    for scenario, service, request, now in scenarios
                    if scenario in loaded
                ]
                print(f"no prefetch, {name:8s}:   {percentiles(timed_calls(args.calls, fetch))}")
            finally:
                stop(server)


if __name__ == "__main__":
    main()
