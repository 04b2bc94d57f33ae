"""The FHIR server for the fetch-path scenario: one given by URL, or one started locally.

``--fhir-server URL`` / ``BENCH_FHIR_SERVER`` points the benchmark at a running server. Otherwise
it starts the Medplum-based server of ``servers/medplum/`` or, with ``--local-fhir sekmet``,
SEKMET from ``servers/sekmet/.venv`` (in-memory, order simulator off: it would mutate the chart).
Either binds 127.0.0.1 on a free port. Both are installed by ``scripts/install-fhir-servers.sh``
(``make bench`` and ``make test`` run it first); nothing is installed here: a missing server is an
error that says how to install it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.processes import free_port, stop_process_group

HERE = Path(__file__).resolve().parent
MEDPLUM_DIR = HERE.parent / "servers" / "medplum"
MEDPLUM_NODE = MEDPLUM_DIR / "node_modules" / ".bin" / "node"
SEKMET_BIN = HERE.parent / "servers" / "sekmet" / ".venv" / "bin" / "sekmet"
SEKMET_VERSION = "0.1.1"  # servers/sekmet/requirements.txt
INSTALL_HINT = "run scripts/install-fhir-servers.sh (make bench and make test do)"
FHIR_JSON = "application/fhir+json"
TRANSACTION_ENTRIES = 50


@dataclass
class FhirServer:
    base_url: str
    name: str
    token: str | None = None
    process: subprocess.Popen[bytes] | None = None
    workdir: tempfile.TemporaryDirectory[str] | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Accept": FHIR_JSON}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def load(self, transaction: dict[str, Any]) -> None:
        """POST a transaction Bundle (PUT entries: stable ids, repeatable), in transactions of at
        most ``TRANSACTION_ENTRIES`` entries (Medplum refuses more than 50 updates in one)."""
        entries = transaction.get("entry", [])
        for start in range(0, len(entries), TRANSACTION_ENTRIES):
            self._post({**transaction, "entry": entries[start : start + TRANSACTION_ENTRIES]})

    def _post(self, transaction: dict[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 - a URL we were given or started
            self.base_url.rstrip("/"),
            data=json.dumps(transaction).encode("utf-8"),
            headers=self.headers() | {"Content-Type": FHIR_JSON},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            answer = json.loads(response.read())
        failed = [
            e["response"]["status"]
            for e in answer.get("entry", ())
            if not str(e.get("response", {}).get("status", "")).startswith(("200", "201"))
        ]
        if failed:
            raise RuntimeError(f"{self.name}: transaction entries failed: {failed[:5]}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)
            self.process = None
        if self.workdir is not None:
            self.workdir.cleanup()
            self.workdir = None


def given_server(url: str, token: str | None) -> FhirServer:
    return FhirServer(base_url=url.rstrip("/"), name=f"given: {url}", token=token)


class ServerNotInstalled(RuntimeError):
    """A local FHIR server the benchmark needs is not installed."""


def installed(executable: Path, name: str) -> Path:
    """``executable`` if it exists; otherwise :class:`ServerNotInstalled` saying how to fix it."""
    if not executable.exists():
        raise ServerNotInstalled(f"{name} is not installed ({executable} missing): {INSTALL_HINT}")
    return executable


def start_medplum(log_dir: Path) -> FhirServer:
    installed(MEDPLUM_NODE, "the Medplum FHIR server")
    port = free_port()
    token = "bench-token"  # noqa: S105 - a local throw-away server's token
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "FHIR_TOKEN": token,
        # one page for the whole chart: the yardstick is the slowest single query, not a page
        "MAX_COUNT": "1000",
    }
    log = (log_dir / "medplum.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - the project's own server
        [str(MEDPLUM_NODE), str(MEDPLUM_DIR / "server.cjs")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = FhirServer(
        f"http://127.0.0.1:{port}/fhir", "Medplum fhir-router (MemoryRepository)", token
    )
    server.process = process
    return _ready(server)


def start_sekmet(log_dir: Path) -> FhirServer:
    sekmet = installed(SEKMET_BIN, "the SEKMET FHIR server")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/fhir"
    workdir = tempfile.TemporaryDirectory(prefix="bench-sekmet-")
    settings = Path(workdir.name) / "settings.yaml"
    settings.write_text(
        json.dumps(  # JSON is YAML: no PyYAML needed here
            {
                "base_url": base_url,
                "host": "127.0.0.1",
                "port": port,
                "db_path": ":memory:",
                "simulator": {"enabled": False},
                "log_inbound": False,
            }
        ),
        encoding="utf-8",
    )
    log = (log_dir / "sekmet.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own venv's executable
        [str(sekmet), "serve", "--config", str(settings)],
        cwd=workdir.name,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = FhirServer(base_url, f"SEKMET {SEKMET_VERSION} (in-memory)")
    server.process, server.workdir = process, workdir
    return _ready(server)


def _ready(server: FhirServer) -> FhirServer:
    """The started server once it answers /metadata; stopped (and the error raised) otherwise."""
    try:
        _wait_ready(server, timeout_s=60)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: FhirServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}")
        try:
            request = urllib.request.Request(  # noqa: S310
                f"{server.base_url}/metadata", headers=server.headers()
            )
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not answer /metadata within {timeout_s} s")
