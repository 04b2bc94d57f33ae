"""``aih-cds whatif``: cards that a proposed configuration changes, for review and CI.

Exit codes: 0 no change; 1 at least one card appears, disappears, changes indicator, outcome,
mode (active/silent) or text, a rule's mode, enabled flag or parameters differ, or an input
errors under one configuration only; 2 a configuration is invalid, both are the same folder,
or an input cannot be read.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from cds_service.common.settings import Settings
from cds_service.config.configuration import load_configuration
from cds_service.informatics.charts import DEFAULT_SCENARIOS_DIR
from cds_service.informatics.whatif import (
    InputError,
    compare,
    directory_cases,
    format_table,
    parse_instant,
    scenario_cases,
)
from cds_service.rules.registry import REGISTRY

NO_CHANGE, CHANGED, UNUSABLE = 0, 1, 2


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    whatif = commands.add_parser(
        "whatif",
        help="compare the cards of a proposed configuration with the current one",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    whatif.add_argument("--rules", type=Path, required=True, help="proposed cards/ directory")
    whatif.add_argument(
        "--against", type=Path, help="current cards/ directory (default: CDS_CARDS_DIR)"
    )
    whatif.add_argument(
        "inputs",
        nargs="*",
        type=Path,
        help="directories of hook requests (*.json) or patient Bundles, searched recursively",
    )
    whatif.add_argument(
        "--scenarios",
        type=Path,
        default=DEFAULT_SCENARIOS_DIR,
        help="golden scenarios directory (default: fixtures/fhir)",
    )
    whatif.add_argument("--no-scenarios", action="store_true", help="only the given inputs")
    whatif.add_argument(
        "--now", help="evaluation instant for inputs without one, ISO 8601 (default: now)"
    )
    whatif.add_argument("--json", action="store_true", help="print the report as JSON")
    whatif.set_defaults(handler=whatif_command)


def whatif_command(args: argparse.Namespace) -> int:
    current_dir = args.against or Settings.load().cards_dir
    if _same_folder(current_dir, args.rules):
        print(
            f"--rules and the current configuration are the same folder ({current_dir}): "
            "copy cards/ to a new folder, change the copy and pass that as --rules",
            file=sys.stderr,
        )
        return UNUSABLE
    current = load_configuration(current_dir, REGISTRY)
    proposed = load_configuration(args.rules, REGISTRY)
    now = parse_instant(args.now) if args.now else datetime.now(UTC)
    try:
        cases = [] if args.no_scenarios else scenario_cases(args.scenarios)
        for directory in args.inputs:
            cases += directory_cases(directory, now)
    except InputError as exc:
        print(f"input error: {exc}", file=sys.stderr)
        return UNUSABLE
    if not getattr(args, "verbose", False):  # the rules' own warnings: shown with -v
        logging.disable(logging.WARNING)
    try:
        report = compare(current, proposed, cases)
    finally:
        logging.disable(logging.NOTSET)
    if args.json:
        print(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        print(format_table(report))
    return CHANGED if report.changed else NO_CHANGE


def _same_folder(one: Path, other: Path) -> bool:
    try:
        return one.resolve().samefile(other.resolve())
    except OSError:  # a missing folder is reported by the configuration loader
        return False
