"""Rough latency and memory of one order-sign call with prefetch under real gunicorn (2 workers).

Not a benchmark (that is its own issue): one client, sequential, first 50 calls discarded.
Run from the repository root: .venv/bin/python -m bench.hook_latency
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import factories as f  # noqa: E402
from tests.integration.ports import free_port  # noqa: E402

CALLS, WARM_UP = 300, 50


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    port, tmp = free_port(), tempfile.mkdtemp()
    env = {
        **os.environ,
        "CDS_AUTH": "off",
        "CDS_DATABASE_URL": f"sqlite:///{tmp}/cards.sqlite",
        "CDS_BIND": f"127.0.0.1:{port}",
        "CDS_PATIENT_HASH_KEY": "measure",
        "CDS_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": f"{tmp}/metrics",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"],
        cwd=REPO,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(f"{base}/healthz", timeout=10)
                break
            except requests.RequestException:
                time.sleep(0.2)
        body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
        session, times = requests.Session(), []
        for _ in range(CALLS):
            started = time.perf_counter()
            response = session.post(f"{base}/cds-services/aih-order-sign", json=body, timeout=10)
            times.append(time.perf_counter() - started)
            response.raise_for_status()
        kept = sorted(times[WARM_UP:])
        print(
            f"{len(kept)} calls, one client: p50 {statistics.median(kept) * 1000:.1f} ms, "
            f"p95 {kept[int(len(kept) * 0.95)] * 1000:.1f} ms, "
            f"p99 {kept[int(len(kept) * 0.99)] * 1000:.1f} ms"
        )
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        for child in children:
            print(f"worker {child}: {rss_mib(int(child)):.0f} MiB resident")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
