"""Count the machine instructions one hook call executes, in process, under valgrind's callgrind:

    .venv/bin/python -m bench.instructions [--chart large|small] [--hook order-sign|patient-view]
                                           [--calls N]

Timings on a shared 2-core machine move by up to 2x between runs (docs/performance.md), so a
change of a few per cent cannot be seen in them. The number of instructions a call executes does
not depend on what else runs: compare it before and after a change (two checkouts, same command).

The service starts under valgrind (about a minute: it runs ~50x slower there) and answers a few
warm-up calls; only the ``--calls`` measured calls are counted (callgrind collects inside
``sys.call_tracing``, which nothing else calls). Prints the instructions per call. Needs valgrind
(Debian package ``valgrind``); exit 2 without it.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.patients import hook_request, large_patient, small_patient, today
from cds_service import create_app

SERVICES = {"order-sign": "aih-order-sign", "patient-view": "aih-patient-view"}
WARM_UP_CALLS = 5
# the C function whose invocations callgrind counts: the measured calls run inside it
COLLECTED_FUNCTION = "sys_call_tracing"
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    parser.add_argument("--chart", choices=["large", "small"], default="large")
    parser.add_argument("--hook", choices=sorted(SERVICES), default="order-sign")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _measured_calls(args.chart, args.hook, args.calls)
        return
    per_call = instructions_per_call(args.chart, args.hook, args.calls)
    print(
        f"{args.chart} {args.hook}: {per_call:,} instructions per call "
        f"(callgrind, {args.calls} calls after {WARM_UP_CALLS} warm-up calls)"
    )


def instructions_per_call(chart: str, hook: str, calls: int) -> int:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        raise SystemExit(2)
    command = [
        valgrind,
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        "--collect-atstart=no",
        f"--toggle-collect={COLLECTED_FUNCTION}",
        sys.executable,
        "-m",
        "bench.instructions",
        "--child",
        f"--chart={chart}",
        f"--hook={hook}",
        f"--calls={calls}",
    ]
    # valgrind from PATH and our own interpreter and module: no outside input in the command
    done = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, check=False, timeout=1800
    )
    return parse_collected(done.stderr, done.returncode) // calls


def parse_collected(valgrind_output: str, returncode: int) -> int:
    """The instructions callgrind collected, from its summary on stderr."""
    found = _COLLECTED.search(valgrind_output)
    if returncode != 0 or found is None:
        raise RuntimeError(f"callgrind failed (exit {returncode}): {valgrind_output[-2000:]}")
    return int(found.group(1))


def _measured_calls(chart: str, hook: str, calls: int) -> None:
    anchor = today()
    patient = large_patient(anchor) if chart == "large" else small_patient(anchor)
    body = json.dumps(hook_request(patient, SERVICES[hook])).encode()
    with tempfile.TemporaryDirectory() as scratch:
        app = create_app(
            {
                "auth": False,
                "database_url": f"sqlite:///{Path(scratch) / 'card-log.db'}",
                "patient_hash_key": "bench",
                "log_level": "WARNING",
            }
        )
        client = app.test_client()
        url = f"/cds-services/{SERVICES[hook]}"
        headers = {"Content-Type": "application/json"}

        def call() -> None:
            answer = client.post(url, data=body, headers=headers)
            if answer.status_code != 200 or not answer.get_json()["cards"]:
                raise SystemExit(f"no cards: {answer.status_code}")

        for _ in range(WARM_UP_CALLS):
            call()
        gc.freeze()  # as the gunicorn configuration does before forking
        for _ in range(calls):
            sys.call_tracing(call, ())


if __name__ == "__main__":
    main()
