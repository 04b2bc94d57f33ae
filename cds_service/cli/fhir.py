"""``aih-cds fhir check FILE...``: the strict R4B check and the reading policy, side by side.

For each resource in each file (a resource, a Bundle, or a CDS Hooks request: its draft orders and
prefetch) one line: whether it is valid R4B (``fhir.resources``), and how the service reads it
under its reading policy (docs/reading-policy.md): as sent, read with repairs, or left out and why.
The strict verdict is a report for integration testing; the service never drops data for it.
Exit status: 0 when every resource is valid R4B, 1 when any is not, 2 when a file is unreadable.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cds_service.fhir.reading import read_resource
from cds_service.fhir.strict import file_resources, strict_findings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fhir = commands.add_parser("fhir", help="FHIR input checks")
    fhir_commands = fhir.add_subparsers(dest="fhir_command", required=True)
    check = fhir_commands.add_parser(
        "check",
        help="strict R4B verdict and the service's reading of each resource in FILEs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("files", nargs="+", type=Path)
    check.set_defaults(handler=check_command)


def check_command(args: argparse.Namespace) -> int:
    invalid = 0
    for path in args.files:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"{path}: unreadable ({exc})")
            return 2
        for resource in file_resources(document):
            name = f"{resource.get('resourceType', '?')}/{resource.get('id', '?')}"
            findings = strict_findings([resource])
            invalid += bool(findings)
            strict = findings[0].split(": ", 1)[1] if findings else "valid"
            print(f"{path}: {name}: strict R4B: {strict}; service: {_reading(resource)}")
    return 1 if invalid else 0


def _reading(resource: Mapping[str, Any]) -> str:
    if resource.get("resourceType") == "Bundle":
        return "a container: its entries are read one by one"
    read = read_resource(resource)
    if read.resource is None:
        return f"left out ({read.problem})"
    if not read.repairs and not read.unusable:
        return "read as sent"
    parts = [*read.repairs, *(f"{u} (unusable, left out)" for u in read.unusable)]
    return "read; " + "; ".join(parts)
