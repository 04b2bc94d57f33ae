"""Print how long the fast validity proof (cds_service/fhir/fastcheck.py) takes on the large
benchmark chart, and whether the compiled (mypyc) or the pure-Python module ran:

    .venv/bin/python -m bench.fastcheck [--rounds N]       # compiled when built (make compiled)
    AIH_CDS_COMPILE=0 .venv/bin/python -m bench.fastcheck  # the pure-Python module

One round proves every resource of the chart and the draft once (values already remembered, as
in a warm worker); the median CPU time of a round is printed, no profiler involved.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.patients import large_patient, today
from cds_service.common import compiled
from cds_service.fhir import fastcheck
from cds_service.fhir.validation import model_for


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fastcheck")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    patient = large_patient(today())
    pairs = [(model_for(r["resourceType"]), r) for r in [*patient.resources, patient.draft]]
    proven = sum(fastcheck.proven_valid(model, resource) for model, resource in pairs)
    rounds = []
    for _ in range(args.rounds):
        start = time.process_time()
        for model, resource in pairs:
            fastcheck.proven_valid(model, resource)
        rounds.append(time.process_time() - start)
    form = compiled.status().get(fastcheck.__name__, "pure Python")
    print(
        f"fastcheck ({form}): {len(pairs)} resources ({proven} proven), median CPU "
        f"{1000 * statistics.median(rounds):.2f} ms per round (min {1000 * min(rounds):.2f}), "
        f"{args.rounds} rounds"
    )


if __name__ == "__main__":
    main()
