"""Class value sets include their member value sets (``compose.include.valueSet``), resolved once
at load: a code added to a member counts in every class that contains it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cds_service.config.configuration import ConfigError, load_configuration
from cds_service.patient.terminology import Code, CodedConcept
from cds_service.rules.registry import REGISTRY

CARDS = Path(__file__).resolve().parents[2] / "cards"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOCAL_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288"  # a site's ERX codes

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
            "system": LOCAL_SYSTEM,
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
    order = CodedConcept((Code(LOCAL_SYSTEM, "900123", "MMF 500 mg tablet"),))
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


SCENARIO = Path(__file__).resolve().parents[2] / "fixtures" / "fhir" / "aih-refractory-pred-mmf"


def refractory_cards_with_local_mmf(
    app_factory: Callable[..., Any], cards_dir: Path
) -> list[dict[str, Any]]:
    """The steroid-refractory scenario with mycophenolate started first (2026-01-06, before
    prednisolone on 2026-02-01) and ordered by the local code ``900123`` only (no name the text
    fallback could read): T0 is the mycophenolate start only if it counts as first-line, and
    only then are both raised ALT results (2026-04-12, 2026-05-22) later than T0 + 90 days."""
    request = json.loads((SCENARIO / "request.json").read_text())
    for entry in request["prefetch"]["medicationRequests"]["entry"]:
        resource = entry["resource"]
        if resource["medicationCodeableConcept"]["coding"][0]["code"] == "200060":
            resource["medicationCodeableConcept"] = {
                "coding": [{"system": LOCAL_SYSTEM, "code": "900123", "display": "ERX 900123"}],
                "text": "ERX 900123",
            }
        else:  # prednisolone
            resource["authoredOn"] = "2026-02-01"
            resource["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["start"] = (
                "2026-02-01"
            )
    scenario = json.loads((SCENARIO / "scenario.json").read_text())
    now = datetime.fromisoformat(scenario["now"].replace("Z", "+00:00"))
    app = app_factory(cards_dir=cards_dir, clock=lambda: now)
    response = app.test_client().post(f"/cds-services/{scenario['service']}", json=request)
    assert response.status_code == 200
    return [
        card
        for card in response.get_json()["cards"]
        if card["source"]["topic"]["code"] == "aih-refractory"
    ]


def flat_copy_of_mycophenolate(data: dict[str, Any]) -> None:
    """aih-first-line as it was: the mycophenolate codes copied in instead of included."""
    members = data["compose"]["include"][0]["valueSet"]
    members.remove("urn:aih-cds:valueset:mycophenolate")
    copied = json.loads((CARDS / "valuesets" / "mycophenolate.json").read_text())
    data["expansion"]["contains"] += copied["expansion"]["contains"]


def test_the_steroid_refractory_card_counts_a_code_added_only_to_mycophenolate(
    app_factory: Callable[..., Any], cards: Path
) -> None:
    # the bug composition fixes: with a flat copy in aih-first-line, a code added (as the guide
    # says) to mycophenolate.json made the MMF warning appear but removed this card
    edit_json(cards, "mycophenolate", local_code)
    composed = refractory_cards_with_local_mmf(app_factory, cards)
    assert len(composed) == 1
    assert "steroid-refractory" in composed[0]["summary"]
    edit_json(cards, "aih-first-line", flat_copy_of_mycophenolate)
    assert refractory_cards_with_local_mmf(app_factory, cards) == []
