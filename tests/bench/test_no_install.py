"""The benchmark never installs anything: a missing FHIR server or wrk is an error naming the
script that installs it (``make bench`` and ``make test`` run those scripts first)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, NoReturn

import pytest

from bench import fhir_server, run


@pytest.fixture
def no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError(f"the benchmark started a process: {args!r}")

    for name in ("run", "Popen", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, refuse)


@pytest.mark.parametrize(
    ("constant", "start", "name"),
    [
        ("MEDPLUM_NODE", fhir_server.start_medplum, "Medplum"),
        ("SEKMET_BIN", fhir_server.start_sekmet, "SEKMET"),
    ],
)
@pytest.mark.usefixtures("no_subprocess")
def test_missing_fhir_server_is_an_error_that_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, constant: str, start: Any, name: str
) -> None:
    missing = tmp_path / "not-installed" / "bin" / "x"
    monkeypatch.setattr(fhir_server, constant, missing)
    with pytest.raises(fhir_server.ServerNotInstalled) as raised:
        start(tmp_path)
    message = str(raised.value)
    assert name in message
    assert str(missing) in message
    assert "scripts/install-fhir-servers.sh" in message
    assert not missing.exists()


@pytest.mark.usefixtures("no_subprocess")
def test_missing_wrk_is_an_error_that_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no wrk anywhere on it
    with pytest.raises(run.BenchError, match=r"wrk is not installed: run scripts/install-bench"):
        run.require_wrk()


def test_wrk_found_on_the_path_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    wrk = tmp_path / "wrk"
    wrk.write_text("#!/bin/sh\n", encoding="utf-8")
    wrk.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert run.require_wrk() == str(wrk)
