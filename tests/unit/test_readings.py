"""Observation readings: own values, panel components and hasMember members, in their own units."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cds_service.common.fhirdates import parse_fhir_datetime
from cds_service.patient.readings import all_readings, readings_in
from cds_service.patient.record import PatientRecord, _sort_key
from cds_service.patient.units import same_unit
from tests import factories as f
from tests.rule_harness import configuration


def by_code(observations: list[dict[str, Any]]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for reading in all_readings(observations):
        found.setdefault(reading.code.codes[0].code, []).append(reading)
    return found


def test_components_of_the_panel_are_read_with_the_panel_date() -> None:
    panel = f.metabolite_panel(180, 7000, days_ago=5)
    readings = by_code([panel])
    (tgn,) = readings["32660-3"]
    assert (tgn.quantity, tgn.unit, tgn.origin) == (Decimal(180), f.RBC_UNIT, "panel component")
    assert tgn.when == parse_fhir_datetime(f.when(5))
    assert readings["32654-6"][0].quantity == 7000


def test_has_member_separate_observation_takes_the_panel_date_when_it_has_none() -> None:
    member = f.tgn(300)
    del member["effectiveDateTime"]
    panel = f.observation("82869-9", days_ago=3)
    panel["hasMember"] = [{"reference": f"Observation/{member['id']}"}]
    (reading,) = by_code([panel, member])["32660-3"]
    assert reading.origin == "panel member"
    assert reading.when == parse_fhir_datetime(f.when(3))


def test_has_member_contained_observation_is_read() -> None:
    member = f.mmp(6000)
    member["id"] = "m1"
    panel = f.observation("82869-9", days_ago=3)
    panel["contained"] = [member]
    panel["hasMember"] = [{"reference": "#m1"}]
    (reading,) = by_code([panel])["32654-6"]
    assert reading.observation_id == f"{panel['id']}#m1"
    assert reading.quantity == 6000


def test_member_status_is_respected() -> None:
    member = f.tgn(300, days_ago=2)
    member["status"] = "entered-in-error"
    panel = f.observation("82869-9", days_ago=3)
    panel["hasMember"] = [{"reference": f"Observation/{member['id']}"}]
    assert "32660-3" not in by_code([panel, member])


def test_string_coded_and_interpretation_values() -> None:
    text = f.tpmt_phenotype("Intermediate metabolizer")
    coded = f.observation("79713-4", value_code=("urn:lab", "PM"))
    coded["valueCodeableConcept"]["text"] = "Poor metabolizer"
    flag_only = f.observation("21563-2")
    flag_only["interpretation"] = [{"text": "Normal"}]
    readings = all_readings([text, coded, flag_only])
    assert [r.value_label() for r in readings] == [
        "Intermediate metabolizer",
        "Poor metabolizer",
        "no value",
    ]
    assert readings[2].answer_texts() == ["Normal"]


def test_reference_low_with_and_without_unit() -> None:
    (with_unit,) = all_readings([f.tpmt_activity(10, low=15)])
    assert (with_unit.reference_low, with_unit.reference_low_unit) == (Decimal(15), "U/mL")
    bare = f.tpmt_activity(10, low=None)
    bare["referenceRange"] = [{"low": {"value": 15}}]
    (without,) = all_readings([bare])
    assert (without.reference_low, without.reference_low_unit) == (Decimal(15), None)


def test_readings_in_filters_by_value_set_and_sorts_oldest_first() -> None:
    config = configuration()
    record = PatientRecord(
        patient_id=f.PATIENT_ID,
        observation_resources=[f.tgn(300, days_ago=1), f.tgn(200, days_ago=30), f.alt(50)],
    )
    readings = readings_in(record, config.terminology.valueset("tgn-6"))
    assert [r.quantity for r in readings] == [200, 300]


def test_units_compared_without_spaces_or_case() -> None:
    assert same_unit("pmol/8 x 10[8] RBC", "PMOL/8X10[8]RBC")
    assert not same_unit("pmol/0.2 mL", "pmol/8x10^8 RBC")


def test_all_readings_can_build_only_one_value_set() -> None:
    config = configuration()
    panel = f.metabolite_panel(180, 7000)
    only_mmp = all_readings([panel, f.alt(50)], config.terminology.valueset("mmp-6"))
    assert [(r.code.codes[0].code, r.quantity) for r in only_mmp] == [("32654-6", 7000)]


def test_readings_are_read_once_per_record() -> None:
    config = configuration()
    record = PatientRecord(patient_id=f.PATIENT_ID, observation_resources=[f.tgn(300)])
    assert len(readings_in(record, config.terminology.valueset("tgn-6"))) == 1
    record.observation_resources.append(f.tgn(200))  # after the first read: not seen again
    assert len(readings_in(record, config.terminology.valueset("tgn-6"))) == 1
    assert sum(map(len, record.derived["coded_elements"].values())) == 1


def test_readings_in_equals_reading_every_element_and_filtering() -> None:
    """readings_in tests each distinct code once; the readings, and the chart's order among
    results of the same time, are those of testing every element (all_readings)."""
    config = configuration()
    same_day = 10
    # also coded locally: another code (key set), in the same value sets, on the same day
    local = {"system": "urn:example:lab", "code": "TGN"}
    tgn_local, mmp_local = f.tgn(275, days_ago=same_day), f.mmp(5500, days_ago=same_day)
    tgn_local["code"]["coding"].append(local)
    mmp_local["code"]["coding"].insert(0, local)
    chart = [
        tgn_local,
        f.mmp(5000, days_ago=same_day),
        f.tgn(250, days_ago=same_day),
        f.metabolite_panel(180, 7000, days_ago=same_day),
        f.alt(50, days_ago=same_day),
        f.tgn(300, days_ago=same_day),
        mmp_local,
        f.mmp(6000, days_ago=40),
        f.tgn(200, days_ago=40),
        f.observation("32660-3", system=" urn:oid:2.16.840.1.113883.6.1", value=90, days_ago=5),
    ]
    record = PatientRecord(patient_id=f.PATIENT_ID, observation_resources=chart)
    for valueset_id in ("tgn-6", "mmp-6"):
        valueset = config.terminology.valueset(valueset_id)
        expected = sorted(all_readings(chart, valueset), key=_sort_key)
        assert len(expected) >= 3
        assert readings_in(record, valueset) == expected
