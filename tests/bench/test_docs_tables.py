"""bench/docs_tables.py: a full benchmark run rewrites the README's and docs' tables, only them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.docs_tables import TABLES, MarkersMissing, regenerate, replace_between
from tests.bench.test_bench_report import results
from tests.conftest import REPO


def test_only_the_text_between_the_markers_changes() -> None:
    text = "intro\n<!-- t -->\nold row\n<!-- /t -->\noutro\n"
    expected = "intro\n<!-- t -->\nnew row\n<!-- /t -->\noutro\n"
    assert replace_between(text, "t", "new row") == expected


@pytest.mark.parametrize("text", ["no markers", "<!-- /t --> <!-- t -->", "<!-- t --><!-- t -->"])
def test_missing_or_misplaced_markers_write_nothing(text: str) -> None:
    with pytest.raises(MarkersMissing):
        replace_between(text, "t", "x")


def test_the_shipped_files_carry_their_markers() -> None:
    for name, (marker, _) in TABLES.items():
        text = (REPO / name).read_text(encoding="utf-8")
        assert text.count(f"<!-- {marker} -->") == 1, name
        assert text.count(f"<!-- /{marker} -->") == 1, name


def test_regenerate_writes_the_run_into_each_file(tmp_path: Path) -> None:
    for name, (marker, _) in TABLES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"# {name}\n<!-- {marker} -->\nstale\n<!-- /{marker} -->\n")
    written = regenerate(results(), tmp_path)
    assert sorted(written) == sorted(tmp_path / name for name in TABLES)
    readme = (tmp_path / "README.md").read_text()
    assert "stale" not in readme
    assert "| large chart, order-sign, with prefetch | 60.0 / 60.0 |" in readme
    performance = (tmp_path / "docs" / "performance.md").read_text()
    assert "| throughput_ratio_large | 0.3 | >= 0.5 | NO |" in performance
    assert regenerate(results(), tmp_path) == []  # the same run again changes nothing
