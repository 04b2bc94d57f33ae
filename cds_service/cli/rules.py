"""``aih-cds rules show`` and ``aih-cds rules schema``: the configuration for people and editors."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from cds_service.cli.rules_glossary import described_parameters
from cds_service.common.settings import Settings
from cds_service.config.config_schema import FILE_KINDS, configuration_schema, file_kind_schema
from cds_service.config.configuration import RuleConfig, load_configuration
from cds_service.config.effective_config import effective_configuration, effective_rule
from cds_service.rules.registry import REGISTRY


def register(rules_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    show = rules_commands.add_parser(
        "show", help="print the effective configuration (defaults filled in) as YAML or JSON"
    )
    show.add_argument("rule", nargs="?", help="one rule id (default: every service and rule)")
    show.add_argument("--cards-dir", type=Path)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=show_command)

    schema = rules_commands.add_parser(
        "schema", help="print the JSON Schema of the configuration files"
    )
    schema.add_argument(
        "kind",
        nargs="?",
        choices=sorted(FILE_KINDS),
        help="one file kind as a standalone schema (default: all kinds in one document)",
    )
    schema.set_defaults(handler=schema_command)


def show_command(args: argparse.Namespace) -> int:
    overrides = {"cards_dir": args.cards_dir} if args.cards_dir else {}
    config = load_configuration(Settings.load(overrides).cards_dir, REGISTRY)
    if args.rule:
        rule = config.rules.get(args.rule)
        if rule is None:
            print(
                f"no rule {args.rule!r} in {config.cards_dir}; known: {sorted(config.rules)}",
                file=sys.stderr,
            )
            return 2
        document = _for_people(rule, effective_rule(rule))
    else:
        document = effective_configuration(config)
        document["rules"] = [
            _for_people(rule, shown)
            for rule, shown in zip(config.rules.values(), document["rules"], strict=True)
        ]
    if args.json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100), end="")
    return 0


def _for_people(rule: RuleConfig, shown: dict[str, Any]) -> dict[str, Any]:
    """The rule's mode beside ``enabled``; each parameter with its meaning, unit and range."""
    ordered: dict[str, Any] = {}
    for key, value in shown.items():
        ordered[key] = value
        if key == "enabled":
            ordered["mode"] = rule.mode
    ordered["parameters"] = described_parameters(
        REGISTRY[rule.id].parameters(), shown["parameters"]
    )
    return ordered


def schema_command(args: argparse.Namespace) -> int:
    document = configuration_schema(REGISTRY)
    if args.kind:
        document = file_kind_schema(document, args.kind)
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return 0
