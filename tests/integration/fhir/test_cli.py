"""``aih-cds fixtures load`` and ``aih-cds demo`` against the real FHIR servers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from cds_service import create_app
from cds_service.cli.main import main
from tests.integration.fhir.conftest import GOLDEN, LoadedServer
from tests.integration.ports import free_port

pytestmark = pytest.mark.integration
DEMO = ["mmf-pregnant-status", "mmf-male", "mmf-continuing-therapy"]


def test_fixtures_load_reports_each_scenario(
    fhir_server: LoadedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server = fhir_server.server
    dirs = [str(GOLDEN / name) for name in DEMO]
    args = ["fixtures", "load", "--fhir-server", server.base_url, "--bearer", server.token]
    assert main([*args, *dirs]) == 0  # PUT with stable ids: loading twice is harmless
    out = capsys.readouterr().out
    assert all(f"loaded {name}: " in out for name in DEMO)
    assert "3 of 3 scenarios loaded" in out


def test_fixtures_load_says_what_failed(
    fhir_server: LoadedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = fhir_server.server.base_url
    args = ["fixtures", "load", "--fhir-server", url, "--bearer", "wrong", str(GOLDEN / DEMO[0])]
    assert main(args) == 1
    assert f"FAILED {DEMO[0]}: HTTP 401" in capsys.readouterr().out
    down = f"http://127.0.0.1:{free_port()}/fhir"
    assert main(["fixtures", "load", "--fhir-server", down, str(GOLDEN / DEMO[0])]) == 1
    assert "no answer from" in capsys.readouterr().out
    assert main(["fixtures", "load", "--fhir-server", url, str(GOLDEN / "no-such")]) == 2


def test_demo_in_process_gives_the_same_cards_both_ways(
    fhir_server: LoadedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server = fhir_server.server
    dirs = [str(GOLDEN / name) for name in DEMO]
    assert main(["demo", "--fhir-server", server.base_url, "--bearer", server.token, *dirs]) == 0
    out = capsys.readouterr().out
    assert out.count("same cards as with prefetch") == len(DEMO)
    assert "[CRITICAL] Evidence of pregnancy" in out
    assert "3 of 3 scenarios: same cards with and without prefetch" in out


def test_demo_reports_a_difference(
    fhir_server: LoadedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong token: the fetched answer is a 412, which the demo shows and counts."""
    url = fhir_server.server.base_url
    assert main(["demo", "--fhir-server", url, "--bearer", "wrong", str(GOLDEN / DEMO[0])]) == 1
    out = capsys.readouterr().out
    assert "(HTTP 412)" in out
    assert "0 of 1 scenarios" in out


@pytest.fixture
def running_service(tmp_path: Path) -> Iterator[str]:
    app = create_app({"auth": False, "database_url": f"sqlite:///{tmp_path / 'cards.sqlite'}"})
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        thread.join(timeout=10)


def test_demo_against_a_running_service(
    running_service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --fhir-server only the prefetch request is sent; cards are printed readably."""
    assert main(["demo", "--service-url", running_service, str(GOLDEN / "mmf-male")]) == 0
    out = capsys.readouterr().out
    assert "=== mmf-male (aih-order-sign)" in out
    assert "[INFO] Mycophenolate for a male patient" in out
