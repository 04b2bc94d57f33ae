"""TRACEABILITY.md must map each Service-actor requirement row exactly once, to existing tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.support import REQUIREMENTS, load_material
from tests.conftest import REPO

TABLE = Path(__file__).with_name("TRACEABILITY.md")
STATUSES = {"tested", "not applicable", "open"}
COLUMNS = ["Req Set", "ID", "Conformance", "Requirement (shortened)", "Status", "Where"]
_REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


@dataclass(frozen=True)
class Row:
    line: int
    req_set: str
    id: str
    conformance: str
    status: str
    where: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.req_set, self.id)

    @property
    def references(self) -> list[tuple[str, str]]:
        return _REFERENCE.findall(self.where)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


@cache
def table_rows() -> tuple[Row, ...]:
    lines = TABLE.read_text(encoding="utf-8").splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| Req Set |"))
    assert _cells(lines[header]) == COLUMNS
    rows = []
    for number, line in enumerate(lines[header + 2 :], start=header + 3):
        if not line.startswith("|"):
            break
        cells = _cells(line)
        assert len(cells) == len(COLUMNS), f"TRACEABILITY.md:{number}: {len(cells)} cells"
        req_set, rid, conformance, _, status, where = cells
        rows.append(Row(number, req_set, rid, conformance, status, where))
    return tuple(rows)


def service_requirements() -> dict[tuple[str, str], dict[str, Any]]:
    rows = load_material(REQUIREMENTS)["requirements"]
    return {
        (r["Req Set"], r["ID"]): r
        for r in rows
        if "Service" in [actor.strip() for actor in r["Actors"].split(",")]
    }


@cache
def _source(path: str) -> str:
    file = REPO / path
    return file.read_text(encoding="utf-8") if file.is_file() else ""


def find_definition(path: str, name: str) -> str | None:
    """The decorators and signature of ``def name`` in ``path``, or None when it is missing."""
    source = _source(path)
    match = re.search(rf"^def {re.escape(name)}\(", source, re.MULTILINE)
    if match is None:
        return None
    block_start = source.rfind("\n\n", 0, match.start())
    return source[block_start : match.end()]


def test_requirement_list_has_the_expected_service_rows() -> None:
    assert len(service_requirements()) == 120


def test_every_service_row_is_mapped_exactly_once() -> None:
    keys = [row.key for row in table_rows()]
    duplicates = {key for key in keys if keys.count(key) > 1}
    assert duplicates == set()
    missing = set(service_requirements()) - set(keys)
    assert missing == set(), f"add these requirement rows to TRACEABILITY.md: {sorted(missing)}"
    extra = set(keys) - set(service_requirements())
    assert extra == set(), f"not Service-actor rows of the requirement list: {sorted(extra)}"


def test_conformance_column_matches_the_requirement_list() -> None:
    requirements = service_requirements()
    wrong = {
        row.key: (row.conformance, requirements[row.key]["Conformance"])
        for row in table_rows()
        if row.key in requirements and row.conformance != requirements[row.key]["Conformance"]
    }
    assert wrong == {}


@pytest.mark.parametrize("row", table_rows(), ids=lambda row: f"{row.req_set}-{row.id}")
def test_row_status_and_references(row: Row) -> None:
    assert row.status in STATUSES, f"line {row.line}: status {row.status!r}"
    assert row.where, f"line {row.line}: empty Where"
    missing = [
        f"{path}::{name}" for path, name in row.references if find_definition(path, name) is None
    ]
    assert missing == [], f"line {row.line}: no such test"
    if row.status == "tested":
        assert row.references, f"line {row.line}: a tested row must name its tests"
        passing = [
            ref
            for ref in row.references
            if "pytest.mark.xfail" not in (find_definition(*ref) or "")
        ]
        assert passing, f"line {row.line}: only expected failures back this 'tested' row"
    else:
        reason = _REFERENCE.sub("", row.where).strip(" `,;()<br>")
        assert len(reason) >= 15, f"line {row.line}: give a reason, not only test names"
