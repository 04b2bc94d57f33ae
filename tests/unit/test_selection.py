"""Read only what rules need: Observations no value set of the configuration selects are neither
checked nor built; anything a rule might read, or that cannot be indexed without checking, is."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cds_service.hooks.engine import Engine
from cds_service.patient.selection import CodeIndex, code_keys, observations_rules_may_read
from cds_service.patient.terminology import ValueSet
from tests import factories as f
from tests.conftest import deterministic_uuids
from tests.rule_harness import configuration
from tests.unit.test_prefetch import RecordingFetcher

HAEMOGLOBIN = "718-7"  # in no value set of the configuration: no rule reads it
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
CIRRHOSIS_LIKE = ValueSet(
    "vs", "", "vs", frozenset({(ICD10, "K74")}), ancestors=frozenset({(ICD10, "K74")})
)


def index() -> CodeIndex:
    config = configuration()
    return CodeIndex.of(
        [*config.terminology.valuesets.values(), *(a.valueset for a in config.analytes.values())]
    )


def kept(*observations: dict[str, Any]) -> list[dict[str, Any]]:
    return list(observations_rules_may_read(observations, index())[0])  # type: ignore[arg-type]


def test_a_result_no_value_set_selects_is_not_read() -> None:
    haemoglobin = f.observation(HAEMOGLOBIN, value=13.1, unit="g/dL")
    alt = f.alt(40)
    assert kept(haemoglobin, alt) == [alt]
    assert observations_rules_may_read([haemoglobin, alt], index())[1] == 1


def test_codes_are_matched_as_the_reader_reads_them() -> None:
    padded = f.alt(40)
    padded["code"]["coding"][0] |= {"system": " urn:oid:2.16.840.1.113883.6.1", "code": "1742-6 "}
    second_coding = f.observation(HAEMOGLOBIN)
    second_coding["code"]["coding"].append({"system": f.LOINC, "code": "1742-6"})
    assert kept(padded, second_coding) == [padded, second_coding]


def test_icd10_descendants_are_selected() -> None:
    child = CodeIndex.of([CIRRHOSIS_LIKE])
    assert child.selects(frozenset({(ICD10, "K746")}))
    assert not child.selects(frozenset({(ICD10, "K70")}))


@pytest.mark.parametrize(
    "code",
    [
        "1742-6",
        [{"coding": [{"system": f.LOINC, "code": HAEMOGLOBIN}]}],
        {"coding": {"system": f.LOINC, "code": HAEMOGLOBIN}},
        {"coding": ["x"]},
        {"coding": [{"code": HAEMOGLOBIN}]},
        {"coding": [{"system": f.LOINC, "code": 718}]},
    ],
    ids=["string", "array", "single-coding", "coding-not-object", "no-system", "numeric-code"],
)
def test_a_code_that_cannot_be_indexed_without_checking_is_read(code: Any) -> None:
    observation = f.observation(HAEMOGLOBIN) | {"code": code}
    assert code_keys(observation) is None
    assert kept(observation) == [observation]


@pytest.mark.parametrize("element", ["component", "hasMember", "contained"])
def test_panels_and_components_are_read_whatever_their_own_code(element: str) -> None:
    panel = f.observation(HAEMOGLOBIN) | {element: [{"reference": "Observation/x"}]}
    assert kept(panel) == [panel]


def engine() -> Engine:
    return Engine(
        configuration(),
        RecordingFetcher({}),  # type: ignore[arg-type]
        lambda: f.NOW,
        deterministic_uuids(),  # the same cards compare equal, uuids included
    )


def mmf_call(*observations: dict[str, Any]) -> list[dict[str, Any]]:
    prefetch = f.full_prefetch(observations=observations)
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=prefetch)
    cards = engine().call("aih-order-sign", body).response()["cards"]
    found: list[dict[str, Any]] = cards
    return found


def test_a_broken_result_a_rule_reads_is_still_named_on_the_card() -> None:
    broken = f.pregnancy_status(pregnant=False) | {"status": 7}
    (card,) = mmf_call(broken)
    assert "1 Observation resource(s) could not be read" in card["detail"]


def test_results_no_rule_reads_change_nothing_on_the_card() -> None:
    haemoglobin = f.observation(HAEMOGLOBIN, value=13.1, unit="g/dL")
    broken_haemoglobin = copy.deepcopy(haemoglobin) | {"status": 7, "id": "hb-broken"}
    cards = mmf_call(haemoglobin, broken_haemoglobin)
    assert cards
    assert cards == mmf_call()
