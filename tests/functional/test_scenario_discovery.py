"""Scenario discovery takes only folders that hold a scenario file, in every place that
discovers scenarios: a ``__pycache__`` beside the scenarios (written by importing
``fixtures/fhir/build.py`` when ``PYTHONDONTWRITEBYTECODE`` is unset) or any other folder is
never taken for one."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cds_service.cli import demo_run
from cds_service.cli import fixtures as fixture_loader
from cds_service.informatics import charts
from tests.scenarios import GOLDEN, load_build, scenario_dirs

SCENARIO = "aih-complete-response"


DISCOVERIES: dict[str, Callable[[Path], list[Path]]] = {
    "tests": scenario_dirs,
    "fixtures/fhir/build.py": load_build().scenario_dirs,
    "charts": charts.scenario_dirs,
    "demo_run": lambda root: demo_run.scenario_dirs([root]),
    "fixture_loader": lambda root: fixture_loader.bundle_dirs([root]),
}


@pytest.fixture
def golden_with_clutter(tmp_path: Path) -> Path:
    """One real scenario beside the folders a machine or an editor may leave there."""
    root = tmp_path / "fhir"
    shutil.copytree(GOLDEN / SCENARIO, root / SCENARIO)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "build.cpython-311.pyc").write_bytes(b"\x00")
    (root / ".idea").mkdir()
    (root / ".idea" / "workspace.xml").write_text("<project/>", encoding="utf-8")
    notes = root / "notes"
    notes.mkdir()
    (notes / "request.json").write_text(json.dumps({"hook": "patient-view"}), encoding="utf-8")
    (root / "README.md").write_text("scenarios", encoding="utf-8")
    return root


@pytest.mark.parametrize("where", sorted(DISCOVERIES))
def test_only_folders_with_a_scenario_file_are_scenarios(
    golden_with_clutter: Path, where: str
) -> None:
    found = DISCOVERIES[where](golden_with_clutter)
    assert [p.name for p in found] == [SCENARIO]


def test_the_tests_see_every_committed_scenario_and_nothing_else() -> None:
    expected = sorted(p.parent.name for p in GOLDEN.glob("*/scenario.json"))
    assert len(expected) > 50
    assert [p.name for p in scenario_dirs()] == expected
    assert all((p / "request.json").is_file() for p in scenario_dirs())
