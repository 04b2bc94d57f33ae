"""mmf-teratogenicity decisions, through the rule function with a real configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cds_service.config.configuration import Configuration, load_configuration
from cds_service.rules.registry import REGISTRY
from tests import factories as f
from tests.rule_harness import card_detail
from tests.rule_harness import decide as rule_decide

CARDS = Path(__file__).resolve().parents[2] / "cards"


@pytest.fixture(scope="module")
def config() -> Configuration:
    return load_configuration(CARDS, REGISTRY)


def decide(
    config: Configuration,
    *,
    patient: dict[str, Any] | None = None,
    observations: tuple[dict[str, Any], ...] = (),
    medication_requests: tuple[dict[str, Any], ...] = (),
    conditions: tuple[dict[str, Any], ...] = (),
    drafts: tuple[dict[str, Any], ...] | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[str | None, Any]:
    finding = rule_decide(
        config,
        "mmf-teratogenicity",
        patient=patient,
        observations=observations,
        medication_requests=medication_requests,
        conditions=conditions,
        drafts=drafts if drafts is not None else (f.mmf_draft(),),
        params=params,
    )
    return (finding.outcome if finding else None), finding


def test_no_mycophenolate_draft_gives_nothing(config: Configuration) -> None:
    pred = f.medication_request(rxnorm="8638", display="prednisolone", status="draft")
    assert decide(config, drafts=(pred,))[0] is None


@pytest.mark.parametrize(
    "evidence",
    [
        f.pregnancy_status(pregnant=True, days_ago=20),
        f.hcg_qualitative(positive=True, days_ago=20),
        f.hcg_quantitative(1200, days_ago=20),
        f.hcg_quantitative(25, days_ago=20),
    ],
    ids=["status-pregnant", "hcg-qualitative", "hcg-quantitative", "hcg-at-threshold"],
)
def test_pregnancy_evidence_is_critical(config: Configuration, evidence: dict[str, Any]) -> None:
    outcome, finding = decide(config, observations=(evidence,))
    assert outcome == "pregnant"
    assert finding.drafts[0].reference == "MedicationRequest/draft-mmf"


def test_active_pregnancy_condition_is_critical(config: Configuration) -> None:
    outcome, finding = decide(config, conditions=(f.condition("77386006"),))
    assert outcome == "pregnant"
    assert "pregnancy condition" in finding.variables["pregnancy_evidence"]


def test_resolved_pregnancy_condition_is_not_pregnancy(config: Configuration) -> None:
    assert decide(config, conditions=(f.condition("77386006", clinical_status="resolved"),))[0] == (
        "pregnancy-test-needed"
    )


def test_pregnancy_evidence_overrides_sex_and_age(config: Configuration) -> None:
    old = f.patient(gender="male", birth_date="1950-01-01")
    outcome, _ = decide(config, patient=old, observations=(f.hcg_qualitative(True, 5),))
    assert outcome == "pregnant"


def test_later_negative_cancels_positive(config: Configuration) -> None:
    obs = (f.hcg_qualitative(True, 60), f.hcg_quantitative(2, 30))
    assert decide(config, observations=obs)[0] == "pregnancy-test-needed"


def test_positive_older_than_lookback_is_ignored(config: Configuration) -> None:
    obs = (f.pregnancy_status(True, days_ago=281),)
    assert decide(config, observations=obs)[0] == "pregnancy-test-needed"


def test_quantitative_between_thresholds_is_not_a_negative_test(config: Configuration) -> None:
    outcome, _ = decide(config, observations=(f.hcg_quantitative(12, days_ago=2),))
    assert outcome == "pregnancy-test-needed"


def test_recent_negative_test_is_info(config: Configuration) -> None:
    outcome, finding = decide(config, observations=(f.hcg_qualitative(False, days_ago=3),))
    assert outcome == "recent-negative-test"
    assert "negative" in finding.variables["negative_test"]


def test_negative_test_outside_window_needs_new_test(config: Configuration) -> None:
    outcome, finding = decide(config, observations=(f.hcg_qualitative(False, days_ago=10),))
    assert outcome == "pregnancy-test-needed"
    assert "hCG negative" in finding.variables["last_test"]


def test_negative_string_value_counts(config: Configuration) -> None:
    obs = f.observation("2106-3", value_string="Negative", days_ago=1)
    assert decide(config, observations=(obs,))[0] == "recent-negative-test"


def test_continuing_therapy_is_info(config: Configuration) -> None:
    current = f.medication_request(status="active", start_days_ago=300)
    outcome, finding = decide(config, medication_requests=(current,))
    assert outcome == "continuing-therapy"
    assert "active" in finding.variables["current_course"]


@pytest.mark.parametrize(
    ("end_ago", "expected"),
    [(30, "continuing-therapy"), (31, "pregnancy-test-needed")],
    ids=["30-day-gap", "31-day-gap"],
)
def test_restart_after_more_than_30_days_is_a_new_start(
    config: Configuration, end_ago: int, expected: str
) -> None:
    ended = f.medication_request(status="completed", start_days_ago=300, end_days_ago=end_ago)
    assert decide(config, medication_requests=(ended,))[0] == expected


def test_course_ended_long_ago_is_a_new_start(config: Configuration) -> None:
    ended = f.medication_request(status="stopped", start_days_ago=400, end_days_ago=120)
    assert decide(config, medication_requests=(ended,))[0] == "pregnancy-test-needed"


@pytest.mark.parametrize(
    ("start_days_ago", "expected"),
    [(30, "continuing-therapy"), (150, "pregnancy-test-needed")],
)
def test_stopped_course_without_end_date_is_one_exposure_on_its_start_date(
    config: Configuration, start_days_ago: int, expected: str
) -> None:
    """Rev 2: one exposure on its start date, a course until start + the 30-day class gap,
    judged against the rule's continuing-therapy window."""
    stopped = f.medication_request(status="stopped", start_days_ago=start_days_ago)
    assert decide(config, medication_requests=(stopped,))[0] == expected


