"""docs/operations.md documents every CDS_ setting (a new setting without a row fails here)."""

from __future__ import annotations

import pytest

from cds_service.common.settings import ENV_PREFIX, Settings
from tests.conftest import REPO

GUIDE = (REPO / "docs" / "operations.md").read_text()
NAMES = sorted(
    ENV_PREFIX + name.upper() for name in Settings.__dataclass_fields__ if name != "extra"
)


@pytest.mark.parametrize("variable", NAMES)
def test_every_setting_has_a_row_in_the_configuration_reference(variable: str) -> None:
    assert f"| `{variable}` |" in GUIDE
