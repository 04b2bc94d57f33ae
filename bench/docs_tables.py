"""Write a benchmark run's tables into README.md and docs/performance.md.

Each file holds its table between two marker comments; everything outside them is left as it is.
``python -m bench`` (full run) does this after writing bench/results/latest.json;
``python -m bench.docs_tables [results.json]`` does it again from a saved run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.report import readme_table, table

REPO = Path(__file__).resolve().parent.parent
LATEST = REPO / "bench" / "results" / "latest.json"
# file -> (marker name, how the run is shown there)
TABLES: dict[str, tuple[str, Callable[[Mapping[str, Any]], str]]] = {
    "README.md": ("bench-readme-table", readme_table),
    "docs/performance.md": ("bench-full-table", table),
}


class MarkersMissing(ValueError):
    """A file lost its marker comments: nothing is written rather than guessing where."""


def replace_between(text: str, marker: str, content: str) -> str:
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise MarkersMissing(f"expected one {start} before one {end}")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{content}\n{end}{tail}"


def regenerate(results: Mapping[str, Any], repo: Path = REPO) -> list[Path]:
    written = []
    for name, (marker, render) in TABLES.items():
        path = repo / name
        text = path.read_text(encoding="utf-8")
        updated = replace_between(text, marker, render(results))
        if updated != text:
            path.write_text(updated, encoding="utf-8")
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    source = Path(args[0]) if args else LATEST
    results = json.loads(source.read_text(encoding="utf-8"))
    for path in regenerate(results):
        print(f"written: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
