"""aih-nonresponse, aih-insufficient-response and aih-refractory decisions, through the rule
functions with the bundled configuration (clinical spec), plus the shared
treatment course (T0, baseline, response class, metabolite-panel suggestion).

Conventions: ``on_aih_treatment`` starts prednisolone ``start_days_ago`` days before NOW (T0) and
azathioprine 14 days later; ALT values are U/L judged against the default ULN of 40 U/L unless a
reference range is given; IgG against 16 g/L.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service.patient.terminology import CodedConcept
from cds_service.rules.aih_treatment import response_class, treatment_course
from tests import factories as f
from tests.rule_harness import (
    build_record,
    configuration,
    engine_cards,
    logged_outcomes,
    outcome_of,
    run_rule,
)

NONRESPONSE = "aih-nonresponse"
INSUFFICIENT = "aih-insufficient-response"
REFRACTORY = "aih-refractory"
PANEL = "order-metabolite-panel"


def early_course(
    baseline: float | None,
    *week4: tuple[float, int],
    t0_ago: int = 60,
    **kwargs: Any,
) -> dict[str, Any]:
    """T0 ``t0_ago`` days before NOW, baseline 5 days before T0; ``week4`` are (ALT, day after
    T0) pairs."""
    alts = [(v, t0_ago - day) for v, day in week4]
    if baseline is not None:
        alts.insert(0, (baseline, t0_ago + 5))
    return f.on_aih_treatment(*alts, start_days_ago=t0_ago, **kwargs)


# ---------------------------------------------------------------- aih-nonresponse


def test_less_than_half_decrease_at_week_4_is_nonresponse() -> None:
    finding = run_rule(NONRESPONSE, early_course(200, (102, 28)))
    assert outcome_of(finding) == "no-early-response"
    assert finding is not None
    assert finding.variables["alt_decrease"] == "49 %"
    assert finding.variables["week4_day"] == "28"
    assert "200 U/L" in finding.variables["baseline_value"]
    assert "102 U/L" in finding.variables["week4_value"]
    assert "prednisolone + azathioprine" in finding.variables["therapy"]


def test_exactly_half_is_an_early_response() -> None:
    assert run_rule(NONRESPONSE, early_course(200, (100, 28))) is None


def test_rise_is_reported_as_zero_decrease() -> None:
    finding = run_rule(NONRESPONSE, early_course(200, (260, 28)))
    assert finding is not None
    assert finding.variables["alt_decrease"] == "0 %"


@pytest.mark.parametrize(
    ("day", "fires"), [(20, False), (21, True), (42, True), (43, False)], ids=str
)
def test_week_4_window_edges(day: int, fires: bool) -> None:
    finding = run_rule(NONRESPONSE, early_course(200, (180, day)))
    assert (outcome_of(finding) == "no-early-response") is fires
    if fires:
        assert finding is not None
        assert finding.variables["week4_day"] == str(day)


def test_the_alt_closest_to_day_28_decides() -> None:
    assert run_rule(NONRESPONSE, early_course(200, (190, 22), (60, 30))) is None
    finding = run_rule(NONRESPONSE, early_course(200, (60, 22), (190, 30)))
    assert finding is not None
    assert finding.variables["week4_day"] == "30"


def test_a_tie_around_day_28_takes_the_earlier_result() -> None:
    finding = run_rule(NONRESPONSE, early_course(200, (190, 24), (110, 32)))
    assert finding is not None
    assert finding.variables["week4_day"] == "24"
    assert run_rule(NONRESPONSE, early_course(200, (60, 24), (190, 32))) is None


@pytest.mark.parametrize(
    ("t0_ago", "fires"), [(27, False), (28, True), (181, True), (182, False)], ids=str
)
def test_assessed_from_day_28_until_day_182(t0_ago: int, fires: bool) -> None:
    finding = run_rule(NONRESPONSE, early_course(200, (180, 21), t0_ago=t0_ago))
    assert (finding is not None) is fires


def test_no_week_4_result_no_card() -> None:
    assert run_rule(NONRESPONSE, early_course(200, (190, 50))) is None


def test_without_baseline_no_nonresponse_card() -> None:
    assert run_rule(NONRESPONSE, early_course(None, (190, 28))) is None


@pytest.mark.parametrize(("before_t0", "fires"), [(90, True), (91, False), (0, True)], ids=str)
def test_baseline_window_is_90_days_up_to_t0(before_t0: int, fires: bool) -> None:
    prefetch = f.on_aih_treatment((200, 60 + before_t0), (190, 32), start_days_ago=60)
    assert (run_rule(NONRESPONSE, prefetch) is not None) is fires


def test_baseline_is_the_latest_alt_before_t0() -> None:
    # 400 then 200 before T0: baseline 200, so 150 at week 4 is only a 25 % fall
    prefetch = f.on_aih_treatment((400, 80), (200, 65), (150, 32), start_days_ago=60)
    finding = run_rule(NONRESPONSE, prefetch)
    assert finding is not None
    assert finding.variables["alt_decrease"] == "25 %"


def test_nonresponse_needs_active_first_line_treatment() -> None:
    stopped = (
        f.course(f.PREDNISOLONE, 60, status="stopped", end_days_ago=10),
        f.course(f.AZATHIOPRINE, 60, status="completed", end_days_ago=10),
    )
    assert run_rule(NONRESPONSE, early_course(200, (190, 28), courses=stopped)) is None


# ---------------------------------------------------------------- population and T0


def without_aih(prefetch: dict[str, Any], *conditions: dict[str, Any]) -> dict[str, Any]:
    changed = dict(prefetch)
    changed["conditions"] = f.bundle(*conditions)
    return changed


REFRACTORY_CASE = f.on_aih_treatment((200, 255), (120, 30), (130, 5))
INSUFFICIENT_CASE = f.on_aih_treatment((200, 255), (60, 10), extra_observations=(f.igg(12, 10),))
NONRESPONSE_CASE = early_course(200, (190, 28))


@pytest.mark.parametrize(
    ("rule", "prefetch"),
    [
        (REFRACTORY, REFRACTORY_CASE),
        (INSUFFICIENT, INSUFFICIENT_CASE),
        (NONRESPONSE, NONRESPONSE_CASE),
    ],
)
@pytest.mark.parametrize(
    "conditions",
    [
        (),
        (f.aih_condition(clinical_status="inactive"),),
        (f.aih_condition(clinical_status="resolved"),),
        (f.condition("197321007"),),  # steatosis of liver: some other liver condition
    ],
    ids=["none", "inactive", "resolved", "other"],
)
def test_no_active_aih_diagnosis_no_card(
    rule: str, prefetch: dict[str, Any], conditions: tuple[dict[str, Any], ...]
) -> None:
    assert run_rule(rule, prefetch) is not None, "the case fires with AIH on the problem list"
    assert run_rule(rule, without_aih(prefetch, *conditions)) is None


@pytest.mark.parametrize("status", [None, "recurrence", "relapse"])
def test_aih_condition_counts_when_active_recurrent_or_without_status(status: str | None) -> None:
    conditions = (f.aih_condition(clinical_status=status),)
    assert run_rule(REFRACTORY, without_aih(REFRACTORY_CASE, *conditions)) is not None


def test_icd10_aih_code_counts() -> None:
    icd = f.condition("K75.4", system="http://hl7.org/fhir/sid/icd-10-cm")
    assert run_rule(REFRACTORY, without_aih(REFRACTORY_CASE, icd)) is not None


def test_first_line_courses_without_start_date_give_no_t0() -> None:
    undated = (f.course(f.PREDNISOLONE, None), f.course(f.AZATHIOPRINE, None))
    prefetch = f.on_aih_treatment((200, 255), (60, 10), courses=undated)
    for rule in (NONRESPONSE, INSUFFICIENT, REFRACTORY):
        assert run_rule(rule, prefetch) is None


def test_undated_first_line_course_is_named_as_a_gap() -> None:
    courses = (
        f.course(f.PREDNISOLONE, 250),
        f.course(f.AZATHIOPRINE, 236),
        f.course(f.MERCAPTOPURINE, None, status="stopped"),
    )
    prefetch = f.on_aih_treatment((200, 255), (60, 10), courses=courses)
    finding = run_rule(INSUFFICIENT, prefetch)
    assert finding is not None
    assert any("without a start date" in gap for gap in finding.gaps)


def test_t0_is_the_earliest_first_line_start() -> None:
    courses = (f.course(f.AZATHIOPRINE, 100), f.course(f.PREDNISOLONE, 120))
    record = build_record(f.on_aih_treatment(courses=courses))
    config = configuration()
    params = config.rules[NONRESPONSE].params
    course = treatment_course(record, config.terminology, params, f.NOW)
    assert course is not None
    assert course.t0 == f.NOW - timedelta(days=120)


# ---------------------------------------------------------------- aih-insufficient-response


def six_month(*observations: dict[str, Any], t0_ago: int = 250) -> dict[str, Any]:
    """T0 ``t0_ago`` days before NOW with a baseline; T0 + 150 d is ``t0_ago - 150`` days ago."""
    return f.on_aih_treatment(
        (200, t0_ago + 5), start_days_ago=t0_ago, extra_observations=observations
    )


NORMAL_ALT = f.alt(30, 10)
NORMAL_IGG = f.igg(12, 10)


def test_raised_alt_after_six_months_is_insufficient_response() -> None:
    finding = run_rule(INSUFFICIENT, six_month(f.alt(60, 10), NORMAL_IGG))
    assert outcome_of(finding) == "not-in-complete-response"
    assert finding is not None
    assert "ALT 1.5" in finding.variables["abnormal"]
    assert "IgG" not in finding.variables["abnormal"]


def test_complete_biochemical_response_no_card() -> None:
    assert run_rule(INSUFFICIENT, six_month(NORMAL_ALT, NORMAL_IGG)) is None


def test_alt_at_uln_is_normal() -> None:
    assert run_rule(INSUFFICIENT, six_month(f.alt(40, 10), NORMAL_IGG)) is None


@pytest.mark.parametrize(
    ("igg", "fires"),
    [
        (f.igg(20, 10), True),
        (f.igg(2000, 10, unit="mg/dL"), True),  # = 20 g/L
        (f.igg(1500, 10, unit="mg/dL"), False),  # = 15 g/L, below 16 g/L
        (f.igg(16, 10), False),  # at the ULN
    ],
    ids=["g/L-high", "mg/dL-high", "mg/dL-normal", "at-uln"],
)
def test_igg_in_either_unit(igg: dict[str, Any], fires: bool) -> None:
    finding = run_rule(INSUFFICIENT, six_month(NORMAL_ALT, igg))
    assert (outcome_of(finding) == "not-in-complete-response") is fires
    if fires:
        assert finding is not None
        assert "IgG 1.2" in finding.variables["abnormal"]


def test_igg_in_mg_dl_is_shown_with_its_conversion() -> None:
    finding = run_rule(INSUFFICIENT, six_month(NORMAL_ALT, f.igg(2000, 10, unit="mg/dL")))
    assert finding is not None
    assert "2000 mg/dL" in finding.variables["assessment"]
    assert "20" in finding.variables["assessment"]


def test_raised_ast_alone_counts() -> None:
    finding = run_rule(INSUFFICIENT, six_month(NORMAL_ALT, NORMAL_IGG, f.ast(65, 10)))
    assert outcome_of(finding) == "not-in-complete-response"
    assert finding is not None
    assert finding.variables["abnormal"].startswith("AST")


def test_ast_can_be_left_out_by_configuration() -> None:
    prefetch = six_month(NORMAL_ALT, NORMAL_IGG, f.ast(65, 10))
    assert run_rule(INSUFFICIENT, prefetch, params={"include_ast": False}) is None


@pytest.mark.parametrize(
    ("observations", "missing"),
    [
        ((NORMAL_ALT,), "IgG"),
        ((NORMAL_IGG,), "ALT"),
        ((), "ALT and IgG"),
        ((f.alt(30, 120), f.igg(12, 120), NORMAL_IGG), "ALT"),  # ALT only before T0 + 150
    ],
    ids=["igg-missing", "alt-missing", "both-missing", "alt-too-early"],
)
def test_missing_alt_or_igg_is_a_monitoring_gap(
    observations: tuple[dict[str, Any], ...], missing: str
) -> None:
    finding = run_rule(INSUFFICIENT, six_month(*observations))
    assert outcome_of(finding) == "monitoring-gap"
    assert finding is not None
    assert finding.variables["missing"] == missing
    assert configuration().rules[INSUFFICIENT].outcomes["monitoring-gap"]["indicator"] == "info"


def test_raised_alt_with_missing_igg_is_still_not_complete_response() -> None:
    finding = run_rule(INSUFFICIENT, six_month(f.alt(90, 10)))
    assert outcome_of(finding) == "not-in-complete-response"


def test_result_one_day_after_t0_plus_150_counts() -> None:
    # T0 250 days ago: T0 + 150 d is 100 days ago; the high ALT is the latest after it
    finding = run_rule(INSUFFICIENT, six_month(f.alt(90, 99), NORMAL_IGG))
    assert outcome_of(finding) == "not-in-complete-response"


def test_result_exactly_at_t0_plus_150_is_not_after() -> None:
    # the only ALT is exactly at T0 + 150 d: ALT was not measured *after* it
    finding = run_rule(INSUFFICIENT, six_month(f.alt(90, 100), NORMAL_IGG))
    assert outcome_of(finding) == "monitoring-gap"


@pytest.mark.parametrize(("t0_ago", "fires"), [(181, False), (182, True)], ids=str)
def test_assessed_from_day_182(t0_ago: int, fires: bool) -> None:
    finding = run_rule(INSUFFICIENT, six_month(f.alt(90, 5), NORMAL_IGG, t0_ago=t0_ago))
    assert (finding is not None) is fires


def test_insufficient_response_needs_active_first_line_treatment() -> None:
    stopped = (f.course(f.PREDNISOLONE, 250, status="stopped", end_days_ago=20),)
    prefetch = f.on_aih_treatment((90, 10), extra_observations=(NORMAL_IGG,), courses=stopped)
    assert run_rule(INSUFFICIENT, prefetch) is None


def test_uln_from_the_reference_range_wins_over_the_default() -> None:
    by_range = f.alt(50, 10, uln=55)
    finding_none = run_rule(INSUFFICIENT, six_month(by_range, NORMAL_IGG))
    assert finding_none is None, "50 U/L is normal against the lab's own 55 U/L"
    finding = run_rule(INSUFFICIENT, six_month(f.alt(60, 10, uln=55), NORMAL_IGG))
    assert finding is not None
    assert "(1.0\u00d7ULN; ULN 55 U/L)" in finding.variables["assessment"]  # the lab's own range


def test_the_card_says_when_the_default_uln_was_used() -> None:
    finding = run_rule(INSUFFICIENT, six_month(f.alt(60, 10), NORMAL_IGG))
    assert finding is not None
    assert "configured default" in finding.variables["assessment"]
    assert any("configured default ULN" in gap and "ALT" in gap for gap in finding.gaps)
    assert any("configured default ULN" in gap and "IgG" in gap for gap in finding.gaps)


def test_results_without_dates_are_ignored_and_counted() -> None:
    undated_high = f.effective(f.alt(900, 10), None)
    assert run_rule(INSUFFICIENT, six_month(undated_high, NORMAL_ALT, NORMAL_IGG)) is None
    finding = run_rule(INSUFFICIENT, six_month(undated_high, f.alt(60, 10), NORMAL_IGG))
    assert finding is not None
    assert any("1 ALT result(s) without a date" in gap for gap in finding.gaps)


def test_partial_date_sorts_as_its_first_instant() -> None:
    # NOW is 2026-06-01 12:00; NORMAL_ALT is 10 days before it
    older_high = f.effective(f.alt(90, 40), "2026-05")  # 2026-05-01, 31 days before NOW
    finding = run_rule(INSUFFICIENT, six_month(older_high, NORMAL_ALT, NORMAL_IGG))
    assert finding is None, "the dated normal ALT 10 days ago is the latest"
    later_high = f.effective(f.alt(90, 5), "2026-06")  # 2026-06-01 00:00, after 10 days ago
    finding = run_rule(INSUFFICIENT, six_month(NORMAL_ALT, later_high, NORMAL_IGG))
    # the normal ALT and IgG 10 days ago were a complete response: the later rise is a relapse
    assert outcome_of(finding) == "relapse"


def test_result_in_an_unknown_unit_is_not_compared() -> None:
    odd = f.observation("1742-6", value=900, unit="U/mL", days_ago=5)
    assert run_rule(INSUFFICIENT, six_month(odd, NORMAL_ALT, NORMAL_IGG)) is None
    record = build_record(six_month(odd, NORMAL_ALT, NORMAL_IGG))
    assert ("alt", "U/mL") in record.unknown_units


# ---------------------------------------------------------------- aih-refractory


def refractory(*alts: tuple[float, int], **kwargs: Any) -> dict[str, Any]:
    """Prednisolone since 250 days and azathioprine since 236 days, baseline 200 U/L."""
    return f.on_aih_treatment((200, 255), *alts, **kwargs)


def test_two_recent_alts_at_2x_uln_on_the_combination_is_refractory() -> None:
    finding = run_rule(REFRACTORY, refractory((112, 30), (120, 5)))
    assert outcome_of(finding) == "steroid-refractory"
    assert finding is not None
    assert finding.variables["latest_ratio"] == "3.0\u00d7ULN"
    assert finding.variables["combination"] == "prednisolone + azathioprine"
    assert finding.variables["combination_duration"] == "7 months"


def test_exactly_2x_uln_fires_and_just_below_does_not() -> None:
    assert run_rule(REFRACTORY, refractory((80, 30), (80, 5))) is not None
    assert run_rule(REFRACTORY, refractory((80, 30), (79.9, 5))) is None
    assert run_rule(REFRACTORY, refractory((79.9, 30), (80, 5))) is None


def test_only_the_two_most_recent_results_count() -> None:
    assert run_rule(REFRACTORY, refractory((150, 60), (150, 30), (60, 5))) is None
    assert run_rule(REFRACTORY, refractory((60, 60), (150, 30), (150, 5))) is not None


def test_a_single_result_is_not_enough() -> None:
    assert run_rule(REFRACTORY, f.on_aih_treatment((150, 5))) is None


def test_both_results_must_be_after_t0_plus_90_days() -> None:
    # T0 120 days ago: T0 + 90 d is 30 days ago, and "after" excludes it
    early = f.on_aih_treatment((150, 30), (150, 5), start_days_ago=120)
    assert run_rule(REFRACTORY, early) is None
    later = f.on_aih_treatment((150, 29), (150, 5), start_days_ago=120)
    assert run_rule(REFRACTORY, later) is not None


@pytest.mark.parametrize(("aza_ago", "fires"), [(90, True), (89, False)], ids=str)
def test_combination_for_at_least_90_days(aza_ago: int, fires: bool) -> None:
    courses = (f.course(f.PREDNISOLONE, 200), f.course(f.AZATHIOPRINE, aza_ago))
    prefetch = refractory((150, 30), (150, 5), courses=courses)
    assert (run_rule(REFRACTORY, prefetch) is not None) is fires


@pytest.mark.parametrize(
    "courses",
    [
        (
            f.course(f.PREDNISOLONE, 250, status="stopped", end_days_ago=20),
            f.course(f.AZATHIOPRINE, 236),
        ),
        (
            f.course(f.PREDNISOLONE, 250),
            f.course(f.AZATHIOPRINE, 236, status="completed", end_days_ago=20),
        ),
        (f.course(f.PREDNISOLONE, 250),),
        (f.course(f.AZATHIOPRINE, 250),),
        (f.course(f.PREDNISOLONE, 250), f.course(f.AZATHIOPRINE, 236, status="entered-in-error")),
    ],
    ids=["steroid-stopped", "aza-completed", "steroid-only", "aza-only", "aza-in-error"],
)
def test_refractory_needs_both_drugs_still_active(courses: tuple[dict[str, Any], ...]) -> None:
    assert run_rule(REFRACTORY, refractory((150, 30), (150, 5), courses=courses)) is None


@pytest.mark.parametrize("drug", [f.MYCOPHENOLATE, f.MERCAPTOPURINE], ids=lambda d: d[1])
def test_mycophenolate_or_mercaptopurine_as_the_partner(drug: tuple[str, str]) -> None:
    courses = (f.course(f.PREDNISOLONE, 250), f.course(drug, 236))
    finding = run_rule(REFRACTORY, refractory((150, 30), (150, 5), courses=courses))
    assert finding is not None
    assert drug[1].split()[0] in finding.variables["combination"]


def test_refractory_uses_each_results_own_uln() -> None:
    # 90 U/L is 2.25 x the default 40 U/L but only 1.8 x the lab's 50 U/L
    assert run_rule(REFRACTORY, refractory((90, 30), (90, 5))) is not None
    ranged = (f.alt(90, 30, uln=50), f.alt(90, 5, uln=50))
    prefetch = f.on_aih_treatment((200, 255), extra_observations=ranged)
    assert run_rule(REFRACTORY, prefetch) is None


def test_refractory_ignores_undated_results() -> None:
    undated = f.effective(f.alt(50, 1), None)
    finding = run_rule(REFRACTORY, refractory((150, 30), (150, 5), extra_observations=(undated,)))
    assert finding is not None
    assert any("without a date" in gap for gap in finding.gaps)


# ---------------------------------------------------------------- response class


def response_of(*alts: tuple[float, int], baseline: float | None = 200) -> str:
    config = configuration()
    params = config.rules[INSUFFICIENT].params
    series = [*([(baseline, 255)] if baseline is not None else []), *alts]
    record = build_record(f.on_aih_treatment(*series))
    course = treatment_course(record, config.terminology, params, f.NOW)
    assert course is not None
    return response_class(course, params)


@pytest.mark.parametrize(
    ("alts", "baseline", "expected"),
    [
        (((30, 60), (35, 10)), 200, "complete response (CR)"),
        (((80, 10),), 200, "partial response (PR)"),
        (((150, 10),), 200, "no response (NR)"),
        (((30, 90), (120, 10)), 200, "relapse"),
        (((80, 90), (150, 10)), 200, "relapse"),
        (((150, 10),), None, "not classifiable: no baseline"),
        ((), 200, "not classifiable: no ALT"),
        (((150, 60), (30, 10)), None, "not yet sustained"),
    ],
    ids=[
        "CR",
        "PR",
        "NR",
        "relapse-after-CR",
        "relapse-after-PR",
        "no-baseline",
        "no-alt",
        "normal-once",
    ],
)
def test_response_classes(
    alts: tuple[tuple[float, int], ...], baseline: float | None, expected: str
) -> None:
    assert expected in response_of(*alts, baseline=baseline)


def test_relapse_after_cr_says_it_normalised_and_pr_says_it_fell() -> None:
    assert "normalised" in response_of((30, 90), (120, 10))
    assert "fell by more than 50 %" in response_of((80, 90), (150, 10))


def test_response_class_shows_the_change_from_baseline() -> None:
    assert "-60 %" in response_of((80, 10))
    assert "+25 %" in response_of((250, 10))


# ---------------------------------------------------------------- metabolite-panel suggestion


@pytest.mark.parametrize(
    ("extra", "courses", "suggested"),
    [
        ((), None, True),
        ((f.tgn6(100),), None, False),
        ((f.metabolite_panel_report(100),), None, False),
        ((f.tgn6(181),), None, True),
        ((f.effective(f.tgn6(10), None),), None, True),
        ((), (f.course(f.PREDNISOLONE, 250), f.course(f.MERCAPTOPURINE, 236)), True),
        ((), (f.course(f.PREDNISOLONE, 250), f.course(f.MYCOPHENOLATE, 236)), False),
        (
            (),
            (
                f.course(f.PREDNISOLONE, 250),
                f.course(f.AZATHIOPRINE, 236, status="stopped", end_days_ago=100),
                f.course(f.MYCOPHENOLATE, 95),
            ),
            False,
        ),
    ],
    ids=[
        "aza-no-tgn",
        "aza-tgn-100d",
        "aza-panel-100d",
        "aza-tgn-181d",
        "aza-undated-tgn",
        "mercaptopurine",
        "mmf",
        "aza-stopped",
    ],
)
def test_metabolite_panel_only_on_aza_or_mp_without_a_recent_result(
    extra: tuple[dict[str, Any], ...],
    courses: tuple[dict[str, Any], ...] | None,
    suggested: bool,
) -> None:
    prefetch = refractory((150, 30), (150, 5), extra_observations=extra, courses=courses)
    finding = run_rule(REFRACTORY, prefetch)
    assert finding is not None
    assert (PANEL in (finding.applicable_suggestions or frozenset())) is suggested
    assert finding.applicable_suggestions is not None, "the rule decides applicability"


def test_recent_6tgn_is_named_on_the_card() -> None:
    finding = run_rule(
        REFRACTORY, refractory((150, 30), (150, 5), extra_observations=(f.tgn6(100),))
    )
    assert finding is not None
    assert "6-TGN measured" in finding.variables["metabolite_status"]


def test_metabolite_suggestion_reaches_the_card_as_a_create_servicerequest(app: Flask) -> None:
    body = f.hook_request("patient-view", prefetch=refractory((150, 30), (150, 5)))
    cards = [c.card for c in engine_cards(app, body) if c.rule_id == REFRACTORY]
    assert len(cards) == 1
    (suggestion,) = cards[0]["suggestions"]
    (action,) = suggestion["actions"]
    assert action["type"] == "create"
    assert action["resource"]["resourceType"] == "ServiceRequest"
    assert action["resource"]["code"]["coding"][0]["code"] == "82869-9"
    body = f.hook_request(
        "patient-view",
        prefetch=refractory((150, 30), (150, 5), extra_observations=(f.tgn6(30),)),
    )
    cards = [c.card for c in engine_cards(app, body) if c.rule_id == REFRACTORY]
    assert "suggestions" not in cards[0]
    assert "selectionBehavior" not in cards[0]


# ---------------------------------------------------------------- hooks and HTTP


@pytest.mark.parametrize(
    ("hook", "drug", "triggered"),
    [
        ("order-sign", f.AZATHIOPRINE, True),
        ("order-select", f.PREDNISOLONE, True),
        ("order-sign", f.TACROLIMUS, True),  # second-line: the response question is live
        ("order-sign", f.ATORVASTATIN, False),
        ("order-select", f.ATORVASTATIN, False),
    ],
)
def test_order_hooks_assess_only_with_an_aih_immunosuppressant_draft(
    hook: str, drug: tuple[str, str], triggered: bool
) -> None:
    finding = run_rule(
        REFRACTORY, refractory((150, 30), (150, 5)), hook=hook, drafts=(f.draft(drug),)
    )
    assert (finding is not None) is triggered


def test_refractory_card_over_http(client: FlaskClient, app: Flask) -> None:
    body = f.hook_request("patient-view", prefetch=refractory((112, 30), (120, 5)))
    response = client.post("/cds-services/aih-patient-view", json=body)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert logged_outcomes(app, cards) == [(REFRACTORY, "steroid-refractory", "warning")]
    card = cards[0]
    assert "steroid-refractory" in card["summary"]
    assert "3.0\u00d7ULN" in card["summary"]
    assert len(card["summary"]) < 140
    assert card["overrideReasons"]
    assert all(r["display"] for r in card["overrideReasons"])
    for fact in ("Hegade et al., Gut 2011", "trough levels", "Response class"):
        assert fact in card["detail"]
    assert card["links"][0]["url"] == "http://localhost/evidence/aih-refractory"


def test_monitoring_gap_card_over_http_is_info(client: FlaskClient, app: Flask) -> None:
    body = f.hook_request("patient-view", prefetch=six_month(NORMAL_ALT))
    cards = client.post("/cds-services/aih-patient-view", json=body).get_json()["cards"]
    assert logged_outcomes(app, cards) == [(INSUFFICIENT, "monitoring-gap", "info")]
    assert "IgG" in cards[0]["summary"]
    assert "overrideReasons" not in cards[0]


def test_nonresponse_card_on_order_sign_over_http(client: FlaskClient, app: Flask) -> None:
    body = f.hook_request(
        "order-sign", drafts=(f.draft(f.AZATHIOPRINE),), prefetch=early_course(200, (150, 28))
    )
    cards = client.post("/cds-services/aih-order-sign", json=body).get_json()["cards"]
    assert (NONRESPONSE, "no-early-response", "warning") in logged_outcomes(app, cards)
    card = next(c for c in cards if c["source"]["topic"]["code"] == NONRESPONSE)
    assert "25 %" in card["summary"]


# ---------------------------------------------------------------- record and terminology helpers


def test_observed_in_finds_results_of_the_value_sets_oldest_first() -> None:
    panel, tgn_old, tgn_new = f.metabolite_panel_report(20), f.tgn6(300), f.tgn6(5)
    record = build_record(f.full_prefetch(observations=(tgn_new, f.alt(50, 3), panel, tgn_old)))
    terminology = configuration().terminology
    found = record.observed_in(terminology, ["tgn-6", "thiopurine-metabolite-panel"])
    assert [o.id for o in found] == [tgn_old["id"], panel["id"], tgn_new["id"]]
    assert [o.id for o in record.observed_in(terminology, ["tgn-6"])] == [
        tgn_old["id"],
        tgn_new["id"],
    ]
    assert record.observed_in(terminology, []) == []


def test_observed_in_skips_entered_in_error_results() -> None:
    wrong = f.tgn6(5)
    wrong["status"] = "entered-in-error"
    record = build_record(f.full_prefetch(observations=(wrong,)))
    assert record.observed_in(configuration().terminology, ["tgn-6"]) == []


@pytest.mark.parametrize(
    ("coding", "text", "expected"),
    [
        ([{"system": f.RXNORM, "code": "197388"}], "", "azathioprine"),  # value set display
        ([{"system": "urn:local", "code": "9"}], "AZATHIOPRINE 50 mg tab", "azathioprine"),
        ([{"system": "urn:local", "code": "9"}], "Imuran 50 mg", "azathioprine"),  # brand
        ([{"system": "urn:local", "code": "9"}], "", "9"),  # nothing better than the code
    ],
    ids=["product-code", "text", "brand", "bare-code"],
)
def test_short_name_prefers_the_ingredient(
    coding: list[dict[str, str]], text: str, expected: str
) -> None:
    concept = CodedConcept.from_fhir({"coding": coding, "text": text})
    short = configuration().terminology.short_name(concept, "azathioprine-mercaptopurine")
    assert short.lower().startswith(expected)


def test_short_name_of_an_unknown_class_is_the_label() -> None:
    concept = CodedConcept.from_fhir({"text": "Azathioprine 50 mg"})
    assert configuration().terminology.short_name(concept, "no-such-class") == "Azathioprine 50 mg"
