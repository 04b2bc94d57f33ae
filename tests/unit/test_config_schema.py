"""`aih-cds rules schema` / `rules show`: the emitted JSON Schema accepts the shipped cards/ and
rejects what start-up rejects; the effective configuration has every default filled in."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from cds_service.cli.main import main
from cds_service.common.settings import DEFAULT_CARDS_DIR

CARDS = DEFAULT_CARDS_DIR


def emitted(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main(["rules", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def schema(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    document: dict[str, Any] = emitted(capsys, "schema")
    Draft202012Validator.check_schema(document)
    return document


def kind_validator(schema: dict[str, Any], kind: str) -> Draft202012Validator:
    standalone = {k: v for k, v in schema.items() if k != "anyOf"}
    standalone["$ref"] = f"#/$defs/{kind}"
    return Draft202012Validator(standalone)


def shipped_files() -> list[tuple[str, Path]]:
    files = [("service", p) for p in sorted((CARDS / "services").glob("*.yaml"))]
    files += [("rule", p) for p in sorted((CARDS / "rules").glob("*.yaml"))]
    files += [("valueset", p) for p in sorted((CARDS / "valuesets").glob("*.json"))]
    return [*files, ("terminology", CARDS / "terminology.yaml")]


def load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


@pytest.mark.parametrize(("kind", "path"), shipped_files(), ids=lambda v: getattr(v, "name", v))
def test_shipped_cards_validate_against_the_emitted_schema(
    schema: dict[str, Any], kind: str, path: Path
) -> None:
    errors = list(kind_validator(schema, kind).iter_errors(load(path)))
    assert errors == [], [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]


def test_every_shipped_rule_file_matches_one_implemented_rule(schema: dict[str, Any]) -> None:
    rule_ids = schema["$defs"]["rule"]["properties"]["id"]["enum"]
    assert {p.stem for p in (CARDS / "rules").glob("*.yaml")} <= set(rule_ids)


def test_standalone_kind_schema_is_valid_and_checks_that_kind(
    capsys: pytest.CaptureFixture[str],
) -> None:
    standalone = emitted(capsys, "schema", "service")
    Draft202012Validator.check_schema(standalone)
    service = load(CARDS / "services" / "aih-order-sign.yaml")
    assert list(Draft202012Validator(standalone).iter_errors(service)) == []
    assert list(Draft202012Validator(standalone).iter_errors({**service, "hook": "order-dispatch"}))


def mmf_rule() -> dict[str, Any]:
    document: dict[str, Any] = load(CARDS / "rules" / "mmf-teratogenicity.yaml")
    return document


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda r: r["parameters"].update(age_min_years="twelve"), "parameters"),
        (lambda r: r["parameters"].update(negative_test_window_days=61), "parameters"),
        (lambda r: r["parameters"].update(unknown_threshold=3), "parameters"),
        (lambda r: r["outcomes"]["pregnant"].update(indicator="severe"), "outcomes"),
        (lambda r: r.update(colour="red"), ""),
        (lambda r: r.update(id="not-a-rule"), "id"),
        (lambda r: r["source"].pop("label"), "source"),
    ],
)
def test_schema_rejects_what_startup_rejects(
    schema: dict[str, Any], change: Any, where: str
) -> None:
    rule = copy.deepcopy(mmf_rule())
    rule.setdefault("parameters", {})
    change(rule)
    errors = list(kind_validator(schema, "rule").iter_errors(rule))
    assert errors, "the schema accepted an invalid rule file"
    assert any(where in "/".join(map(str, e.absolute_path)) for e in errors)


def test_schema_defaults_are_the_loader_defaults(schema: dict[str, Any]) -> None:
    branch = next(
        b
        for b in schema["$defs"]["rule"]["allOf"]
        if b["if"]["properties"]["id"]["const"] == "mmf-teratogenicity"
    )
    parameters = branch["then"]["properties"]["parameters"]["properties"]
    assert parameters["negative_test_window_days"]["default"] == 7
    assert parameters["hcg_positive_at_or_above"]["default"] == 25
    assert parameters["negative_test_window_days"]["maximum"] == 60
    outcome = schema["$defs"]["outcome"]["properties"]
    assert outcome["selection_behavior"]["default"] == "at-most-one"
    assert outcome["indicator"]["enum"] == ["info", "warning", "critical"]


def test_rules_show_fills_in_parameter_defaults(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cards = tmp_path / "cards"
    shutil.copytree(CARDS, cards)
    rule_file = cards / "rules" / "mmf-teratogenicity.yaml"
    rule = yaml.safe_load(rule_file.read_text(encoding="utf-8"))
    rule["parameters"] = {"negative_test_window_days": 14}
    rule_file.write_text(yaml.safe_dump(rule), encoding="utf-8")

    shown = emitted(capsys, "show", "mmf-teratogenicity", "--cards-dir", str(cards), "--json")
    assert shown["parameters"]["negative_test_window_days"]["value"] == 14
    assert shown["parameters"]["pregnancy_lookback_days"]["value"] == 280  # default filled in
    assert shown["outcomes"]["pregnant"]["selection_behavior"] == "at-most-one"
    assert "drug" in shown["outcomes"]["pregnant"]["variables"]


def test_rules_show_everything_as_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "show"]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    assert {s["id"] for s in document["services"]} >= {"aih-order-sign", "aih-patient-view"}
    assert document["terminology"]["analytes"]["alt"]["default_uln"] == 40


def test_rules_show_unknown_rule_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "show", "no-such-rule"]) == 2
    assert "no rule 'no-such-rule'" in capsys.readouterr().err


def test_nullable_fields_accept_null() -> None:
    from marshmallow import Schema, fields, validate

    from cds_service.common.json_schema import JsonSchemaGenerator

    class Example(Schema):
        threshold = fields.Decimal(load_default=None)
        mode = fields.String(allow_none=True, validate=validate.OneOf(["a", "b"]))
        nested = fields.Nested(type("Inner", (Schema,), {"x": fields.Integer()}), allow_none=True)

    generator = JsonSchemaGenerator()
    converted = generator.schema(Example())
    validator = Draft202012Validator(converted | {"$defs": generator.defs()})
    assert list(validator.iter_errors({"threshold": None, "mode": None, "nested": None})) == []
    assert list(validator.iter_errors({"mode": "c"}))
    assert list(validator.iter_errors({"nested": {"x": "not an integer"}}))
