"""Treatment-response rules, revision 2: treatment episodes (T0), courses left out (other
indication, non-systemic route), recency of results, relapse after complete response, and the
withdrawal of non-response after a later fall.

Conventions as in test_treatment_response.py: ALT in U/L against the default ULN 40 U/L, IgG in
g/L against 16 g/L; days are days before NOW.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from cds_service.patient.record import MedicationCourse
from cds_service.patient.terminology import CodedConcept
from cds_service.rules.aih_treatment import treatment_course
from cds_service.rules.base import Finding
from cds_service.rules.episodes import episodes, last_exposure
from tests import factories as f
from tests.rule_harness import build_record, configuration, outcome_of, run_rule

NONRESPONSE = "aih-nonresponse"
INSUFFICIENT = "aih-insufficient-response"
REFRACTORY = "aih-refractory"
PREDNISONE = ("8640", "prednisone")
COPD = ("13645005", "Chronic obstructive lung disease")
ASTHMA = ("195967001", "Asthma")


def t0_of(prefetch: dict[str, Any], rule: str = INSUFFICIENT) -> str | None:
    config = configuration()
    course = treatment_course(
        build_record(prefetch), config.terminology, config.rules[rule].params, f.NOW
    )
    return course.t0.date().isoformat() if course else None


def day(days_ago: int) -> str:
    return f.when(days_ago)[:10]  # type: ignore[index]


def reason(course: dict[str, Any], code: tuple[str, str]) -> dict[str, Any]:
    course["reasonCode"] = [{"coding": [{"system": f.SNOMED, "code": code[0], "display": code[1]}]}]
    return course


def ended(drug: tuple[str, str], start_ago: int, end_ago: int) -> dict[str, Any]:
    return f.course(drug, start_ago, status="completed", end_days_ago=end_ago)


def chart(*courses: dict[str, Any], alts: tuple[tuple[float, int], ...] = ()) -> dict[str, Any]:
    return f.full_prefetch(
        observations=tuple(f.alt(v, d) for v, d in alts),
        medication_requests=courses,
        conditions=(f.aih_condition(),),
    )


# ---------------------------------------------------------------- episodes() and last_exposure()

DAY = timedelta(days=1)


def med(
    start: datetime | None, end: datetime | None = None, status: str = "active"
) -> MedicationCourse:
    return MedicationCourse(
        id=f"mr-{start}-{end}-{status}",
        concept=CodedConcept(text="azathioprine"),
        classes=frozenset({"thiopurine"}),
        status=status,
        start=start,
        end=end,
    )


@pytest.mark.parametrize(
    ("start", "counted"),
    [
        (f.NOW - 30 * DAY, True),
        (f.NOW, True),  # starts today
        (f.NOW + 12 * timedelta(hours=1), True),  # the EHR's clock a little ahead
        (f.NOW + DAY, True),  # the whole day of clock skew allowed
        (f.NOW + DAY + timedelta(seconds=1), False),  # beyond it: an order for later
        (f.NOW + 2 * DAY, False),
    ],
    ids=["30-days-ago", "now", "in-12-hours", "in-1-day", "in-1-day-1-second", "in-2-days"],
)
def test_a_course_starting_up_to_a_day_after_now_is_part_of_an_episode(
    start: datetime, counted: bool
) -> None:
    course = med(start)
    chains = episodes([course], gap_days=180, now=f.NOW)
    assert [c.members for c in chains] == ([(course,)] if counted else [])


@pytest.mark.parametrize(
    ("course", "last"),
    [
        (med(f.NOW - 30 * DAY), f.NOW),  # open: taken now
        (med(f.NOW - 30 * DAY, end=f.NOW + 30 * DAY), f.NOW),  # open until a later end
        (med(f.NOW - 30 * DAY, end=f.NOW - 10 * DAY), f.NOW - 10 * DAY),  # active, period over
        (med(f.NOW - 30 * DAY, end=f.NOW - 10 * DAY, status="completed"), f.NOW - 10 * DAY),
        (med(f.NOW - 30 * DAY, end=f.NOW + 5 * DAY, status="stopped"), f.NOW),  # stopped early
        (med(f.NOW - 30 * DAY, status="completed"), f.NOW - 30 * DAY),  # one exposure: its start
        (med(None), None),
    ],
    ids=[
        "open",
        "open-until-later",
        "active-period-over",
        "completed",
        "stopped-end-ahead",
        "completed-no-end",
        "undated",
    ],
)
def test_last_exposure(course: MedicationCourse, last: datetime | None) -> None:
    assert last_exposure(course, f.NOW) == last


# ---------------------------------------------------------------- T0 and episodes


def test_copd_burst_years_before_aih_does_not_date_the_treatment_start() -> None:
    burst = ended(PREDNISONE, 7 * 365, 7 * 365 - 10)
    prefetch = chart(burst, f.course(f.PREDNISOLONE, 35), alts=((300, 40), (200, 7)))
    assert t0_of(prefetch) == day(35)
    # week 5 of new treatment: assessed for early non-response, never "after 7 years"
    assert outcome_of(run_rule(NONRESPONSE, prefetch)) == "no-early-response"
    assert run_rule(INSUFFICIENT, prefetch) is None


@pytest.mark.parametrize(("gap", "same"), [(179, True), (180, False)], ids=str)
def test_courses_less_than_the_gap_apart_form_one_episode(gap: int, same: bool) -> None:
    first = ended(f.PREDNISOLONE, 400, 300)
    second = f.course(f.AZATHIOPRINE, 300 - gap)
    assert t0_of(chart(first, second)) == (day(400) if same else day(300 - gap))


def test_course_ordered_for_another_condition_is_left_out_and_named() -> None:
    copd = reason(f.course(PREDNISONE, 400), COPD)  # still active, overlapping
    prefetch = chart(copd, f.course(f.PREDNISOLONE, 35))
    assert t0_of(prefetch) == day(35)
    config = configuration()
    course = treatment_course(
        build_record(prefetch), config.terminology, config.rules[INSUFFICIENT].params, f.NOW
    )
    assert course is not None
    assert any("another condition" in gap and "obstructive" in gap for gap in course.gaps)


def test_reason_naming_aih_keeps_the_course() -> None:
    aih = reason(f.course(f.PREDNISOLONE, 400), ("408335007", "Autoimmune hepatitis"))
    assert t0_of(chart(aih, f.course(f.AZATHIOPRINE, 35))) == day(400)


def test_reason_reference_to_another_condition_leaves_the_course_out() -> None:
    copd_condition = f.condition(COPD[0], cid="cond-copd")
    course = f.course(PREDNISONE, 400)
    course["reasonReference"] = [{"reference": "Condition/cond-copd"}]
    prefetch = f.full_prefetch(
        medication_requests=(course, f.course(f.AZATHIOPRINE, 35)),
        conditions=(f.aih_condition(), copd_condition),
    )
    assert t0_of(prefetch) == day(35)


def test_other_indications_can_be_counted_again() -> None:
    copd = reason(f.course(PREDNISONE, 400), COPD)
    prefetch = chart(copd, f.course(f.PREDNISOLONE, 35))
    config = configuration()
    params = {**config.rules[INSUFFICIENT].params, "exclude_other_indications": False}
    course = treatment_course(build_record(prefetch), config.terminology, params, f.NOW)
    assert course is not None
    assert course.t0.date().isoformat() == day(400)


@pytest.mark.parametrize(
    "product",
    [
        "budesonide 0.2 MG/ACTUAT Dry Powder Inhaler",
        "Budesonide nasal spray 64 mcg",
        "Budesonide rectal foam 2 mg",
    ],
)
def test_non_systemic_corticosteroid_is_not_aih_treatment(product: str) -> None:
    inhaler = f.medication_request(rxnorm="19831", display="budesonide", text=product)
    inhaler["authoredOn"] = f.when(400)
    assert t0_of(chart(inhaler, f.course(f.AZATHIOPRINE, 35))) == day(35)


def test_route_in_dosage_instruction_counts() -> None:
    inhaler = f.course(("19831", "budesonide"), 400)
    inhaler["dosageInstruction"] = [{"route": {"text": "Inhalation"}}]
    assert t0_of(chart(inhaler, f.course(f.AZATHIOPRINE, 35))) == day(35)


# ---------------------------------------------------------------- refractory


def maintenance_relapse(*, inhaler: bool) -> dict[str, Any]:
    """AIH in complete response on azathioprine alone, relapsing now; maybe an asthma inhaler."""
    courses = [ended(f.PREDNISOLONE, 700, 500), f.course(f.AZATHIOPRINE, 686)]
    if inhaler:
        courses.append(reason(f.course(("19831", "budesonide Inhaler"), 600), ASTHMA))
    return f.full_prefetch(
        observations=(
            f.alt(250, 705),
            f.alt(30, 300),
            f.igg(12, 300),
            f.alt(110, 40),
            f.alt(120, 5),
        ),
        medication_requests=tuple(courses),
        conditions=(f.aih_condition(),),
    )


def not_refractory_but(prefetch: dict[str, Any], outcome: str) -> Finding:
    """The refractory rule is silent and insufficient response gives ``outcome``."""
    assert run_rule(REFRACTORY, prefetch) is None
    finding = run_rule(INSUFFICIENT, prefetch)
    assert finding is not None
    assert finding.outcome == outcome
    return finding


@pytest.mark.parametrize("inhaler", [True, False], ids=["asthma-inhaler", "no-inhaler"])
def test_relapse_on_azathioprine_is_relapse_never_steroid_refractory(inhaler: bool) -> None:
    finding = not_refractory_but(maintenance_relapse(inhaler=inhaler), "relapse")
    assert finding.variables["complete_response_date"] == day(300)
    assert "120 U/L" in finding.variables["relapse_alt"]


def refractory_chart(latest_ago: int) -> dict[str, Any]:
    """On prednisolone + azathioprine for about two years, ALT 3.75 x ULN twice."""
    return f.on_aih_treatment(
        (200, 805), (150, latest_ago + 30), (150, latest_ago), start_days_ago=800
    )


@pytest.mark.parametrize(("latest_ago", "fires"), [(120, True), (121, False)], ids=str)
def test_refractory_needs_a_recent_latest_alt(latest_ago: int, fires: bool) -> None:
    assert (outcome_of(run_rule(REFRACTORY, refractory_chart(latest_ago))) is not None) is fires


def test_eleven_month_old_alt_gives_the_cannot_be_assessed_card() -> None:
    finding = not_refractory_but(refractory_chart(330), "stale-results")
    assert finding.variables["last_result_date"] == day(330)
    assert "ALT" in finding.variables["missing"]


def test_refractory_after_a_complete_response_is_configurable() -> None:
    prefetch = f.on_aih_treatment(
        (200, 405),
        (30, 250),
        (150, 40),
        (150, 5),
        start_days_ago=400,
        extra_observations=(f.igg(12, 250),),
    )
    assert run_rule(REFRACTORY, prefetch) is None
    off = {"not_after_complete_response": False}
    assert outcome_of(run_rule(REFRACTORY, prefetch, params=off)) == "steroid-refractory"


# ---------------------------------------------------------------- insufficient response


def six_month(*observations: dict[str, Any]) -> dict[str, Any]:
    """T0 500 days ago: results from the last 350 days count for the assessment."""
    return f.on_aih_treatment((200, 505), start_days_ago=500, extra_observations=observations)


@pytest.mark.parametrize(
    ("alt_ago", "expected"),
    [(120, "not-in-complete-response"), (121, "stale-results")],
    ids=["120-days", "121-days"],
)
def test_recency_edge_for_insufficient_response(alt_ago: int, expected: str) -> None:
    finding = run_rule(INSUFFICIENT, six_month(f.alt(90, alt_ago), f.igg(12, 10)))
    assert outcome_of(finding) == expected


def test_recency_window_is_configurable() -> None:
    prefetch = six_month(f.alt(90, 121), f.igg(12, 10))
    params = {"recent_days": 150}
    assert outcome_of(run_rule(INSUFFICIENT, prefetch, params=params)) == (
        "not-in-complete-response"
    )


@pytest.mark.parametrize(
    ("igg_ago", "expected"),
    [(40, "relapse"), (41, "not-in-complete-response")],
    ids=["igg-90-days-from-alt", "igg-91-days-from-alt"],
)
def test_complete_response_needs_a_normal_igg_within_90_days(igg_ago: int, expected: str) -> None:
    # a normal ALT 131 days ago with a normal IgG 90 (or 91) days before it; ALT 90 U/L now
    prefetch = six_month(f.alt(30, 131), f.igg(12, 131 + 90 + igg_ago - 40), f.alt(90, 5))
    assert outcome_of(run_rule(INSUFFICIENT, prefetch)) == expected


@pytest.mark.parametrize(
    ("latest", "expected"),
    [(40, None), (41, "relapse")],
    ids=["at-uln", "above-uln"],
)
def test_relapse_is_alt_above_the_multiple_of_uln(latest: float, expected: str | None) -> None:
    prefetch = six_month(f.alt(30, 60), f.igg(12, 60), f.alt(latest, 5), f.igg(12, 5))
    assert outcome_of(run_rule(INSUFFICIENT, prefetch)) == expected


def test_relapse_multiple_is_configurable() -> None:
    prefetch = six_month(f.alt(30, 60), f.igg(12, 60), f.alt(70, 5), f.igg(12, 5))
    params = {"relapse_alt_uln_multiple": 2}
    assert outcome_of(run_rule(INSUFFICIENT, prefetch, params=params)) == (
        "not-in-complete-response"
    )


# ---------------------------------------------------------------- non-response withdrawn


def early(*alts: tuple[float, int]) -> dict[str, Any]:
    """T0 60 days ago, baseline 200 U/L 5 days before T0; ``alts`` are (ALT, day after T0)."""
    return f.on_aih_treatment((200, 65), *((v, 60 - d) for v, d in alts), start_days_ago=60)


@pytest.mark.parametrize(
    ("later", "fires"),
    [(101, True), (100, False), (40, False), (120, True)],
    ids=["49-percent-fall", "50-percent-fall", "normal", "still-high"],
)
def test_nonresponse_is_withdrawn_after_a_later_response(later: float, fires: bool) -> None:
    finding = run_rule(NONRESPONSE, early((150, 28), (later, 50)))
    assert (outcome_of(finding) == "no-early-response") is fires


def test_withdrawal_is_configurable() -> None:
    prefetch = early((150, 28), (40, 50))
    params = {"withdraw_on_later_response": False}
    assert outcome_of(run_rule(NONRESPONSE, prefetch, params=params)) == "no-early-response"
