"""Every command that `make run` prints, and every command of the README, works against a
started service.

`scripts/run-demo.sh` (what `make run` runs once its ports are checked and its dependencies are
installed) is started on free ports; each command of its ready-to-paste block and each command of
the README's `sh` blocks then runs in bash (pipefail), with the README's default ports replaced by
the test's. `make run` and `make test` themselves are not run: the first is what this module
starts, the second is the suite this module belongs to. Each command is bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO
from tests.integration.ports import free_port

RUN_DEMO = str(REPO / "scripts" / "run-demo.sh")  # what `make run` runs after its checks
NODE = REPO / "servers" / "medplum" / "node_modules" / ".bin" / "node"
START_TIMEOUT_S = 180
COMMAND_TIMEOUT_S = 240
READY_MARKER = "Ready-to-paste requests once the service below is up:\n"
END_MARKER = "\nOther ports:"
needs_medplum = pytest.mark.skipif(
    not NODE.exists(), reason="Medplum not installed (scripts/install-fhir-servers.sh)"
)


@dataclass(frozen=True)
class DemoRun:
    port: int
    fhir_port: int
    output: str


def _environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    return env | values


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    tmp = tmp_path_factory.mktemp("demo-run")
    port, fhir_port = free_port(), free_port()
    log = tmp / "run-demo.log"
    env = _environment(
        PORT=str(port),
        FHIR_PORT=str(fhir_port),
        CDS_DATABASE_URL=f"sqlite:///{tmp / 'card-log.sqlite'}",
    )
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - the repository's own script
            [RUN_DEMO],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the script, Medplum and gunicorn stop together
        )
    try:
        _wait_until_ready(process, f"http://127.0.0.1:{port}/readyz", log)
        yield DemoRun(port, fhir_port, log.read_text(encoding="utf-8"))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"run-demo.sh exited with {process.returncode}:\n{log.read_text()}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"the service did not become ready:\n{log.read_text()}")


def shell_commands(lines: list[str]) -> list[str]:
    """Commands of a shell snippet: comments and blank lines dropped, `\\` continuations joined."""
    commands: list[str] = []
    current = ""
    for raw in lines:
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        current = f"{current} {line}" if current else line
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        commands.append(current)
        current = ""
    return commands


def printed_commands(output: str) -> list[str]:
    assert READY_MARKER in output, output
    block = output.split(READY_MARKER, 1)[1].split(END_MARKER, 1)[0]
    return shell_commands(block.splitlines())


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^ *```sh\n(.*?)^ *```", text, re.DOTALL | re.MULTILINE)
    return [
        command
        for block in blocks
        for command in shell_commands(block.splitlines())
        if not re.match(r"make (run|test)\b", command)
    ]


def run_command(command: str) -> str:
    result = subprocess.run(  # noqa: S603 - the commands this repository prints
        ["bash", "-o", "pipefail", "-c", command],  # noqa: S607 - bash from PATH
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        env=_environment(),
        check=False,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.stdout.strip(), command
    return result.stdout


def _answers(command: str) -> object:
    output = run_command(command)
    try:
        body = json.loads(output)
    except ValueError:
        return output
    assert not (isinstance(body, dict) and body.get("resourceType") == "OperationOutcome"), body
    return body


def test_shell_commands_join_continuations_and_drop_comments() -> None:
    lines = ["  # a comment", "", "  curl -s a \\", "    | python3 -m json.tool", "  ls  # why"]
    assert shell_commands(lines) == ["curl -s a | python3 -m json.tool", "ls  # why"]


@needs_medplum
def test_every_command_make_run_prints_works(demo_run: DemoRun) -> None:
    commands = printed_commands(demo_run.output)
    assert len(commands) == 5, commands  # discovery, prefetch, no prefetch, demo twice
    answers = [_answers(command) for command in commands]
    discovery, with_prefetch, without_prefetch = answers[:3]
    assert isinstance(discovery, dict)
    assert {s["id"] for s in discovery["services"]} >= {"aih-order-sign", "aih-patient-view"}
    assert isinstance(with_prefetch, dict)
    assert isinstance(without_prefetch, dict)
    assert with_prefetch["cards"]
    summaries = [card["summary"] for card in without_prefetch["cards"]]
    assert summaries == [card["summary"] for card in with_prefetch["cards"]]
    for demo_output in answers[3:]:
        assert "same cards with and without prefetch" in str(demo_output)


@needs_medplum
def test_every_readme_command_works(demo_run: DemoRun) -> None:
    commands = readme_commands()
    assert len(commands) >= 3, commands
    try:
        for command in commands:
            local = command.replace("127.0.0.1:8080", f"127.0.0.1:{demo_run.port}").replace(
                "127.0.0.1:8090", f"127.0.0.1:{demo_run.fhir_port}"
            )
            _answers(local)
    finally:
        _restore_unshifted_charts(demo_run)


def _restore_unshifted_charts(demo_run: DemoRun) -> None:
    """The README loads the charts moved to today; `make run` loads them as written, and its
    "clock pinned per scenario" demo compares them with the scenarios' own prefetch. Whatever
    order the tests run in, the shared demo server is left as `make run` loaded it."""
    run_command(
        f".venv/bin/aih-cds fixtures load --fhir-server http://127.0.0.1:{demo_run.fhir_port}/fhir"
        " --bearer demo-token"
    )


@needs_medplum
def test_the_root_opens_the_demo_page(demo_run: DemoRun) -> None:
    response = requests.get(f"http://127.0.0.1:{demo_run.port}/", timeout=10)
    assert response.url.endswith("/demo")
    assert response.status_code == 200


def test_a_busy_port_stops_make_run_before_anything_starts() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(  # noqa: S603 - the repository's own script
            [RUN_DEMO],
            cwd=REPO,
            env=_environment(PORT=str(port), FHIR_PORT=str(free_port())),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode != 0
    assert f"Port {port} (PORT, the CDS service) is already in use" in result.stderr
    assert "make run PORT=" in result.stderr
    assert READY_MARKER not in result.stdout  # no paste-ready commands for a service that fails