def test_entered_in_error_course_is_ignored(config: Configuration) -> None:
    bad = f.medication_request(status="entered-in-error", start_days_ago=30)
    assert decide(config, medication_requests=(bad,))[0] == "pregnancy-test-needed"


def test_male_gets_info(config: Configuration) -> None:
    assert decide(config, patient=f.patient(gender="male"))[0] == "male-patient"


def test_male_card_can_be_switched_off(config: Configuration) -> None:
    outcome, _ = decide(config, patient=f.patient(gender="male"), params={"male_card": False})
    assert outcome is None


def test_boy_below_male_age_gets_nothing(config: Configuration) -> None:
    boy = f.patient(gender="male", birth_date="2020-01-01")
    assert decide(config, patient=boy)[0] is None


@pytest.mark.parametrize(
    ("birth_date", "expected"),
    [
        ("2014-06-02", None),  # 11 years old the day before the 12th birthday
        ("2014-06-01", "pregnancy-test-needed"),  # 12 today
        ("1971-06-02", "pregnancy-test-needed"),  # 54
        ("1971-06-01", None),  # 55 today: outside the window
    ],
)
def test_age_window_edges(config: Configuration, birth_date: str, expected: str | None) -> None:
    assert decide(config, patient=f.patient(birth_date=birth_date))[0] == expected


@pytest.mark.parametrize("gender", [None, "unknown", "other"])
def test_unknown_sex_is_possibly_of_reproductive_potential(
    config: Configuration, gender: str | None
) -> None:
    outcome, finding = decide(config, patient=f.patient(gender=gender))
    assert outcome == "pregnancy-test-needed"
    assert any("reproductive potential" in gap for gap in finding.gaps)


def test_missing_birth_date_is_stated(config: Configuration) -> None:
    outcome, finding = decide(config, patient=f.patient(birth_date=None))
    assert outcome == "pregnancy-test-needed"
    assert finding.variables["age"] == "unknown"
    assert any("age unknown" in gap for gap in finding.gaps)


def test_not_of_reproductive_potential_condition_silences(config: Configuration) -> None:
    assert decide(config, conditions=(f.condition("76498008"),))[0] is None


