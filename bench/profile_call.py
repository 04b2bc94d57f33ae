"""Profile one hook call on the benchmark's large chart, in process (no network, no JWTs).

    .venv/bin/python -m bench.profile_call [--hook order-sign|patient-view] [--chart large|small]
                                           [--calls N] [--top N] [--output FILE.json]

Prints the median wall time of one call and the share of the calls' CPU time spent in each
stage (request parsing, the JSON limits, reading/checking resources, building the record, rules
and cards), measured with cProfile over ``--calls`` calls after a warm-up. ``--output`` keeps the
figures (the before/after profile of issue 16 is in bench/results/profile-*.json).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import statistics
import time
from pathlib import Path
from typing import Any

from bench.patients import hook_request, large_patient, small_patient, today
from cds_service import create_app

SERVICES = {"order-sign": "aih-order-sign", "patient-view": "aih-patient-view"}
# stage -> (module path fragment, function name): cumulative time of the outermost call
STAGES: dict[str, tuple[str, str]] = {
    "parse JSON": ("web/json_limits.py", "parse_json"),
    "JSON limits": ("web/json_limits.py", "check_limits"),
    "hook request model": ("hooks/protocol.py", "parse_hook_request"),
    "drafts": ("patient/record.py", "draft_orders"),
    "prefetch resolution": ("hooks/prefetch.py", "resolve"),
    # the record's reads: the proof of a resource valid as sent, else the full reading
    "reading resources (checks)": ("patient/record.py", "_read"),
    "building the record (incl. reading)": ("patient/record.py", "build"),
    "cards": ("config/cards.py", "render_card"),
    "card log": ("storage", "record"),
}


def _stage_seconds(stats: pstats.Stats) -> dict[str, float]:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    found: dict[str, float] = {}
    for stage, (fragment, name) in STAGES.items():
        total = 0.0
        for (filename, _line, function), (_cc, _nc, _tt, ct, _callers) in raw.items():
            if function == name and fragment in filename:
                total = max(total, ct)
        found[stage] = total
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_call")
    parser.add_argument("--hook", choices=sorted(SERVICES), default="order-sign")
    parser.add_argument("--chart", choices=["large", "small"], default="large")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    anchor = today()
    patient = large_patient(anchor) if args.chart == "large" else small_patient(anchor)
    body = json.dumps(hook_request(patient, SERVICES[args.hook])).encode()
    app = create_app(
        {
            "auth": False,
            "database_url": "sqlite://",
            "patient_hash_key": "bench",
            "log_level": "WARNING",
        }
    )
    client = app.test_client()
    url = f"/cds-services/{SERVICES[args.hook]}"
    headers = {"Content-Type": "application/json"}
    for _ in range(10):
        answer = client.post(url, data=body, headers=headers)
        if answer.status_code != 200 or not answer.get_json()["cards"]:
            raise SystemExit(f"no cards: {answer.status_code} {answer.get_data(as_text=True)}")
    gc.freeze()  # as the gunicorn configuration does before forking (ops/gunicorn_conf.py)
    times, cpu = [], []
    for _ in range(args.calls):
        start, start_cpu = time.perf_counter(), time.process_time()
        client.post(url, data=body, headers=headers)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.calls):
        client.post(url, data=body, headers=headers)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total: float = stats.total_tt  # type: ignore[attr-defined]
    stages = _stage_seconds(stats)
    median_ms = statistics.median(times) * 1000
    cpu_ms = statistics.median(cpu) * 1000  # CPU time: less disturbed by other processes
    print(
        f"{args.chart} {args.hook}: {len(body) / 1024:.0f} KiB, median {median_ms:.2f} ms "
        f"per call (min {min(times) * 1000:.2f}), median CPU {cpu_ms:.2f} ms, "
        f"over {args.calls} calls"
    )
    print("share of profiled time (cumulative, stages overlap where nested):")
    for stage, seconds in stages.items():
        share, per_call = 100 * seconds / total, 1000 * seconds / args.calls
        print(f"  {stage:38s} {share:5.1f} %  {per_call:6.2f} ms")
    stats.sort_stats("tottime").print_stats(args.top)
    if args.output:
        args.output.write_text(
            json.dumps(
                {
                    "chart": args.chart,
                    "hook": args.hook,
                    "body_kib": round(len(body) / 1024, 1),
                    "calls": args.calls,
                    "median_ms": round(median_ms, 2),
                    "min_ms": round(min(times) * 1000, 2),
                    "median_cpu_ms": round(cpu_ms, 2),
                    "function_calls_profiled": stats.total_calls,  # type: ignore[attr-defined]
                    "stage_share_pct": {k: round(100 * v / total, 1) for k, v in stages.items()},
                    "stage_ms_per_call_profiled": {
                        k: round(1000 * v / args.calls, 2) for k, v in stages.items()
                    },
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
