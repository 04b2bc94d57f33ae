"""``aih-cds rules show``: each rule's mode, and each parameter with meaning, unit and range."""

from __future__ import annotations

import json

import pytest
import yaml

from cds_service.cli.main import main
from cds_service.cli.rules_glossary import GLOSSARY, allowed_range
from cds_service.rules.registry import REGISTRY


def test_rule_shows_mode_and_described_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "show", "anti-tnf-liver-injury"]) == 0
    rule = yaml.safe_load(capsys.readouterr().out)
    assert list(rule)[:4] == ["id", "file", "enabled", "mode"]
    assert rule["mode"] == "active"
    assert rule["parameters"]["warning_alt_multiple"] == {
        "value": 3,
        "meaning": "latest ALT at or above this is a warning",
        "unit": "x upper limit of normal",
        "allowed": "1 to 50",
    }
    assert rule["parameters"]["combined_max_days_apart"]["allowed"] == "0 to 90"


def test_every_rule_in_the_full_document_carries_its_mode(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["rules", "show", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert {r["mode"] for r in document["rules"]} <= {"active", "silent"}
    assert all("meaning" in p for r in document["rules"] for p in r["parameters"].values())


def test_every_implemented_parameter_has_a_meaning() -> None:
    names = {name for spec in REGISTRY.values() for name in spec.parameters().fields}
    assert names - GLOSSARY.keys() == set()


def test_allowed_range_reads_the_schema_bounds() -> None:
    fields = REGISTRY["tpmt-before-thiopurine"].parameters().fields
    assert allowed_range(fields["absent_activity_fraction"]) == "0 to below 1"
    assert allowed_range(fields["activity_valueset"]) is None
