"""Medication exposure as EHRs record it: completed requests without an end date, infusion
series, MedicationAdministration and MedicationStatement, chained into courses by class gap."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.patient.record import SERIES_STATUS
from tests import factories as f
from tests.rule_harness import build_record, outcome_of, run_rule

ANTI_TNF = "anti-tnf-liver-injury"


def infusion(days_ago: float, **kwargs: Any) -> dict[str, Any]:
    """One completed infliximab request, no end date (one per infusion)."""
    return f.course(f.INFLIXIMAB, days_ago, status="completed", **kwargs)


def administration(days_ago: float | None, status: str = "completed") -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": f"ma-{days_ago}-{status}",
        "status": status,
        "medicationCodeableConcept": {
            "coding": [{"system": f.RXNORM, "code": f.INFLIXIMAB[0], "display": "infliximab"}]
        },
        "subject": {"reference": f"Patient/{f.PATIENT_ID}"},
    }
    if days_ago is not None:
        resource["effectiveDateTime"] = f.when(days_ago)
    return resource


def statement(status: str, start_days_ago: float, end_days_ago: float | None = None) -> dict:
    period: dict[str, Any] = {"start": f.when(start_days_ago)}
    if end_days_ago is not None:
        period["end"] = f.when(end_days_ago)
    return {
        "resourceType": "MedicationStatement",
        "id": f"ms-{status}-{start_days_ago}",
        "status": status,
        "medicationCodeableConcept": {"text": "Mycophenolate mofetil 500 mg"},
        "subject": {"reference": f"Patient/{f.PATIENT_ID}"},
        "effectivePeriod": period,
    }


def chart(
    *,
    requests: tuple[dict[str, Any], ...] = (),
    administrations: tuple[dict[str, Any], ...] = (),
    statements: tuple[dict[str, Any], ...] = (),
    alts: tuple[tuple[float, float], ...] = (),
) -> dict[str, Any]:
    prefetch = f.full_prefetch(
        observations=tuple(f.alt(v, days_ago=d) for v, d in alts),
        medication_requests=requests,
    )
    prefetch["medicationAdministrations"] = f.bundle(*administrations)
    prefetch["medicationStatements"] = f.bundle(*statements)
    return prefetch


def test_completed_request_without_end_is_one_exposure_chained_by_the_class_gap() -> None:
    record = build_record(chart(requests=(infusion(300), infusion(150), infusion(40))))
    (course,) = record.courses_in("anti-tnf")
    assert course.status == SERIES_STATUS
    assert [e.when for e in course.exposures] == [e.when for e in record.exposures]
    assert course.start == record.exposures[0].when
    assert course.is_active(f.NOW)  # last infusion 40 days ago + 180-day gap


def test_a_gap_as_long_as_the_class_gap_starts_a_new_course() -> None:
    record = build_record(chart(requests=(infusion(400), infusion(220))))
    first, second = sorted(record.courses_in("anti-tnf"), key=lambda c: c.start)
    assert len(first.exposures) == len(second.exposures) == 1
    assert not second.is_active(f.NOW)  # 220 days ago + 180 < now
    assert second.ended_within(f.NOW, 180)


def test_other_classes_use_the_default_gap() -> None:
    pred = (
        f.course(f.PREDNISOLONE, 70, status="stopped"),
        f.course(f.PREDNISOLONE, 35, status="stopped"),
    )
    courses = build_record(chart(requests=pred)).courses_in("corticosteroid")
    assert len(courses) == 2  # 35 days apart >= 30


def test_completed_request_with_an_end_date_stays_one_course() -> None:
    record = build_record(chart(requests=(infusion(300, end_days_ago=200),)))
    (course,) = record.courses_in("anti-tnf")
    assert course.status == "completed"
    assert course.exposures == ()


@pytest.mark.parametrize(
    ("alts", "expected"),
    [
        (((22, 110), (230, 6)), "severe-injury"),
        (((22, 110), (130, 6)), "marked-elevation"),
        (((22, 110), (60, 6)), None),
    ],
    ids=["critical", "warning", "no-card"],
)
@pytest.mark.parametrize(
    "exposure",
    ["long active order", "completed request per infusion", "administrations"],
)
def test_infusion_series_gives_the_same_liver_injury_answer_as_one_long_order(
    alts: tuple[tuple[float, float], ...], expected: str | None, exposure: str
) -> None:
    days = (100, 86, 58, 2)
    if exposure == "long active order":
        prefetch = chart(requests=(f.course(f.INFLIXIMAB, 100),), alts=alts)
    elif exposure == "administrations":
        prefetch = chart(administrations=tuple(administration(d) for d in days), alts=alts)
    else:
        prefetch = chart(requests=tuple(infusion(d) for d in days), alts=alts)
    assert outcome_of(run_rule(ANTI_TNF, prefetch)) == expected


def test_administration_statuses_that_are_not_exposure_are_ignored() -> None:
    record = build_record(
        chart(
            administrations=(administration(10, "not-done"), administration(9, "entered-in-error"))
        )
    )
    assert record.courses_in("anti-tnf") == []


def test_undated_exposure_is_an_undated_ended_course_never_a_current_one() -> None:
    record = build_record(chart(administrations=(administration(None),)))
    (course,) = record.courses_in("anti-tnf")
    assert (course.start, course.end) == (None, None)
    assert not course.is_active(f.NOW)
    assert record.exposures == []


def test_statements_active_is_a_course_with_a_period_too_not_taken_is_not() -> None:
    record = build_record(
        chart(
            statements=(
                statement("active", 60),
                statement("completed", 200, 120),
                statement("not-taken", 20),
            )
        )
    )
    courses = sorted(record.courses_in("mycophenolate"), key=lambda c: c.start)
    assert [(c.status, c.is_active(f.NOW)) for c in courses] == [
        ("completed", False),
        ("active", True),
    ]
