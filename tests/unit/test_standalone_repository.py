"""The repository stands alone: no tracked file reads or names a folder outside it (the shared
research folder beside the original checkout), the research notes or the study digests.

Clinical sources are cited as published studies (docs/clinical-spec.md, the evidence in cards/);
public test material lives in tests/material/.
"""

from __future__ import annotations

import re
import subprocess
from fnmatch import fnmatch
from pathlib import Path

import pytest

from tests.conftest import REPO

# Each alternative is written so that this file does not match it itself.
OUTSIDE_REFERENCE = re.compile(
    "|".join(
        (
            r"\.\./" + "shared",  # the shared folder beside the checkout
            "/work/" + "shared",
            r"\bRULES\.md",  # the research contract (now docs/clinical-spec.md)
            r"seeds/0[0-9]",  # study digest files
            r"\bseed 0[0-9]{2}",
            "terminology-and-" + "evidence",  # research notes
            "codes-" + "verified",
        )
    )
)

# Paths other branches clean (card provenance, value-set notes) and files generated from them:
# the integrator empties this list once those branches are merged and the generated files are
# regenerated (`scripts/render-cards-configmap.py`, `UPDATE_GOLDEN=1` for expected-cards.json).
PENDING_OTHER_BRANCHES = (
    "cards/valuesets/",
    "cards/terminology.yaml",
    "cards/rules/",
    "cards/snippets/",
    "deploy/kubernetes/cards-configmap.yaml",
    "fixtures/fhir/*/expected-cards.json",
)


def _tracked_files() -> list[str]:
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z"],  # noqa: S607 - git from PATH, fixed arguments
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [name for name in listing.decode().split("\0") if name]


def _pending(name: str) -> bool:
    return any(
        fnmatch(name, pattern) if "*" in pattern else name.startswith(pattern)
        for pattern in PENDING_OTHER_BRANCHES
    )


def outside_references(root: Path, names: list[str]) -> list[str]:
    found = []
    for name in names:
        path = root / name
        if _pending(name) or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        found += [
            f"{name}:{text.count(chr(10), 0, match.start()) + 1}: {match.group()}"
            for match in OUTSIDE_REFERENCE.finditer(text)
        ]
    return found


def test_no_tracked_file_points_outside_the_repository() -> None:
    assert outside_references(REPO, _tracked_files()) == []


def test_the_check_finds_each_kind_of_reference(tmp_path: Path) -> None:
    lines = (
        "MATERIAL = REPO.parent / '../" + "shared/cds-hooks/material'",
        "/work/" + "shared/cds-hooks/material",
        "Contract: clinical/RULES" + ".md",
        "citation: seeds/" + "003_x.txt",
        "as seed " + "003 reports",
        "terminology-and-" + "evidence.md 2.1",
        "codes-" + "verified.md",
    )
    names = [f"docs/note-{number}.md" for number in range(len(lines))]
    (tmp_path / "docs").mkdir()
    for name, line in zip(names, lines, strict=True):
        (tmp_path / name).write_text(f"first line\n{line}\n", encoding="utf-8")
    found = outside_references(tmp_path, names)
    assert [entry.split(": ")[0] for entry in found] == [f"{name}:2" for name in names]
    assert outside_references(tmp_path, ["docs/clean.md"]) == []  # absent file: nothing


def test_pending_paths_are_skipped_and_still_exist(tmp_path: Path) -> None:
    """Allowlisted paths are not read; an entry that matches no tracked file is stale."""
    (tmp_path / "fixtures/fhir/x").mkdir(parents=True)
    (tmp_path / "fixtures/fhir/x/expected-cards.json").write_text("seed " + "003")
    (tmp_path / "fixtures/fhir/x/scenario.json").write_text("seed " + "003")
    assert outside_references(
        tmp_path, ["fixtures/fhir/x/expected-cards.json", "fixtures/fhir/x/scenario.json"]
    ) == ["fixtures/fhir/x/scenario.json:1: seed " + "003"]
    tracked = _tracked_files()
    for pattern in PENDING_OTHER_BRANCHES:
        assert any(_pending(name) and name.startswith(pattern.split("*")[0]) for name in tracked)
