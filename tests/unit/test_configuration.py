"""A bad configuration file stops start-up naming the file and the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from cds_service.config.configuration import _FAST_YAML_LOADER, ConfigError, load_configuration
from cds_service.rules.registry import REGISTRY

CARDS = Path(__file__).resolve().parents[2] / "cards"
RULE = "rules/mmf-teratogenicity.yaml"
SERVICE = "services/aih-order-sign.yaml"


def edit_yaml(cards: Path, name: str, change: Callable[[dict], None]) -> None:  # type: ignore[type-arg]
    path = cards / name
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def test_bundled_configuration_loads() -> None:
    config = load_configuration(CARDS, REGISTRY)
    assert set(config.services) == {"aih-order-sign", "aih-order-select", "aih-patient-view"}
    assert "mmf-teratogenicity" in config.rules
    assert config.rules["mmf-teratogenicity"].params["age_max_years"] == 55


@pytest.mark.parametrize(
    ("name", "change", "field", "message"),
    [
        (
            RULE,
            lambda d: d["outcomes"]["pregnant"].update(indicator="urgent"),
            "outcomes.pregnant.indicator",
            "Must be one of",
        ),
        (
            RULE,
            lambda d: d["outcomes"]["pregnant"].update(summary="${nope}"),
            "outcomes.pregnant.summary",
            "unknown variable",
        ),
        (
            RULE,
            lambda d: d["outcomes"]["pregnant"].update(detail="$"),
            "outcomes.pregnant.detail",
            "invalid template",
        ),
        (RULE, lambda d: d["outcomes"].pop("male-patient"), "outcomes.male-patient", "missing"),
        (
            RULE,
            lambda d: d["outcomes"].update(extra=d["outcomes"]["pregnant"]),
            "outcomes.extra",
            "no such outcome",
        ),
        (
            RULE,
            lambda d: d["parameters"].update(age_min_years="twelve"),
            "parameters.age_min_years",
            "integer",
        ),
        (
            RULE,
            lambda d: d["parameters"].update(age_min_years=60),
            "parameters.age_min_years",
            "below",
        ),
        (
            RULE,
            lambda d: d["parameters"].update(surprise=1),
            "parameters.surprise",
            "Unknown field",
        ),
        (RULE, lambda d: d.update(override_reasons=[]), "override_reasons", "required"),
        (
            RULE,
            lambda d: d["override_reasons"][0].pop("display"),
            "override_reasons.0.display",
            "Missing",
        ),
        (
            RULE,
            lambda d: d["outcomes"]["pregnant"].update(suggestions=["ghost"]),
            "outcomes.pregnant.suggestions.0",
            "unknown suggestion",
        ),
        (
            RULE,
            lambda d: d["suggestions"]["order-serum-hcg"].pop("resource"),
            "suggestions.order-serum-hcg.resource",
            "needs a resource",
        ),
        (
            RULE,
            lambda d: d["links"]["rems"].update(appContext="x"),
            "links.rems.appContext",
            "smart",
        ),
        (RULE, lambda d: d.update(id="other"), "id", "file name"),
        (
            SERVICE,
            lambda d: d["prefetch"].update(x="Observation?code={{context.draftOrders}}"),
            "prefetch.x",
            "prefetch token",
        ),
        (
            SERVICE,
            lambda d: d["prefetch"].update(x="Observation?date={{today()}}"),
            "prefetch.x",
            "prefetch token",
        ),
        (
            SERVICE,
            lambda d: d["prefetch"].update(x="Encounter?patient={{context.patientId}}"),
            "prefetch.x",
            "resource type",
        ),
        (SERVICE, lambda d: d["prefetch"].pop("conditions"), "prefetch", "needs ['Condition']"),
        (SERVICE, lambda d: d.update(hook="order-dispatch"), "hook", "Must be one of"),
        (SERVICE, lambda d: d["rules"].insert(1, "no-such-rule"), "rules.1", "no rule file"),
    ],
)
def test_invalid_files_name_file_and_field(
    cards: Path,
    name: str,
    change: Callable[[dict], None],
    field: str,
    message: str,  # type: ignore[type-arg]
) -> None:
    assert_config_error(cards, name, change, field, message)


def assert_config_error(
    cards: Path,
    name: str,
    change: Callable[[dict], None],  # type: ignore[type-arg]
    field: str,
    message: str,
) -> None:
    edit_yaml(cards, name, change)
    with pytest.raises(ConfigError) as caught:
        load_configuration(cards, REGISTRY)
    assert caught.value.file.endswith(name)
    assert caught.value.field == field
    assert message in caught.value.message


def test_patient_view_rejects_a_rule_that_does_not_run_there(cards: Path) -> None:
    edit_yaml(
        cards, "services/aih-patient-view.yaml", lambda d: d.update(rules=["mmf-teratogenicity"])
    )
    with pytest.raises(ConfigError, match="does not run on patient-view"):
        load_configuration(cards, REGISTRY)


def test_unknown_valueset_in_terminology(cards: Path) -> None:
    edit_yaml(
        cards,
        "terminology.yaml",
        lambda d: d["drug_classes"]["mycophenolate"].update(valueset="nope"),
    )
    with pytest.raises(ConfigError) as caught:
        load_configuration(cards, REGISTRY)
    assert caught.value.field == "drug_classes.mycophenolate.valueset"


def test_analyte_unit_must_be_listed(cards: Path) -> None:
    edit_yaml(cards, "terminology.yaml", lambda d: d["analytes"]["alt"].update(unit="ukat/L"))
    with pytest.raises(ConfigError, match="canonical unit"):
        load_configuration(cards, REGISTRY)


def test_valueset_shape_is_checked(cards: Path) -> None:
    path = cards / "valuesets" / "mycophenolate.json"
    data = json.loads(path.read_text())
    del data["expansion"]["contains"][0]["code"]
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as caught:
        load_configuration(cards, REGISTRY)
    assert caught.value.field == "expansion.contains.0.code"


def test_invalid_yaml_is_reported(cards: Path) -> None:
    (cards / RULE).write_text("id: mmf-teratogenicity\nenabled: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as caught:
        load_configuration(cards, REGISTRY)
    # PyYAML's own message, which quotes the offending line (libyaml's does not)
    assert "enabled: [unclosed" in str(caught.value)
    assert "line 2" in str(caught.value)


def test_the_fast_yaml_parser_reads_every_shipped_file_as_pyyaml_does(cards: Path) -> None:
    files = sorted(cards.rglob("*.yaml"))
    assert len(files) > 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert yaml.load(text, Loader=_FAST_YAML_LOADER) == yaml.safe_load(text), path.name  # noqa: S506


def test_missing_directory() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_configuration(Path("/nonexistent/cards"), REGISTRY)


def test_every_valueset_entry_carries_a_verification_mark() -> None:
    marks = ("CONFIRMED", "CONFIRMED-2nd", "SEEN-2ND", "UNVERIFIED")
    for path in (CARDS / "valuesets").glob("*.json"):
        for entry in json.loads(path.read_text())["expansion"]["contains"]:
            notes = [
                e["valueString"]
                for e in entry["extension"]
                if e["url"] == "urn:aih-cds:verification"
            ]
            assert notes, (path.name, entry["code"])
            assert notes[0].startswith(marks), (path.name, entry["code"])


THIO = "rules/thiopurine-metabolites.yaml"
TPMT = "rules/tpmt-before-thiopurine.yaml"
ALLO = "rules/allopurinol-thiopurine.yaml"
BUD = "rules/budesonide-cirrhosis.yaml"


@pytest.mark.parametrize(
    ("name", "change", "field", "message"),
    [
        (
            THIO,
            lambda d: d["parameters"]["units"][0].update(tgn_low_below=500),
            "parameters.units.0.tgn_low_below",
            "below tgn_high_above",
        ),
        (THIO, lambda d: d["parameters"].update(units=[]), "parameters.units", "Shorter"),
        (
            THIO,
            lambda d: d["parameters"]["units"][1]["spellings"].append("PMOL/8X10^8RBC"),
            "parameters.units",
            "listed twice",
        ),
        (
            THIO,
            lambda d: d["parameters"].update(tgn_valueset="tgn"),
            "parameters.tgn_valueset",
            "unknown value set 'tgn'",
        ),
        (
            THIO,
            lambda d: d["parameters"].update(allopurinol_class="xo"),
            "parameters.allopurinol_class",
            "unknown drug class",
        ),
        (
            THIO,
            lambda d: d["outcomes"]["shunting"].update(summary="${nope}"),
            "outcomes.shunting.summary",
            "unknown variable",
        ),
        (
            TPMT,
            lambda d: d["parameters"].update(absent_activity_fraction=1),
            "parameters.absent_activity_fraction",
            "less than",
        ),
        (
            TPMT,
            lambda d: d["parameters"].update(genotype_phenotype_valuesets=["nudt15", "x"]),
            "parameters.genotype_phenotype_valuesets",
            "unknown value set 'x'",
        ),
        (TPMT, lambda d: d["parameters"].pop("poor_terms"), "parameters.poor_terms", "required"),
        (TPMT, lambda d: d["outcomes"].pop("no-result"), "outcomes.no-result", "missing"),
        (
            ALLO,
            lambda d: d["parameters"]["reduced_dose_ceilings"][0].update(max_mg_per_day=0),
            "parameters.reduced_dose_ceilings.0.max_mg_per_day",
            "greater than",
        ),
        (
            BUD,
            lambda d: d["parameters"].update(cirrhosis_valueset="liver"),
            "parameters.cirrhosis_valueset",
            "unknown value set",
        ),
        (
            BUD,
            lambda d: d["parameters"]["non_systemic_terms"].append("ab"),
            "parameters.non_systemic_terms.20",
            "Shorter",
        ),
    ],
)
def test_drug_safety_rule_files_are_validated(
    cards: Path,
    name: str,
    change: Callable[[dict], None],  # type: ignore[type-arg]
    field: str,
    message: str,
) -> None:
    assert_config_error(cards, name, change, field, message)
