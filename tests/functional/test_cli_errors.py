"""``aih-cds``: friendly errors for bad files, quiet ``evaluate``, no traceback on a closed pipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cds_service.cli.main import main
from tests.conftest import REPO

REQUEST = REPO / "fixtures" / "fhir" / "mmf-pregnant-status" / "request.json"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("nope{", "not valid JSON at line 1, column 1"),
        ("[1, 2]", "not a CDS Hooks request"),
        (b"\xff\xfe{", "not UTF-8 text"),
    ],
)
def test_evaluate_names_the_bad_file_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "request.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ")
    assert message in err
    assert "Traceback" not in err


def test_evaluate_on_a_folder_and_a_bad_instant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["evaluate", str(REQUEST), "--now", "yesterday"]) == 2
    assert "--now 'yesterday' is not an ISO 8601 instant" in capsys.readouterr().err


def test_evaluate_names_the_hooks_served_for_an_unknown_hook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "request.json"
    path.write_text('{"hook": "encounter-start", "context": {}}', encoding="utf-8")
    assert main(["evaluate", str(path)]) == 2
    assert "no service answers hook 'encounter-start'; hooks served: " in capsys.readouterr().err


def test_a_date_without_time_is_read_as_utc_midnight(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(REQUEST), "--now", "2026-01-01"]) == 0
    assert "rule: mmf-teratogenicity" in capsys.readouterr().out


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    script = "import sys; from cds_service.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-c", script, *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )


def test_evaluate_is_quiet_by_default_and_logs_with_v() -> None:
    quiet = _run("evaluate", str(REQUEST))
    assert quiet.returncode == 0
    assert quiet.stderr == ""
    assert "rule: mmf-teratogenicity" in quiet.stdout
    verbose = _run("-v", "evaluate", str(REQUEST))
    also_verbose = _run("evaluate", "-v", str(REQUEST))
    for run in (verbose, also_verbose):
        assert "alembic.runtime.migration" in run.stderr
        assert "CDS_AUTH=off" in run.stderr


def test_a_closed_pipe_ends_quietly() -> None:
    script = (
        "import sys; from cds_service.cli.main import main;"
        " sys.exit(main(['rules', 'show', '--json']))"
    )
    with subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.read(10)
        process.stdout.close()  # what `| head -c 10` does
        err = process.stderr.read().decode()
        assert process.wait() == 141
    assert "Traceback" not in err
    assert "BrokenPipeError" not in err
