"""Tail latency of the worker models side by side: threads without the CPU gate, threads with
it, one thread per worker (sync).

    .venv/bin/python -m bench.worker_models [--rounds 2] [--duration 5] [--connections 8]
                                            [--chart large small]

Each model (threads without the gate; threads with it at Python's 5 ms GIL switch interval
and at the shipped 1 ms, CDS_GIL_SWITCH_MS; sync) is started in turn under gunicorn (the
shipped configuration, 2 workers, the same settings as ``python -m bench``) and loaded with wrk
on the large and/or small chart (``--chart``; order-sign and patient-view, full prefetch); the
models are interleaved round by round so that the load of a shared machine falls on all of
them alike. Prints p50, p99 and p99/p50 of every run; judges nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.patients import hook_request, large_patient, small_patient, today
from bench.processes import stop_process_group
from bench.run import LOG_DIR, SERVICES, call, require_wrk, start_service, wrk


@dataclass(frozen=True)
class Model:
    name: str
    env: dict[str, str]
    worker_class: str | None = None


CHARTS = {"large": large_patient, "small": small_patient}
MODELS = (
    Model("gthread 4 threads, no gate", {"CDS_THREADS": "4", "CDS_CPU_GATE": "off"}),
    Model(
        "gthread 16 threads, CPU gate, 5 ms GIL switch",
        {"CDS_THREADS": "16", "CDS_CPU_GATE": "on", "CDS_GIL_SWITCH_MS": "5"},
    ),
    Model("gthread 16 threads, CPU gate (shipped: 1 ms switch)", {"CDS_THREADS": "16"}),
    Model("sync (CDS_THREADS=1)", {"CDS_THREADS": "1"}, "sync"),
)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """start_service passes this process's environment on to gunicorn."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def measure(
    model: Model, bodies: dict[str, Path], workdir: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    wrk_path = require_wrk()
    with environment(model.env):
        service = start_service(workdir, LOG_DIR, args.workers, model.worker_class)
    rows = []
    try:
        for hook, body in bodies.items():
            url = f"{service.base_url}/cds-services/{SERVICES[hook.split()[-1]]}"
            call(url, body)  # answers 200 (else BenchError)
            wrk(wrk_path, url, args.connections, 1, workdir, body=body)  # warm-up, not kept
            result = wrk(wrk_path, url, args.connections, args.duration, workdir, body=body)
            latency = result["latency_us"]
            rows.append(
                {
                    "model": model.name,
                    "scenario": hook,
                    "connections": args.connections,
                    "requests_per_s": round(result["requests"] / result["duration_us"] * 1e6, 1),
                    "p50_ms": round(latency["p50"] / 1000, 1),
                    "p99_ms": round(latency["p99"] / 1000, 1),
                    "p99_over_p50": round(latency["p99"] / max(latency["p50"], 1), 2),
                    "errors": sum(result["errors"].values()),
                }
            )
    finally:
        stop_process_group(service.process)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_models")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chart", choices=sorted(CHARTS), nargs="+", default=["large"])
    parser.add_argument("--output", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aih-bench-models-") as tmp:
        workdir = Path(tmp)
        bodies = {}
        for chart in args.chart:
            patient = CHARTS[chart](today())
            for hook, service_id in SERVICES.items():
                bodies[f"{chart} {hook}"] = workdir / f"{chart}-{hook}.json"
                bodies[f"{chart} {hook}"].write_text(json.dumps(hook_request(patient, service_id)))
        print("round | model | scenario | req/s | p50 ms | p99 ms | p99/p50 | errors")
        for round_number in range(1, args.rounds + 1):
            for model in MODELS:
                for row in measure(model, bodies, workdir, args):
                    rows.append({"round": round_number, **row})
                    print(
                        f"{round_number} | {row['model']} | {row['scenario']} | "
                        f"{row['requests_per_s']} | {row['p50_ms']} | {row['p99_ms']} | "
                        f"{row['p99_over_p50']} | {row['errors']}",
                        flush=True,
                    )
    if args.output:
        args.output.write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if any(row["errors"] for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
