"""Where the tests find the golden scenarios: only folders of ``fixtures/fhir`` that hold a
``scenario.json``. Anything else there (``__pycache__`` written when ``build.py`` is imported
on a machine without ``PYTHONDONTWRITEBYTECODE``, an editor's folder) is not a scenario."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.conftest import REPO

GOLDEN = REPO / "fixtures" / "fhir"
SCENARIO_FILE = "scenario.json"


def scenario_dirs(root: Path = GOLDEN) -> list[Path]:
    """Every folder directly under ``root`` holding a scenario file, sorted by name."""
    return sorted(p.parent for p in root.glob(f"*/{SCENARIO_FILE}") if p.is_file())


def load_build() -> ModuleType:
    """``fixtures/fhir/build.py`` as a module, without writing ``fixtures/fhir/__pycache__``
    (the data folder stays as committed, whatever the environment says about bytecode)."""
    spec = importlib.util.spec_from_file_location("golden_build", GOLDEN / "build.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = writes_bytecode
    return module