def test_local_code_found_by_ingredient_name(config: Configuration) -> None:
    local = f.mmf_draft(
        coding=[{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288", "code": "12345"}],
        text="CellCept 500 mg tablet",
    )
    assert decide(config, drafts=(local,))[0] == "pregnancy-test-needed"


def test_name_fallback_can_be_switched_off(config: Configuration) -> None:
    local = f.mmf_draft(coding=[{"system": "urn:local", "code": "1"}], text="mycophenolate 500 mg")
    strict = Configuration(
        config.services,
        config.rules,
        type(config.terminology)(
            config.terminology.valuesets, config.terminology.drug_classes, name_fallback=False
        ),
        config.analytes,
        config.cards_dir,
    )
    assert decide(strict, drafts=(local,))[0] is None


def test_contained_medication_reference_is_resolved(config: Configuration) -> None:
    draft = f.mmf_draft()
    del draft["medicationCodeableConcept"]
    draft["contained"] = [
        {
            "resourceType": "Medication",
            "id": "med1",
            "code": {"coding": [{"system": f.RXNORM, "code": "68149"}]},
        }
    ]
    draft["medicationReference"] = {"reference": "#med1"}
    assert decide(config, drafts=(draft,))[0] == "pregnancy-test-needed"


def test_not_pregnant_status_is_not_a_negative_test(config: Configuration) -> None:
    outcome, _ = decide(config, observations=(f.pregnancy_status(pregnant=False, days_ago=2),))
    assert outcome == "pregnancy-test-needed"


def test_status_answer_does_not_cancel_a_positive_test(config: Configuration) -> None:
    obs = (f.hcg_qualitative(True, 40), f.pregnancy_status(pregnant=False, days_ago=20))
    assert decide(config, observations=obs)[0] == "pregnant"


def test_negative_test_cancels_a_pregnant_status(config: Configuration) -> None:
    obs = (f.pregnancy_status(pregnant=True, days_ago=40), f.hcg_qualitative(False, 20))
    assert decide(config, observations=obs)[0] == "pregnancy-test-needed"


def test_indeterminate_hcg_is_shown_with_advice(config: Configuration) -> None:
    outcome, finding = decide(config, observations=(f.hcg_quantitative(12, days_ago=2),))
    assert outcome == "pregnancy-test-needed"
    assert "indeterminate" in finding.variables["last_test"]
    assert "repeat a quantitative hCG" in finding.variables["last_test"]


# ---------------------------------------------------------------- rev 2: pregnancy ends

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


def pregnancy(**extra: Any) -> dict[str, Any]:
    resource = f.condition("77386006", cid="preg")
    resource["onsetDateTime"] = f.when(250)
    resource.update(extra)
    return resource


def delivery(days_ago: float) -> dict[str, Any]:
    resource = f.condition("Z37.0", system=ICD10CM, cid="delivery")
    resource["onsetDateTime"] = f.when(days_ago)
    return resource


@pytest.mark.parametrize(
    ("abatement", "expected"),
    [
        ({"abatementDateTime": f.when(20)}, "pregnancy-test-needed"),
        ({"abatementString": "delivered"}, "pregnancy-test-needed"),
        ({"abatementDateTime": f.when(-30)}, "pregnant"),  # abatement in the future
        ({}, "pregnant"),
    ],
    ids=["abated-20-days", "abated-no-date", "future-abatement", "no-abatement"],
)
def test_pregnancy_condition_ends_at_its_abatement(
    config: Configuration, abatement: dict[str, Any], expected: str
) -> None:
    assert decide(config, conditions=(pregnancy(**abatement),))[0] == expected


def test_delivery_record_ends_the_pregnancy_with_a_breastfeeding_note(
    config: Configuration,
) -> None:
    positive = f.hcg_qualitative(True, days_ago=240)
    outcome, finding = decide(config, observations=(positive,), conditions=(delivery(15),))
    assert outcome == "pregnancy-test-needed"
    assert finding.variables["postpartum"] == "ended"
    assert "not recommended while breastfeeding" in card_detail(finding, config)
    # the active Condition, dated before the delivery, has ended too
    outcome, _ = decide(config, conditions=(pregnancy(), delivery(15)))
    assert outcome == "pregnancy-test-needed"


def test_delivery_before_the_pregnancy_evidence_does_not_end_it(config: Configuration) -> None:
    positive = f.hcg_qualitative(True, days_ago=10)
    assert decide(config, observations=(positive,), conditions=(delivery(400),))[0] == "pregnant"


def test_undated_pregnancy_condition_is_not_ended_by_a_delivery_record(
    config: Configuration,
) -> None:
    undated = f.condition("77386006", cid="preg")
    assert decide(config, conditions=(undated, delivery(15)))[0] == "pregnant"


def test_breastfeeding_note_only_within_its_window(config: Configuration) -> None:
    _, finding = decide(config, conditions=(delivery(366),))
    assert finding.variables["postpartum"] == ""


def test_critical_card_offers_override_reasons_that_fit_a_documented_pregnancy(
    config: Configuration,
) -> None:
    outcomes = config.rules["mmf-teratogenicity"].outcomes
    pregnant = set(outcomes["pregnant"]["override_reasons"])
    assert "pregnancy-ended" in pregnant
    assert "test-already-ordered" not in pregnant
    assert "test-already-ordered" in outcomes["pregnancy-test-needed"]["override_reasons"]
