"""Class value sets include their member value sets (``compose.include.valueSet``), resolved once
at load: a code added to a member counts in every class that contains it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cds_service.config.configuration import ConfigError, load_configuration
from cds_service.patient.terminology import Code, CodedConcept
from cds_service.rules.registry import REGISTRY

CARDS = Path(__file__).resolve().parents[2] / "cards"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

# The flat code lists these class value sets carried before they were composed (system|code).
FORMER_FLAT = {
    "aih-first-line": (
        "http://www.nlm.nih.gov/research/umls/rxnorm|103",
        "http://www.nlm.nih.gov/research/umls/rxnorm|105611",
        "http://www.nlm.nih.gov/research/umls/rxnorm|1256",
        "http://www.nlm.nih.gov/research/umls/rxnorm|197388",
        "http://www.nlm.nih.gov/research/umls/rxnorm|19831",
        "http://www.nlm.nih.gov/research/umls/rxnorm|199058",
        "http://www.nlm.nih.gov/research/umls/rxnorm|200060",
        "http://www.nlm.nih.gov/research/umls/rxnorm|237112",
        "http://www.nlm.nih.gov/research/umls/rxnorm|265323",
        "http://www.nlm.nih.gov/research/umls/rxnorm|404351",
        "http://www.nlm.nih.gov/research/umls/rxnorm|408142",
        "http://www.nlm.nih.gov/research/umls/rxnorm|485020",
        "http://www.nlm.nih.gov/research/umls/rxnorm|485023",
        "http://www.nlm.nih.gov/research/umls/rxnorm|616435",
        "http://www.nlm.nih.gov/research/umls/rxnorm|616447",
        "http://www.nlm.nih.gov/research/umls/rxnorm|616449",
        "http://www.nlm.nih.gov/research/umls/rxnorm|616450",
        "http://www.nlm.nih.gov/research/umls/rxnorm|68149",
        "http://www.nlm.nih.gov/research/umls/rxnorm|7145",
        "http://www.nlm.nih.gov/research/umls/rxnorm|8638",
        "http://www.nlm.nih.gov/research/umls/rxnorm|8640",
        "http://www.whocc.no/atc|A07EA06",
        "http://www.whocc.no/atc|H02AB06",
        "http://www.whocc.no/atc|H02AB07",
        "http://www.whocc.no/atc|L01BB02",
        "http://www.whocc.no/atc|L04AA06",
        "http://www.whocc.no/atc|L04AX01",
    ),
    "corticosteroid": (
        "http://www.nlm.nih.gov/research/umls/rxnorm|19831",
        "http://www.nlm.nih.gov/research/umls/rxnorm|6902",
        "http://www.nlm.nih.gov/research/umls/rxnorm|8638",
        "http://www.nlm.nih.gov/research/umls/rxnorm|8640",
        "http://www.whocc.no/atc|A07EA06",
        "http://www.whocc.no/atc|H02AB06",
        "http://www.whocc.no/atc|H02AB07",
    ),
    "thiopurine": (
        "http://www.nlm.nih.gov/research/umls/rxnorm|103",
        "http://www.nlm.nih.gov/research/umls/rxnorm|10485",
        "http://www.nlm.nih.gov/research/umls/rxnorm|105611",
        "http://www.nlm.nih.gov/research/umls/rxnorm|1256",
        "http://www.nlm.nih.gov/research/umls/rxnorm|197388",
        "http://www.nlm.nih.gov/research/umls/rxnorm|404351",
        "http://www.whocc.no/atc|L01BB02",
        "http://www.whocc.no/atc|L01BB03",
        "http://www.whocc.no/atc|L04AX01",
    ),
    "xanthine-oxidase-inhibitor": (
        "http://www.nlm.nih.gov/research/umls/rxnorm|519",
        "http://www.nlm.nih.gov/research/umls/rxnorm|73689",
        "http://www.whocc.no/atc|M04AA01",
        "http://www.whocc.no/atc|M04AA03",
        "http://www.whocc.no/atc|M04AA51",
    ),
}


@pytest.mark.parametrize("vs_id", sorted(FORMER_FLAT))
def test_composed_expansion_equals_the_former_flat_list(vs_id: str) -> None:
    valueset = load_configuration(CARDS, REGISTRY).terminology.valueset(vs_id)
    assert valueset.includes, f"{vs_id} should include its member value sets"
    assert {f"{system}|{code}" for system, code in valueset.codes} == set(FORMER_FLAT[vs_id])


def edit_json(cards: Path, vs_id: str, change: Callable[[dict[str, Any]], None]) -> Path:
    path = cards / "valuesets" / f"{vs_id}.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))
    return path


def local_code(data: dict[str, Any]) -> None:
    data["expansion"]["contains"].append(
        {
            "system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288",
            "code": "900123",
            "display": "MMF 500 mg tablet (site formulary)",
            "extension": [
                {"url": "urn:aih-cds:verification", "valueString": "CONFIRMED (site build, test)"}
            ],
        }
    )


def test_a_code_added_to_a_member_counts_in_every_class_that_contains_it(cards: Path) -> None:
    edit_json(cards, "mycophenolate", local_code)
    terminology = load_configuration(cards, REGISTRY).terminology
    order = CodedConcept(
        (Code("urn:oid:1.2.840.114350.1.13.0.1.7.2.698288", "900123", "MMF 500 mg tablet"),)
    )
    assert terminology.valueset("aih-first-line").contains(order.codes[0].system, "900123")
    # the MMF warning's class and the treatment-response rules' first-line class, both
    assert {"mycophenolate", "aih-first-line"} <= terminology.classes_of(order)
    before = load_configuration(CARDS, REGISTRY).terminology
    assert "aih-first-line" not in before.classes_of(CodedConcept((Code(RXNORM, "900123"),)))


def test_includes_are_transitive(cards: Path) -> None:
    # budesonide <- corticosteroid <- a new class that includes only corticosteroid
    def steroid_class(data: dict[str, Any]) -> None:
        data.update(
            id="steroid-wrapper",
            url="urn:aih-cds:valueset:steroid-wrapper",
            compose={"include": [{"valueSet": ["urn:aih-cds:valueset:corticosteroid"]}]},
        )
        data["expansion"]["contains"] = []

    source = json.loads((cards / "valuesets" / "corticosteroid.json").read_text())
    steroid_class(source)
    (cards / "valuesets" / "steroid-wrapper.json").write_text(json.dumps(source))
    terminology = load_configuration(cards, REGISTRY).terminology
    wrapper = terminology.valueset("steroid-wrapper")
    assert wrapper.codes == terminology.valueset("corticosteroid").codes
    assert wrapper.contains(RXNORM, "19831")  # budesonide, two includes down


def test_an_unknown_include_names_file_and_reference(cards: Path) -> None:
    def typo(data: dict[str, Any]) -> None:
        data["compose"]["include"][0]["valueSet"][1] = "urn:aih-cds:valueset:azathioprin"

    edit_json(cards, "aih-first-line", typo)
    with pytest.raises(ConfigError) as caught:
        load_configuration(cards, REGISTRY)
    assert caught.value.file.endswith("aih-first-line.json")
    assert caught.value.field == "compose.include.0.valueSet.1"
    assert "urn:aih-cds:valueset:azathioprin" in caught.value.message
    assert "did you mean 'urn:aih-cds:valueset:azathioprine-mercaptopurine'?" in str(caught.value)
    assert "compose.include#1.valueSet#2" in str(caught.value)  # positions from 1 for people


def test_an_include_cycle_is_a_load_error(cards: Path) -> None:
    edit_json(
        cards,
        "budesonide",
        lambda d: d.update(
            compose={"include": [{"valueSet": ["urn:aih-cds:valueset:corticosteroid"]}]}
        ),
    )
    with pytest.raises(ConfigError) as caught:
        load_configuration(cards, REGISTRY)
    text = str(caught.value)
    assert "include cycle" in text
    assert "corticosteroid -> budesonide -> corticosteroid" in text or (
        "budesonide -> corticosteroid -> budesonide" in text
    )
    assert caught.value.file.endswith(("budesonide.json", "corticosteroid.json"))


def test_a_value_set_cannot_include_itself(cards: Path) -> None:
    edit_json(
        cards,
        "allopurinol",
        lambda d: d.update(
            compose={"include": [{"valueSet": ["urn:aih-cds:valueset:allopurinol"]}]}
        ),
    )
    with pytest.raises(ConfigError, match="allopurinol -> allopurinol"):
        load_configuration(cards, REGISTRY)
