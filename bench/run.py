"""Load benchmark: the service under gunicorn against its own ceiling, in one run.

    .venv/bin/python -m bench                # full run: bench/results/latest.json + table
    .venv/bin/python -m bench --quick        # a few seconds; fails only if the service errors
    .venv/bin/python -m bench --fhir-server http://127.0.0.1:PORT/fhir [--fhir-token T]

Exit status: 0 when every request got a 2xx answer and the sanity checks passed, 1 otherwise.
Timings are recorded, never judged here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.docs_tables import regenerate
from bench.fhir_server import FhirServer, given_server, start_medplum, start_sekmet
from bench.patients import (
    Patient,
    hook_request,
    large_patient,
    prefetch_queries,
    small_patient,
    today,
)
from bench.processes import children, free_port, rss_mb, stop_process_group
from bench.report import print_table, summarise
from cds_service.common.settings import Settings

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHIPPED_GUNICORN_CONF = REPO / "deploy" / "gunicorn.conf.py"
WRK_SCRIPT = HERE / "report.lua"
DEFAULT_OUTPUT = HERE / "results" / "latest.json"
LOG_DIR = HERE / "results" / "logs"  # gunicorn and FHIR server logs of the last run (not committed)
SERVICES = {"order-sign": "aih-order-sign", "patient-view": "aih-patient-view"}
# The fetch path answers ~25 calls/s at 8 connections: in a 3 s run its "p99" would be the single
# slowest of ~75 calls. Its runs last this many times longer, for ~300 calls per run.
FETCH_PATH_DURATION_FACTOR = 4


class BenchError(RuntimeError):
    """The service (or the set-up) failed: the benchmark exits 1."""


@dataclass(frozen=True)
class Plan:
    duration_s: int
    connections: tuple[int, ...]
    workers: int
    rounds: int  # each run repeated; the report keeps the median by requests/s

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        if args.quick:
            return cls(1, (8,), args.workers, 1)
        return cls(args.duration, tuple(args.connections), args.workers, args.rounds)


@dataclass(frozen=True)
class Job:
    """One wrk run: a scenario against one endpoint at one connection count."""

    scenario: str
    endpoint: str
    connections: int
    url: str
    body: Path | None = None
    headers: dict[str, str] | None = None
    duration_factor: int = 1  # of the plan's seconds per run

    def labels(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "endpoint": self.endpoint,
            "connections": self.connections,
        }


def load_jobs(
    plan: Plan, bodies: dict[str, Path], service: Service, fhir: FhirServer, patient: Patient
) -> list[Job]:
    """Service, ceiling and fast ceiling on each body; the fetch path; each FHIR query alone."""
    jobs: list[Job] = []
    queries = prefetch_queries(patient, SERVICES["patient-view"])
    for connections in plan.connections:
        for name, body in bodies.items():
            path = f"/cds-services/{SERVICES[name.split()[-1]]}"
            factor = FETCH_PATH_DURATION_FACTOR if name.startswith("fetch") else 1
            url = service.base_url + path
            jobs.append(Job(name, "service", connections, url, body, duration_factor=factor))
            if not name.startswith("fetch"):
                echo = service.base_url + "/bench/echo"  # json.loads: the ceiling
                jobs.append(Job(name, "echo", connections, echo, body))
                jobs.append(Job(name, "echo-fast", connections, echo + "?parser=service", body))
        jobs.extend(
            Job(
                f"fhir query {key}",
                "fhir",
                connections,
                f"{fhir.base_url}/{query}",
                headers=fhir.headers(),
            )
            for key, query in queries.items()
        )
    return jobs


# ---------------------------------------------------------------- tools


def require_wrk() -> str:
    """wrk from Debian, installed by scripts/install-bench-deps.sh (make bench and make test
    run it first); never installed from here."""
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk is not installed: run scripts/install-bench-deps.sh")
    return found


def gunicorn_config() -> Path:
    return SHIPPED_GUNICORN_CONF


def _threads() -> int:
    return int(os.environ.get("CDS_THREADS") or Settings().threads)


def shipped_worker_class() -> str:
    """What deploy/gunicorn.conf.py chooses for the thread count the service is started with."""
    return "sync" if _threads() == 1 else "gthread"


# ---------------------------------------------------------------- the service


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    base_url: str
    cold_start_s: float

    def worker_rss_mb(self) -> list[float]:
        return [m for pid in children(self.process.pid) if (m := rss_mb(pid)) is not None]


def start_service(
    workdir: Path, log_dir: Path, workers: int, worker_class: str | None = None
) -> Service:
    port = free_port()
    env = os.environ | {
        "CDS_AUTH": "off",  # JWT checks cost ~0.1-0.9 ms; the benchmark measures the hook itself
        "CDS_BENCH_ECHO": "on",
        "CDS_DEMO": "off",  # as in production (development mode would serve the demo page)
        "CDS_DATABASE_URL": f"sqlite:///{workdir / 'card-log.sqlite'}",
        "CDS_PATIENT_HASH_KEY": "bench",
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(gunicorn_config()),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        *(["--worker-class", worker_class] if worker_class else []),
        *_without_control_socket(),
        "cds_service:create_app()",
    ]
    log = (log_dir / "gunicorn.log").open("wb")
    started = time.monotonic()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter
        command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = started + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"gunicorn exited with {process.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=1) as answer:  # noqa: S310
                if answer.status == 200:
                    return Service(process, base_url, round(time.monotonic() - started, 3))
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.01)
    stop_process_group(process)
    raise BenchError("the service did not become ready within 60 s")


def _without_control_socket() -> list[str]:
    """gunicorn >= 25 opens a control socket at one fixed path per user: another gunicorn on the
    machine (a parallel test run) would share it. The benchmark needs none."""
    from gunicorn import config  # noqa: PLC0415 - only the benchmark's parent process needs it

    known = {setting.name for setting in config.KNOWN_SETTINGS}
    return ["--no-control-socket"] if "control_socket_disable" in known else []


def call(url: str, body_path: Path) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - loopback URL we started
        url, data=body_path.read_bytes(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            payload: dict[str, Any] = json.loads(answer.read())
            return payload
    except urllib.error.HTTPError as exc:
        raise BenchError(f"{url}: HTTP {exc.code}: {exc.read()[:500]!r}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise BenchError(f"{url}: {exc}; see the logs in {LOG_DIR}") from exc


# ---------------------------------------------------------------- load


def wrk(
    wrk_path: str,
    url: str,
    connections: int,
    duration_s: int,
    workdir: Path,
    *,
    body: Path | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    report = workdir / "wrk-report.json"
    report.unlink(missing_ok=True)
    env = os.environ | {
        "BENCH_BODY": str(body or ""),
        "BENCH_HEADERS": "|".join(f"{k}: {v}" for k, v in (headers or {}).items()),
        "BENCH_REPORT": str(report),
    }
    command = [
        wrk_path,
        "-t1",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=duration_s + 60)  # noqa: S603
    raw: dict[str, Any] = json.loads(report.read_text())
    return raw


# ---------------------------------------------------------------- the run


def write_bodies(workdir: Path, patients: Sequence[Patient], fhir: FhirServer) -> dict[str, Path]:
    bodies: dict[str, Path] = {}
    for patient in patients:
        for hook, service_id in SERVICES.items():
            path = workdir / f"{patient.id}-{hook}.json"
            path.write_text(json.dumps(hook_request(patient, service_id)), encoding="utf-8")
            bodies[f"{patient.id.removeprefix('bench-')} {hook}"] = path
    fetch = hook_request(patients[0], SERVICES["patient-view"], fhir_server=fhir.base_url)
    if fhir.token:
        fetch["fhirAuthorization"] = {
            "access_token": fhir.token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "patient/*.read",
            "subject": "bench",
        }
    path = workdir / "fetch-patient-view.json"
    path.write_text(json.dumps(fetch), encoding="utf-8")
    bodies["fetch patient-view"] = path
    return bodies


def sanity(service: Service, bodies: dict[str, Path]) -> dict[str, list[str]]:
    """One call per scenario: every one must answer 200 with the cards its rules produce."""
    cards: dict[str, list[str]] = {}
    for name, path in bodies.items():
        hook = name.split()[-1]
        payload = call(f"{service.base_url}/cds-services/{SERVICES[hook]}", path)
        cards[name] = [
            f"{c['indicator']}: {c['source']['topic']['code']}" for c in payload.get("cards", [])
        ]
        if not cards[name]:
            raise BenchError(f"{name}: no card; the rules did not run on the benchmark patient")
        echo = call(f"{service.base_url}/bench/echo", path)
        if echo != {"cards": []}:
            raise BenchError(f"/bench/echo answered {echo!r}")
    return cards


def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = Plan.from_args(args)
    wrk_path = require_wrk()
    anchor = today()
    patients = [large_patient(anchor), small_patient(anchor)]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aih-bench-") as tmp:
        workdir = Path(tmp)
        fhir_url = args.fhir_server or os.environ.get("BENCH_FHIR_SERVER")
        token = args.fhir_token or os.environ.get("BENCH_FHIR_TOKEN")
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        local = start_sekmet if args.local_fhir == "sekmet" else start_medplum
        fhir = given_server(fhir_url, token) if fhir_url else local(LOG_DIR)
        try:
            fhir.load(patients[0].transaction())
            bodies = write_bodies(workdir, patients, fhir)
            body_bytes = {name: path.stat().st_size for name, path in bodies.items()}
            service = start_service(workdir, LOG_DIR, plan.workers, args.worker_class)
            try:
                cards = sanity(service, bodies)
                jobs = load_jobs(plan, bodies, service, fhir, patients[0])
                for round_number in range(plan.rounds):  # interleaved: bursts hit all alike
                    for job in jobs:
                        result = wrk(
                            wrk_path,
                            job.url,
                            job.connections,
                            plan.duration_s * job.duration_factor,
                            workdir,
                            body=job.body,
                            headers=job.headers,
                        )
                        runs.append(job.labels() | {"round": round_number} | result)
                worker_rss = service.worker_rss_mb()
                cold_start = service.cold_start_s
            finally:
                stop_process_group(service.process)
        finally:
            fhir.stop()
    return summarise(
        runs,
        meta={
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": "quick" if args.quick else "full",
            "duration_s_per_run": plan.duration_s,
            "fetch_path_duration_s_per_run": plan.duration_s * FETCH_PATH_DURATION_FACTOR,
            "rounds": plan.rounds,
            "gunicorn_config": str(gunicorn_config().relative_to(REPO)),
            "gunicorn_workers": plan.workers,
            "gunicorn_worker_class": args.worker_class or shipped_worker_class(),
            "gunicorn_threads": _threads(),
            "fhir_server": fhir.name,
            "anchor_date": anchor.isoformat(),
            "patients": {
                p.id: {t: p.count(t) for t in ("Observation", "MedicationRequest", "Condition")}
                | {"total": len(p.resources)}
                for p in patients
            },
            "body_bytes": body_bytes,
            "cards": cards,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average_at_end": list(os.getloadavg()),
            },
        },
        worker_rss_mb=worker_rss,
        cold_start_s=cold_start,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per run, 8 connections only")
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run (full mode)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="repeat every run (full mode); median kept"
    )
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (issue: 2)")
    parser.add_argument("--worker-class", help="override the configuration's (sync, gthread)")
    parser.add_argument(
        "--local-fhir",
        choices=["medplum", "sekmet"],
        default="medplum",
        help="the FHIR server started when none is given (default: medplum)",
    )
    parser.add_argument(
        "--fhir-server", help="FHIR base URL (default: $BENCH_FHIR_SERVER, else a local one)"
    )
    parser.add_argument("--fhir-token", help="bearer token for it (default: $BENCH_FHIR_TOKEN)")
    parser.add_argument(
        "--output", type=Path, help="results file (default: results/latest.json; quick: none)"
    )
    args = parser.parse_args(argv)
    try:
        results = run(args)
    except (BenchError, subprocess.CalledProcessError, RuntimeError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print_table(results)
    output = args.output or (None if args.quick else DEFAULT_OUTPUT)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwritten: {output}")
        if output == DEFAULT_OUTPUT and not results["errors"]:
            for path in regenerate(results):  # the README's and docs' tables come from the run
                print(f"written: {path.relative_to(REPO)}")
    if results["errors"]:
        print(
            f"benchmark failed: the service answered errors: {results['errors']}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
