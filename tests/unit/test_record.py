"""PatientRecord: units, ULN, dates, courses, malformed resources."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cds_service.common.fhirdates import parse_fhir_datetime
from cds_service.config.configuration import Configuration, load_configuration
from cds_service.patient.record import PatientRecord, RecordBuilder, RecordInputs
from cds_service.rules.registry import REGISTRY
from tests import factories as f

CARDS = Path(__file__).resolve().parents[2] / "cards"


@pytest.fixture(scope="module")
def config() -> Configuration:
    return load_configuration(CARDS, REGISTRY)


def build(config: Configuration, **kwargs: Any) -> PatientRecord:
    kwargs.setdefault("patient", f.patient())
    return RecordBuilder(config.terminology, config.analytes).build(
        RecordInputs(patient_id=f.PATIENT_ID, **kwargs)
    )


def test_alt_units_are_equivalent_and_values_decimal(config: Configuration) -> None:
    obs = (
        f.observation("1742-6", value=55.1, unit="[IU]/L"),
        f.observation("1742-6", value=30, unit="U/L"),
    )
    series = build(config, observations=obs).lab_series("alt")
    assert {lab.value for lab in series} == {Decimal("55.1"), Decimal(30)}
    assert {lab.unit for lab in series} == {"U/L"}


def test_igg_mg_dl_is_converted_to_g_l(config: Configuration) -> None:
    (lab,) = build(
        config, observations=(f.observation("2465-3", value=1800, unit="mg/dL"),)
    ).lab_series("igg")
    assert lab.value == Decimal("18.00")
    assert (lab.reported_value, lab.reported_unit) == (Decimal(1800), "mg/dL")


def test_unknown_unit_is_never_compared_and_is_reported(config: Configuration) -> None:
    record = build(config, observations=(f.observation("1742-6", value=2, unit="U/mL"),))
    assert record.lab_series("alt") == []
    assert record.unknown_units == [("alt", "U/mL")]
    (unread,) = record.unread_results("alt")
    assert "2 U/mL" in unread.describe()
    assert "in unit 'U/mL', not interpreted" in unread.describe()


def test_uln_from_reference_range_else_default(config: Configuration) -> None:
    record = build(config, observations=(f.alt(80, days_ago=2, uln=33), f.alt(90, days_ago=1)))
    first, second = record.lab_series("alt")
    assert (first.uln, first.uln_source) == (Decimal(33), "reference range")
    assert (second.uln, second.uln_source) == (Decimal(40), "configured default")


def test_results_sorted_by_date_undated_first(config: Configuration) -> None:
    obs = (f.alt(3, days_ago=1), f.alt(1, days_ago=None), f.alt(2, days_ago=10))
    assert [lab.value for lab in build(config, observations=obs).lab_series("alt")] == [1, 2, 3]


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled", "registered"])
def test_non_result_statuses_are_ignored(config: Configuration, status: str) -> None:
    assert (
        build(
            config, observations=(f.observation("1742-6", value=50, unit="U/L", status=status),)
        ).lab_series("alt")
        == []
    )


def test_effective_period_and_issued_dates(config: Configuration) -> None:
    a = f.alt(50, days_ago=None)
    a["effectivePeriod"] = {"start": "2026-01-05"}
    b = f.alt(60, days_ago=None)
    b["issued"] = "2026-02-01T10:00:00Z"
    whens = [lab.when for lab in build(config, observations=(a, b)).lab_series("alt")]
    assert whens == [parse_fhir_datetime("2026-01-05"), parse_fhir_datetime("2026-02-01T10:00:00Z")]


def test_unread_problems_never_drop_a_resource_unusable_needed_elements_do(
    config: Configuration,
) -> None:
    vendor = f.alt(70)
    vendor["surprise"] = True  # not an R4B element: no rule reads it
    vendor["category"] = {"text": "laboratory"}  # one object where R4B wants an array
    vendor["status"] = "final "
    missing_status = f.alt(80)
    del missing_status["status"]
    bad_code = f.alt(90)
    bad_code["code"] = "ALT"
    record = build(config, observations=(f.alt(50), vendor, missing_status, bad_code))
    assert sorted(lab.value for lab in record.lab_series("alt")) == [50, 70]
    assert len(record.skipped) == 2
    summary = record.skipped_summary()
    assert "2 Observation" in summary
    assert "no status" in summary
    assert "unusable code" in summary


def test_unreadable_read_element_is_named_and_the_rest_is_read(config: Configuration) -> None:
    odd_date = f.alt(70)
    odd_date["effectiveDateTime"] = "last tuesday"
    record = build(config, observations=(odd_date,))
    assert [lab.value for lab in record.lab_series("alt")] == [70]
    assert record.lab_series("alt")[0].when is None
    assert record.unread == [("Observation", "effectiveDateTime")]
    assert "Observation.effectiveDateTime (1)" in record.unread_summary()


def test_medication_courses_by_class(config: Configuration) -> None:
    mmf = f.medication_request(status="active", start_days_ago=100)
    aza = f.medication_request(
        rxnorm="1256",
        display="azathioprine",
        status="completed",
        start_days_ago=400,
        end_days_ago=200,
    )
    other = f.medication_request(rxnorm="161", display="acetaminophen")
    cancelled = f.medication_request(status="cancelled")
    record = build(config, medication_requests=(mmf, aza, other, cancelled))
    assert [c.id for c in record.courses_in("mycophenolate")] == [mmf["id"]]
    assert [c.id for c in record.courses_in("thiopurine")] == [aza["id"]]
    (course,) = record.courses_in("azathioprine-mercaptopurine")
    assert course.end == parse_fhir_datetime(f.when(200))
    assert not course.is_active(f.NOW)


def test_medication_reference_resolved_from_fetched_medications(config: Configuration) -> None:
    request = f.medication_request(status="active")
    del request["medicationCodeableConcept"]
    request["medicationReference"] = {"reference": "Medication/m1"}
    med = {
        "resourceType": "Medication",
        "id": "m1",
        "code": {"coding": [{"system": f.RXNORM, "code": "1256"}]},
    }
    record = build(config, medication_requests=(request,), medications=(med,))
    assert record.courses_in("thiopurine")


def test_patient_fields(config: Configuration) -> None:
    record = build(config, patient=f.patient(gender="female", birth_date="1990"))
    assert record.patient_known
    assert (record.gender, str(record.birth_date)) == ("female", "1990-01-01")


def test_condition_statuses(config: Configuration) -> None:
    conditions = (
        f.condition("408335007", clinical_status=None),
        f.condition("408335007", clinical_status="resolved"),
        f.condition("408335007", clinical_status="relapse"),
    )
    active = build(config, conditions=conditions).active_conditions_in(
        config.terminology, "autoimmune-hepatitis"
    )
    assert len(active) == 2
