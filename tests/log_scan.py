"""Pytest plugin: every log record of the whole test run is scanned for secrets at the end.

The run sends JWTs, FHIR access tokens and patient ids through every code path; none of them
may ever appear in a log line. A leak fails the session (exit status 1) and is listed.
What is looked for: anything shaped like a JWT, the access tokens and patient ids of the test
data (factories, golden scenarios, the spec's example request).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest

from tests import factories
from tests.conftest import MATERIAL, REPO

JWT_SHAPE = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}")
COLLECTED = logging.INFO


def _request_files() -> Iterator[dict[str, object]]:
    for path in sorted((REPO / "fixtures" / "fhir").glob("*/request.json")):
        yield json.loads(path.read_text(encoding="utf-8"))
    spec = (
        MATERIAL / "HL7-cds-hooks" / "extracted-examples" / "v2.0.1" / "index" / "02-example.json"
    )
    if spec.exists():
        yield json.loads(spec.read_text(encoding="utf-8"))


def known_secrets() -> dict[str, re.Pattern[str]]:
    """Name -> pattern; ids match only as whole tokens (``pt-1`` must not match ``opt-10``)."""
    patient_ids = {factories.PATIENT_ID}
    tokens: set[str] = set()
    for request in _request_files():
        context = request.get("context")
        if isinstance(context, dict) and isinstance(context.get("patientId"), str):
            patient_ids.add(context["patientId"])
        authorization = request.get("fhirAuthorization")
        if isinstance(authorization, dict) and isinstance(authorization.get("access_token"), str):
            tokens.add(authorization["access_token"])
    patterns = {"JWT": JWT_SHAPE}
    for pid in patient_ids:
        patterns[f"patient id {pid!r}"] = re.compile(rf"(?<![\w-]){re.escape(pid)}(?![\w-])")
    for token in tokens:
        patterns[f"access token {token[:6]}..."] = re.compile(re.escape(token))
    return patterns


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(COLLECTED)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):  # a broken format string is not ours to judge here
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {text}")


_collector = _Collector()


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    root.addHandler(_collector)
    if root.level > COLLECTED or root.level == logging.NOTSET:
        root.setLevel(COLLECTED)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_collector)
    secrets = known_secrets()  # once: it reads every scenario's request
    leaks = [
        (name, line)
        for line in _collector.lines
        for name, pattern in secrets.items()
        if pattern.search(line)
    ]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"log scan: {len(_collector.lines)} log records of this run scanned, "
            f"{len(leaks)} with a token or patient id"
        )
        for name, line in leaks[:20]:
            reporter.write_line(f"  LEAK ({name}): {line[:300]}", red=True)
    if leaks and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
