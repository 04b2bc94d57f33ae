"""Start and stop the two real FHIR R4 servers installed by scripts/install-fhir-servers.sh.

Each runs as its own process group on 127.0.0.1 and a free port, with a static bearer token, and
is stopped by PID. Nothing is written outside the given work directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.conftest import REPO
from tests.integration.ports import free_port

SERVERS = REPO / "servers"
MEDPLUM_DIR = SERVERS / "medplum"
MEDPLUM_NODE = MEDPLUM_DIR / "node_modules" / ".bin" / "node"
SEKMET_BIN = SERVERS / "sekmet" / ".venv" / "bin" / "sekmet"
STARTUP_TIMEOUT_S = 90.0  # cold start on a busy 2-core CI box; usually 1-5 s
INSTALL_HINT = "run scripts/install-fhir-servers.sh (make test does)"


@dataclass
class RunningServer:
    name: str
    base_url: str
    token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    request_log: Path | None = None  # one "METHOD url auth|no-auth" line per request (Medplum)

    def requests_seen(self) -> list[str]:
        if self.request_log is None or not self.request_log.exists():
            return []
        return self.request_log.read_text(encoding="utf-8").splitlines()


def start_medplum(workdir: Path, token: str) -> RunningServer:
    if not MEDPLUM_NODE.exists():
        raise RuntimeError(f"Medplum adapter not installed: {INSTALL_HINT}")
    port = free_port()
    request_log = workdir / "medplum-requests.log"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "FHIR_TOKEN": token,
        "REQUEST_LOG": str(request_log),
    }
    return _launch(
        "medplum",
        [str(MEDPLUM_NODE), str(MEDPLUM_DIR / "server.cjs")],
        port=port,
        token=token,
        workdir=workdir,
        env=env,
        request_log=request_log,
    )


def start_sekmet(workdir: Path, token: str) -> RunningServer:
    if not SEKMET_BIN.exists():
        raise RuntimeError(f"SEKMET not installed: {INSTALL_HINT}")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/fhir"
    config = workdir / "sekmet-settings.yaml"
    # host: its default is 0.0.0.0. simulator: its default acts on MedicationRequests after 2 s.
    config.write_text(
        f"base_url: {base_url}\n"
        f"host: 127.0.0.1\nport: {port}\n"
        "db_path: ':memory:'\n"
        f"data_dir: {workdir / 'sekmet-data'}\n"
        "simulator: {enabled: false}\n"
        f"server_auth: {{types: [bearer], tokens: [{token}]}}\n"
        "log_inbound: false\n",
        encoding="utf-8",
    )
    env = {"PATH": os.environ.get("PATH", ""), "SEKMET_CONFIG": str(config)}
    command = [str(SEKMET_BIN), "serve", "--config", str(config)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    return _launch(
        "sekmet", command, port=port, token=token, workdir=workdir, env=env, request_log=None
    )


START = {"medplum": start_medplum, "sekmet": start_sekmet}


def _launch(
    name: str,
    command: list[str],
    *,
    port: int,
    token: str,
    workdir: Path,
    env: dict[str, str],
    request_log: Path | None,
) -> RunningServer:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed command built from repository paths
            command,
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningServer(
        name, f"http://127.0.0.1:{port}/fhir", token, process, log_path, request_log
    )
    try:
        wait_for_metadata(server)
    except Exception:
        stop(server)
        raise
    return server


def wait_for_metadata(server: RunningServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode}: "
                + server.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            )
        try:
            response = requests.get(f"{server.base_url}/metadata", timeout=2)
            if response.status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} did not answer /metadata within {STARTUP_TIMEOUT_S} s")


def stop(server: RunningServer) -> None:
    """Terminate the server's process group by its PID; kill it if it does not exit."""
    if server.process.poll() is not None:
        return
    os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
