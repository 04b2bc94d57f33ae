"""Read only what rules need: Observations no value set of the configuration selects are neither
checked nor built; anything a rule might read, or that cannot be indexed without checking, is."""

from __future__ import annotations

import copy
import logging
from dataclasses import replace
from typing import Any

import pytest

from cds_service.hooks.engine import Engine
from cds_service.patient.readings import readings_in
from cds_service.patient.record import PatientRecord, RecordBuilder, RecordInputs
from cds_service.patient.selection import (
    CodeIndex,
    ObservationSelection,
    UndeclaredRead,
    code_keys,
    observations_rules_may_read,
)
from cds_service.patient.terminology import ValueSet
from tests import factories as f
from tests.conftest import deterministic_uuids
from tests.rule_harness import configuration
from tests.unit.test_prefetch import RecordingFetcher

HAEMOGLOBIN = "718-7"  # in no value set of the configuration: no rule reads it
TGN = "tgn-6"  # the 6-TGN results only the thiopurine-metabolite rule reads
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


# ---------------------------------------------------------------- per call: the triggered rules


def test_a_call_selects_only_the_terminology_its_rules_declare() -> None:
    config = configuration()
    selection = engine().selection_for([config.rules["mmf-teratogenicity"]])
    assert {"hcg"} <= selection.analytes
    assert {"alt", "bilirubin-total"}.isdisjoint(selection.analytes)
    assert TGN not in selection.valuesets
    assert config.rules["mmf-teratogenicity"].params["pregnancy_status_valueset"] in (
        selection.valuesets
    )
    bilirubin_loinc = (f.LOINC, "1975-2")
    assert not selection.index.selects(frozenset({bilirubin_loinc}))
    assert engine().codes_read.selects(frozenset({bilirubin_loinc}))  # some rule reads it


def test_a_value_set_named_brings_the_value_sets_it_includes() -> None:
    config = configuration()
    composed = [vs for vs in config.terminology.valuesets.values() if vs.includes]
    assert composed, "the shipped configuration composes value sets"
    rule = replace(
        config.rules["mmf-teratogenicity"],
        params={**config.rules["mmf-teratogenicity"].params, "extra_valuesets": [composed[0].id]},
    )
    assert set(composed[0].includes) <= engine().selection_for([rule]).valuesets


def test_results_only_an_untriggered_rule_reads_change_nothing_on_the_card() -> None:
    # bilirubin is read by the anti-TNF rule, not by the mycophenolate rule this order triggers:
    # its unknown unit would otherwise be named on the mycophenolate card
    odd_unit = f.bilirubin(1.0, unit="furlongs per fortnight")
    cards = mmf_call(f.hcg_qualitative(positive=False), odd_unit)
    assert cards
    assert cards == mmf_call(f.hcg_qualitative(positive=False))


def test_the_whole_chart_still_names_what_a_triggered_rule_could_not_use() -> None:
    odd_unit = f.hcg_quantitative(3.0, unit="furlongs per fortnight")
    (card,) = mmf_call(odd_unit)
    assert "units the service does not know" in card["detail"]


def selected_record(*analytes: str) -> PatientRecord:
    config = configuration()
    chosen = [config.analytes[a].valueset for a in analytes]
    selection = ObservationSelection.of(chosen, config.analytes.values())
    builder = RecordBuilder(config.terminology, config.analytes)
    return builder.build(RecordInputs(f.PATIENT_ID, f.patient(), [f.alt(50)]), selection)


def test_the_record_refuses_a_read_outside_its_selection() -> None:
    config = configuration()
    record = selected_record("alt")
    assert [r.value for r in record.lab_series("alt")] == [50]
    tgn6 = config.terminology.valueset(TGN)
    with pytest.raises(UndeclaredRead, match="'igg'"):
        record.lab_series("igg")
    with pytest.raises(UndeclaredRead, match="'hcg'"):
        record.qualitative_results("hcg")
    with pytest.raises(UndeclaredRead, match="'igg'"):
        record.not_measured_text("igg", None, "not measured")
    with pytest.raises(UndeclaredRead, match=tgn6.id):
        readings_in(record, tgn6)
    with pytest.raises(UndeclaredRead, match=tgn6.id):
        record.coded_in(tgn6)
    with pytest.raises(UndeclaredRead, match=tgn6.id):
        record.observed_in(config.terminology, [config.analytes["alt"].valueset.id, tgn6.id])


def test_a_record_of_every_observation_refuses_nothing() -> None:
    config = configuration()
    builder = RecordBuilder(config.terminology, config.analytes)
    record = builder.build(RecordInputs(f.PATIENT_ID, f.patient(), [f.alt(50)]))
    assert record.lab_series("igg") == []
    assert readings_in(record, config.terminology.valueset(TGN)) == []


@pytest.mark.undeclared_read
def test_a_rule_reading_what_it_does_not_declare_still_gets_its_card(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = configuration()
    mmf = config.rules["mmf-teratogenicity"]
    undeclared = replace(mmf, spec=replace(mmf.spec, terminology=frozenset({"mycophenolate"})))
    forgetful = Engine(
        replace(config, rules={**config.rules, mmf.id: undeclared}),
        RecordingFetcher({}),  # type: ignore[arg-type]
        lambda: f.NOW,
        deterministic_uuids(),
    )
    prefetch = f.full_prefetch(observations=(f.hcg_qualitative(positive=True),))
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=prefetch)
    with caplog.at_level(logging.ERROR, logger="cds_service.hooks.engine"):
        cards = forgetful.call("aih-order-sign", body).response()["cards"]
    assert cards == engine().call("aih-order-sign", body).response()["cards"]
    assert "positive" in cards[0]["detail"].lower()
    (error,) = [r for r in caplog.records if getattr(r, "undeclared_read", None)]
    assert getattr(error, "undeclared_read", None) == mmf.id
    assert "'hcg'" in error.getMessage()
