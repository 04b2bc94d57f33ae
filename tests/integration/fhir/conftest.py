"""Session fixtures: each real FHIR server started once, loaded with every golden scenario."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cds_service.cli.fixtures import LoadResult, bundle_dirs, load_fixtures
from tests.conftest import REPO
from tests.integration.fhir.servers import START, RunningServer, stop

GOLDEN = REPO / "fixtures" / "fhir"
TOKEN = "integration-token-7f3a"


@dataclass
class LoadedServer:
    server: RunningServer
    loaded: dict[str, LoadResult]


@pytest.fixture(scope="session", params=sorted(START))
def fhir_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoadedServer]:
    name = request.param
    workdir: Path = tmp_path_factory.mktemp(name)
    server = START[name](workdir, TOKEN)
    try:
        results = load_fixtures(server.base_url, bundle_dirs([GOLDEN]), bearer=TOKEN)
        yield LoadedServer(server, {r.scenario: r for r in results})
    finally:
        stop(server)
