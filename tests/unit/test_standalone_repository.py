"""The repository stands alone: no tracked file reads or names a folder outside it (the shared
research folder beside the original checkout), the research notes or the study digests.

Clinical sources are cited as published studies (docs/clinical-spec.md, the evidence in cards/);
public test material lives in tests/material/.
"""

from __future__ import annotations

import re
import subprocess
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


def outside_references(root: Path, names: list[str]) -> list[str]:
    found = []
    for name in names:
        path = root / name
        if not path.is_file():
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
