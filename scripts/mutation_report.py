"""Per-module score of the last `make mutation` run, read from mutmut's results in mutants/.

    .venv/bin/python scripts/mutation_report.py [MODULE_PREFIX ...]

Prints one row per mutated module (mutants, killed, survived, timeout, no tests, not run yet)
and then every mutant that was run and not killed. A prefix such as ``cds_service/security``
keeps only the modules under it. Exits 1 when mutants/ holds no results.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

COLUMNS = ("killed", "survived", "timeout", "no tests", "not checked")


def module_results(root: Path) -> dict[str, dict[str, str]]:
    """{module path: {mutant name: status}} for every module mutmut mutated under ``root``."""
    results: dict[str, dict[str, str]] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        if codes:
            module = meta.relative_to(root).as_posix().removesuffix(".meta")
            results[module] = {name: status_by_exit_code[code] for name, code in codes.items()}
    return results


def main(prefixes: list[str]) -> int:
    results = {
        module: statuses
        for module, statuses in module_results(Path("mutants")).items()
        if not prefixes or module.startswith(tuple(prefixes))
    }
    if not results:
        print("no mutation results in mutants/: run `make mutation` first", file=sys.stderr)
        return 1
    print(f"{'module':<45} {'mutants':>7} " + " ".join(f"{c:>11}" for c in COLUMNS))
    for module, statuses in results.items():
        counts = Counter(statuses.values())
        print(f"{module:<45} {len(statuses):>7} " + " ".join(f"{counts[c]:>11}" for c in COLUMNS))
    print("\nrun and not killed:")
    for statuses in results.values():
        for name, status in sorted(statuses.items()):
            if status not in ("killed", "not checked"):
                print(f"  {status:<10} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
