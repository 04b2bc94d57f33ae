from __future__ import annotations

import itertools
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service import create_app
from tests.factories import NOW

# Every log record of the run is scanned for tokens and patient ids at the end (issue 6).
pytest_plugins = ["tests.log_scan"]

REPO = Path(__file__).resolve().parents[1]
# Public CDS Hooks test material copied into the repository (provenance: tests/material/README.md).
MATERIAL = REPO / "tests" / "material"


#: Read by the service or prometheus_client: a developer's shell must not change what tests see.
_AMBIENT_PREFIXES = ("CDS_", "PROMETHEUS_MULTIPROC_DIR", "OTEL_")


def pytest_configure(config: pytest.Config) -> None:
    """Tests set every setting they depend on; none comes from the environment of the machine
    that runs them (a CDS_* variable left in a shell would otherwise reach create_app)."""
    for name in [n for n in os.environ if n.startswith(_AMBIENT_PREFIXES)]:
        del os.environ[name]


@pytest.fixture(autouse=True)
def _no_inherited_metrics_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing the gunicorn configuration in-process (one test does) sets
    PROMETHEUS_MULTIPROC_DIR for the whole process; no later test may inherit it (its /metrics
    would read that directory instead of the process's counters)."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


class _UndeclaredReads(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.rules: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        rule = getattr(record, "undeclared_read", None)
        if rule is not None:
            self.rules.append(str(rule))


@pytest.fixture(autouse=True)
def _rules_read_only_what_they_declare(request: pytest.FixtureRequest) -> Iterator[None]:
    """A rule that reads an Observation value set or analyte it does not declare still gets
    its card in production (the engine reads the whole chart again and logs an error); in the
    tests it fails the test that made it happen, unless the test is about that fallback."""
    handler = _UndeclaredReads()
    engine_log = logging.getLogger("cds_service.hooks.engine")
    engine_log.addHandler(handler)
    try:
        yield
    finally:
        engine_log.removeHandler(handler)
    if handler.rules and request.node.get_closest_marker("undeclared_read") is None:
        pytest.fail(f"rules read terminology they do not declare: {sorted(set(handler.rules))}")


def deterministic_uuids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: str(uuid.UUID(int=next(counter)))


@pytest.fixture
def cards(tmp_path: Path) -> Path:
    """A writable copy of the bundled cards/ for tests that change a file."""
    target = tmp_path / "cards"
    shutil.copytree(REPO / "cards", target)
    return target


@pytest.fixture
def app_factory(tmp_path: Path) -> Callable[..., Flask]:
    def make(**overrides: Any) -> Flask:
        settings: dict[str, Any] = {
            "auth": False,
            "database_url": f"sqlite:///{tmp_path / 'cards.sqlite'}",
            "spool_dir": str(tmp_path / "spool"),
            "patient_hash_key": "test-key",
            "clock": lambda: NOW,
            "uuid_factory": deterministic_uuids(),
            # as in production: no demo page, so cards carry no links to it (tests opt in)
            "demo": "off",
            # the URL the test client calls (the JWT aud, required with auth on)
            "public_base_url": "http://localhost",
        }
        settings.update(overrides)
        return create_app(settings)

    return make


@pytest.fixture
def app(app_factory: Callable[..., Flask]) -> Flask:
    return app_factory()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
