"""``aih-cds valueset where CODE``: every value set, drug class and rule a code counts in."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cds_service.common.settings import Settings
from cds_service.config.configuration import load_configuration
from cds_service.informatics.valueset_membership import close_codes, memberships
from cds_service.rules.registry import REGISTRY


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    valueset = commands.add_parser("valueset", help="value sets: where a code counts")
    valueset_commands = valueset.add_subparsers(dest="valueset_command", required=True)
    where = valueset_commands.add_parser(
        "where",
        help="every value set (and the classes including it), drug class, analyte and rule a "
        "code belongs to",
    )
    where.add_argument("code", help="the code, as the EHR sends it (ICD-10 with or without dot)")
    where.add_argument("--system", help="code system URI or OID (default: any system)")
    where.add_argument("--cards-dir", type=Path)
    where.add_argument("--json", action="store_true")
    where.set_defaults(handler=where_command)


def where_command(args: argparse.Namespace) -> int:
    overrides = {"cards_dir": args.cards_dir} if args.cards_dir else {}
    config = load_configuration(Settings.load(overrides).cards_dir, REGISTRY)
    found = memberships(config, args.code, args.system)
    if args.json:
        print(json.dumps([m.as_json() for m in found], indent=2, ensure_ascii=False))
        return 0 if found else 1
    system = f" in {args.system}" if args.system else ""
    if not found:
        print(
            f"code {args.code!r}{system} is in no value set of {config.cards_dir}", file=sys.stderr
        )
        close = close_codes(config, args.code, args.system)
        if close:
            print("similar codes: " + "; ".join(close), file=sys.stderr)
        print(
            "to make it count, add it to the value set of its drug or lab "
            "(docs/rule-authoring.md, 'Adding local lab and drug codes')",
            file=sys.stderr,
        )
        return 1
    print(f"code {args.code!r}{system} is in {len(found)} value set(s):")
    for m in found:
        print(f"  {m.valueset} ({m.system}): {m.how}")
        if m.drug_classes:
            print(f"      drug class: {', '.join(m.drug_classes)}")
        if m.analytes:
            print(f"      lab analyte: {', '.join(m.analytes)}")
        print(f"      rules: {', '.join(m.rules) or '(none reads this value set)'}")
    return 0
