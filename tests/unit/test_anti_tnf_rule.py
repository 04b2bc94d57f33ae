"""anti-tnf-liver-injury decisions (clinical spec) through the rule function
with the bundled configuration, and the card's suggestions through the engine and HTTP.

Conventions: ``on_anti_tnf`` starts infliximab ``start_days_ago`` (default 100) days before NOW
(S); ALT in U/L against the default ULN 40 U/L (5x = 200, 3x = 120); total bilirubin against
1.2 mg/dL (2x = 2.4 mg/dL = 41.04 umol/L).
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests import factories as f
from tests.rule_harness import engine_cards, logged_outcomes, outcome_of, rule_of, run_rule

RULE = "anti-tnf-liver-injury"
DRAFT = f.draft(f.INFLIXIMAB, mid="draft-ifx")


def decide(prefetch: dict[str, Any], **kwargs: Any) -> str | None:
    return outcome_of(run_rule(RULE, prefetch, **kwargs))


# ---------------------------------------------------------------- critical


@pytest.mark.parametrize(
    ("alts", "expected"),
    [
        (((200, 30),), "severe-injury"),  # exactly 5 x ULN
        (((199, 30),), "marked-elevation"),  # just below: latest >= 3 x ULN
        (((250, 30), (45, 5)), "severe-injury"),  # any ALT in the last 90 days, not only latest
        (((250, 90), (30, 5)), "severe-injury"),  # 90 days ago is inside the window
        (((250, 91), (30, 5)), None),  # older, and normalised since
    ],
    ids=["5x", "just-below-5x", "not-latest", "90-days", "91-days"],
)
def test_alt_at_5x_uln_in_the_last_90_days_is_critical(
    alts: tuple[tuple[float, int], ...], expected: str | None
) -> None:
    assert decide(f.on_anti_tnf(*alts)) == expected


def test_critical_card_names_the_criterion_and_the_peak() -> None:
    finding = run_rule(RULE, f.on_anti_tnf((220, 40), (400, 20), (130, 5)))
    assert finding is not None
    assert finding.outcome == "severe-injury"
    assert finding.variables["criterion"] == "alt"  # the ALT >= 5 x ULN phrase of cards/
    assert "400 U/L" in finding.variables["trigger_alt"]
    assert finding.variables["trigger_ratio"] == "10.0\u00d7ULN"
    assert finding.variables["drug"] == "infliximab"


@pytest.mark.parametrize(
    ("bilirubin", "expected"),
    [
        (f.bilirubin(2.5, 17), "severe-injury"),  # 7 days before the ALT
        (f.bilirubin(2.5, 3), "severe-injury"),  # 7 days after the ALT
        (f.bilirubin(2.5, 18), "marked-elevation"),  # 8 days apart
        (f.bilirubin(2.4, 10), "marked-elevation"),  # exactly 2 x ULN is not above it
        (f.bilirubin(45, 10, unit="umol/L"), "severe-injury"),  # 2.63 mg/dL
        (f.bilirubin(40, 10, unit="umol/L"), "marked-elevation"),  # 2.34 mg/dL
        (f.bilirubin(2.5, 10, uln=2.0), "marked-elevation"),  # 1.25 x the lab's own ULN
        (f.bilirubin(2.5, 10, unit="mmol/L"), "marked-elevation"),  # unknown unit: not compared
    ],
    ids=[
        "7d-before",
        "7d-after",
        "8d-apart",
        "exactly-2x",
        "umol-high",
        "umol-normal",
        "own-uln",
        "unknown-unit",
    ],
)
def test_alt_3x_with_bilirubin_above_2x_within_7_days(
    bilirubin: dict[str, Any], expected: str
) -> None:
    prefetch = f.on_anti_tnf((130, 10), extra_observations=(bilirubin,))
    assert decide(prefetch) == expected


def test_hy_pair_need_not_involve_the_latest_alt() -> None:
    prefetch = f.on_anti_tnf((130, 20), (45, 5), extra_observations=(f.bilirubin(3, 20),))
    finding = run_rule(RULE, prefetch)
    assert outcome_of(finding) == "severe-injury"
    assert finding is not None
    assert "bilirubin" in finding.variables["bilirubin"]
    assert "3 mg/dL" in finding.variables["bilirubin"]


def test_bilirubin_pairs_only_with_alt_at_3x() -> None:
    prefetch = f.on_anti_tnf((110, 10), extra_observations=(f.bilirubin(3, 10),))
    assert decide(prefetch) is None


# ---------------------------------------------------------------- warning


@pytest.mark.parametrize(
    ("alts", "expected"),
    [
        (((120, 5),), "marked-elevation"),  # exactly 3 x ULN
        (((119, 5),), None),  # a single mildly raised value
        (((150, 40), (35, 5)), None),  # 3 x earlier only, normalised since
    ],
    ids=["3x", "just-below-3x", "3x-not-latest"],
)
def test_latest_alt_at_3x_uln_is_a_warning(
    alts: tuple[tuple[float, int], ...], expected: str | None
) -> None:
    prefetch = f.on_anti_tnf(*alts, extra_observations=(f.alt(30, 110),))  # normal baseline
    assert decide(prefetch) == expected


@pytest.mark.parametrize(("apart", "fires"), [(28, True), (27, False), (60, True)], ids=str)
def test_persistent_elevation_two_raised_results_at_least_28_days_apart(
    apart: int, fires: bool
) -> None:
    prefetch = f.on_anti_tnf((30, 110), (50, 10 + apart), (55, 10))
    finding = run_rule(RULE, prefetch)
    assert (outcome_of(finding) == "persistent-elevation") is fires
    if fires:
        assert finding is not None
        assert finding.variables["days_apart"] == str(apart)
        assert "50 U/L" in finding.variables["earlier_alt"]


def test_persistent_elevation_with_missing_baseline() -> None:
    assert decide(f.on_anti_tnf((50, 50), (55, 10))) == "persistent-elevation"


def test_baseline_older_than_180_days_before_s_is_missing() -> None:
    prefetch = f.on_anti_tnf((60, 281), (50, 50), (55, 10))  # S - 181 d
    assert decide(prefetch) == "persistent-elevation"


@pytest.mark.parametrize("baseline_ago", [110, 280], ids=["S-10d", "S-180d"])
def test_raised_baseline_disables_persistent_elevation(baseline_ago: int) -> None:
    assert decide(f.on_anti_tnf((60, baseline_ago), (50, 50), (55, 10))) is None


def test_raised_baseline_multiples_are_of_the_baseline_and_the_card_says_so() -> None:
    # baseline 60 U/L (1.5 x ULN): 3 x baseline = 180, 5 x baseline = 300
    finding = run_rule(RULE, f.on_anti_tnf((60, 110), (180, 10)))
    assert outcome_of(finding) == "marked-elevation"
    assert finding is not None
    assert finding.variables["baseline_state"] == "raised-relative"  # the card says so
    assert finding.variables["trigger_ratio"] == "3.0\u00d7baseline"
    assert finding.variables["reference"] == "baseline"


@pytest.mark.parametrize(
    ("alts", "expected"),
    [
        (((179, 10),), None),  # 4.5 x ULN but just below 3 x baseline
        (((180, 10),), "marked-elevation"),  # exactly 3 x baseline
        (((299, 10),), "marked-elevation"),  # just below 5 x baseline (7.5 x ULN)
        (((300, 10),), "severe-injury"),  # exactly 5 x baseline
    ],
    ids=["below-3x", "3x", "below-5x", "5x"],
)
def test_raised_baseline_boundaries(
    alts: tuple[tuple[float, int], ...], expected: str | None
) -> None:
    assert decide(f.on_anti_tnf((60, 110), *alts)) == expected


def test_raised_baseline_relative_can_be_switched_off() -> None:
    prefetch = f.on_anti_tnf((60, 110), (130, 10))  # 3.25 x ULN, 2.2 x baseline
    assert decide(prefetch) is None
    assert decide(prefetch, params={"raised_baseline_relative": False}) == "marked-elevation"


@pytest.mark.parametrize(
    ("latest", "expected"),
    [(159, None), (160, None), (161, None)],
    ids=["below-baseline", "at-baseline", "just-above"],
)
def test_falling_alt_on_infliximab_rescue_is_a_response(latest: float, expected: None) -> None:
    # refractory AIH, baseline 160 U/L (4 x ULN); infliximab working: 150, then the latest
    prefetch = f.on_anti_tnf((160, 110), (150, 40), (latest, 5), conditions=(f.aih_condition(),))
    assert decide(prefetch) is expected


def test_falling_alt_rule_is_configurable() -> None:
    # below the raised baseline but still >= 3 x baseline is impossible; with multiples of the
    # ULN (relative switched off) the falling check still silences the 3 x ULN warning
    prefetch = f.on_anti_tnf((160, 110), (132, 5))
    off = {"raised_baseline_relative": False}
    assert decide(prefetch, params=off) is None
    both_off = {"raised_baseline_relative": False, "falling_alt_no_card": False}
    assert decide(prefetch, params=both_off) == "marked-elevation"


def test_severe_rise_on_a_raised_baseline_stays_critical_even_if_falling_since() -> None:
    prefetch = f.on_anti_tnf((60, 110), (320, 30), (50, 5))
    assert decide(prefetch) == "severe-injury"


def infusion(days_ago: float, mid: str | None = None) -> dict[str, Any]:
    """One completed infliximab request without an end date: one infusion on that day."""
    return f.course(f.INFLIXIMAB, days_ago, status="completed", mid=mid)


@pytest.mark.parametrize(
    ("last_infusion_ago", "expected"),
    [(56, "marked-elevation"), (179, "marked-elevation"), (180, None)],
    ids=["8-weeks", "179-days", "180-days"],
)
def test_completed_infusion_orders_chain_into_one_current_course(
    last_infusion_ago: int, expected: str | None
) -> None:
    first = last_infusion_ago + 60
    prefetch = f.full_prefetch(
        observations=(f.alt(30, first + 10), f.alt(130, 5)),
        medication_requests=(infusion(first), infusion(last_infusion_ago)),
    )
    finding = run_rule(RULE, prefetch)
    assert outcome_of(finding) == expected
    if finding is not None:
        assert finding.variables["course_start"] == f.when(first)[:10]  # type: ignore[index]


@pytest.mark.parametrize(
    ("gap", "start_ago"), [(179, 300), (180, 121)], ids=["179-day-gap", "180-day-gap"]
)
def test_exposure_gap_boundary_decides_the_course_start(gap: int, start_ago: int) -> None:
    prefetch = f.full_prefetch(
        observations=(f.alt(30, 125), f.alt(130, 5)),
        medication_requests=(infusion(121 + gap), infusion(121), infusion(30)),
    )
    finding = run_rule(RULE, prefetch)
    assert finding is not None
    assert finding.variables["course_start"] == f.when(start_ago)[:10]  # type: ignore[index]


def test_next_infusion_order_uses_the_course_start_not_the_draft_date() -> None:
    prefetch = f.full_prefetch(
        observations=(f.alt(30, 130), f.alt(130, 5)),
        medication_requests=(infusion(120), infusion(64), infusion(8)),
    )
    finding = run_rule(RULE, prefetch, hook="order-sign", drafts=[DRAFT])
    assert outcome_of(finding) == "marked-elevation"
    assert finding is not None
    assert finding.variables["course_start"] == f.when(120)[:10]  # type: ignore[index]


def test_alt_at_exactly_s_is_baseline_not_after() -> None:
    # measured on the start day: it is the baseline, and nothing was measured after S
    assert decide(f.on_anti_tnf((300, 60), start_days_ago=60)) is None


@pytest.mark.parametrize(
    "alts",
    [
        ((60, 5),),  # single mild rise
        ((60, 40), (30, 5)),  # normalised since
        ((30, 40), (60, 5)),  # only the latest is raised
        ((40, 40), (41, 5)),  # at the ULN is not above it
    ],
    ids=["single", "normalised", "latest-only", "at-uln"],
)
def test_mild_or_resolved_rises_give_no_card(alts: tuple[tuple[float, int], ...]) -> None:
    assert decide(f.on_anti_tnf(*alts)) is None


def test_uln_from_the_reference_range_and_the_card_says_which() -> None:
    # 130 U/L is 3.25 x the default 40 U/L but 2.6 x the lab's own 50 U/L
    own = f.on_anti_tnf(extra_observations=(f.alt(130, 5, uln=50),))
    assert decide(own) is None
    finding = run_rule(RULE, f.on_anti_tnf((130, 5)))
    assert finding is not None
    assert "configured default" in finding.variables["trigger_alt"]
    assert any("configured default ULN" in gap for gap in finding.gaps)
    ranged = run_rule(RULE, f.on_anti_tnf(extra_observations=(f.alt(160, 5, uln=50),)))
    assert ranged is not None
    assert ranged.variables["trigger_alt"].endswith("ULN 50 U/L)")  # the lab's own range
    assert not any("configured default ULN" in gap for gap in ranged.gaps)


def test_undated_alt_is_ignored_and_counted() -> None:
    undated = f.effective(f.alt(900, 1), None)
    assert decide(f.on_anti_tnf((30, 5), extra_observations=(undated,))) is None
    finding = run_rule(RULE, f.on_anti_tnf((130, 5), extra_observations=(undated,)))
    assert finding is not None
    assert any("1 ALT result(s) without a date" in gap for gap in finding.gaps)


# ---------------------------------------------------------------- trigger and S


def test_patient_view_without_an_active_course_no_card() -> None:
    stopped = f.full_prefetch(
        observations=(f.alt(250, 20),),
        medication_requests=(f.course(f.INFLIXIMAB, 150, status="stopped", end_days_ago=30),),
    )
    assert decide(stopped) is None
    assert decide(stopped, hook="order-sign", drafts=(DRAFT,)) == "severe-injury"


@pytest.mark.parametrize(("ended_ago", "fires"), [(180, True), (181, False)], ids=str)
def test_course_ended_within_180_days_dates_s_on_order_sign(ended_ago: int, fires: bool) -> None:
    prefetch = f.full_prefetch(
        observations=(f.alt(250, 20),),
        medication_requests=(
            f.course(f.INFLIXIMAB, 400, status="completed", end_days_ago=ended_ago),
        ),
    )
    finding = run_rule(RULE, prefetch, hook="order-sign", drafts=(DRAFT,))
    assert (finding is not None) is fires
    if fires:
        assert finding is not None
        assert finding.variables["course_start"] == f.when(400)[:10]


def test_new_start_without_any_course_has_nothing_after_s() -> None:
    prefetch = f.full_prefetch(observations=(f.alt(250, 20),))
    assert decide(prefetch, hook="order-sign", drafts=(DRAFT,)) is None


def test_s_is_the_earliest_start_among_current_courses() -> None:
    prefetch = f.full_prefetch(
        observations=(f.alt(250, 20),),
        medication_requests=(f.course(f.INFLIXIMAB, 10), f.course(f.ADALIMUMAB, 50)),
    )
    finding = run_rule(RULE, prefetch)
    assert finding is not None
    assert finding.variables["course_start"] == f.when(50)[:10]
    assert "adalimumab" in finding.variables["drug"]


@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
def test_order_hooks_need_an_anti_tnf_draft(hook: str) -> None:
    prefetch = f.on_anti_tnf((250, 20))
    assert decide(prefetch, hook=hook, drafts=(f.draft(f.ATORVASTATIN),)) is None
    assert decide(prefetch, hook=hook, drafts=(DRAFT,)) == "severe-injury"


@pytest.mark.parametrize(
    ("hook", "drafts", "removable"),
    [
        ("order-sign", (DRAFT,), ("draft-ifx",)),
        ("order-select", (DRAFT,), ()),
        ("patient-view", (), ()),
    ],
)
def test_removal_only_on_order_sign(
    hook: str, drafts: tuple[dict[str, Any], ...], removable: tuple[str, ...]
) -> None:
    finding = run_rule(RULE, f.on_anti_tnf((250, 20)), hook=hook, drafts=drafts)
    assert finding is not None
    assert tuple(d.id for d in finding.drafts) == removable


@pytest.mark.parametrize(
    ("conditions", "stated"),
    [
        ((f.aih_condition(),), "aih"),
        ((f.aih_condition(clinical_status="resolved"),), "none"),
        ((), "none"),
    ],
    ids=["aih", "resolved-aih", "none"],
)
def test_aih_on_the_problem_list_is_stated(
    conditions: tuple[dict[str, Any], ...], stated: str
) -> None:
    finding = run_rule(RULE, f.on_anti_tnf((250, 20), conditions=conditions))
    assert finding is not None
    assert finding.variables["liver_history"] == stated  # chooses the card's phrase


# ---------------------------------------------------------------- cards


def anti_tnf_cards(app: Flask, body: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(c.card) for c in engine_cards(app, body) if c.rule_id == RULE]


def create_codes(card: dict[str, Any]) -> list[str]:
    return [
        a["resource"]["code"].get("text", "")
        for s in card.get("suggestions", ())
        for a in s["actions"]
        if a["type"] == "create"
    ]


def test_order_sign_card_offers_tests_review_and_a_non_recommended_removal(app: Flask) -> None:
    body = f.hook_request("order-sign", drafts=(DRAFT,), prefetch=f.on_anti_tnf((250, 20)))
    (card,) = anti_tnf_cards(app, body)
    assert card["indicator"] == "critical"
    codes = " ".join(create_codes(card))
    for test in ("IgG", "ANA", "smooth", "Hepatology"):
        assert test in codes
    deletes = [(s, a) for s in card["suggestions"] for a in s["actions"] if a["type"] == "delete"]
    assert len(deletes) == 1
    suggestion, action = deletes[0]
    assert action["resourceId"] == "MedicationRequest/draft-ifx"
    assert not suggestion.get("isRecommended", False)
    assert card["selectionBehavior"] == "any"
    assert card["overrideReasons"]


@pytest.mark.parametrize("hook", ["order-select", "patient-view"])
def test_no_removal_suggestion_outside_order_sign(app: Flask, hook: str) -> None:
    drafts = (DRAFT,) if hook != "patient-view" else ()
    body = f.hook_request(hook, drafts=drafts, prefetch=f.on_anti_tnf((250, 20)))
    (card,) = anti_tnf_cards(app, body)
    actions = [a["type"] for s in card["suggestions"] for a in s["actions"]]
    assert "delete" not in actions
    assert len(create_codes(card)) == 4


def test_warning_card_over_http(client: FlaskClient, app: Flask) -> None:
    body = f.hook_request("patient-view", prefetch=f.on_anti_tnf((30, 110), (124, 8)))
    cards = client.post("/cds-services/aih-patient-view", json=body).get_json()["cards"]
    assert logged_outcomes(app, cards) == [(RULE, "marked-elevation", "warning")]
    card = cards[0]
    assert rule_of(card) == RULE
    assert "3.1\u00d7ULN" in card["summary"]
    assert "infliximab" in card["summary"]
    assert len(card["summary"]) < 140
    for fact in (
        "13 weeks",
        "at or above\n3\u00d7ULN",
        "Ghabril et al.",
        "No autoimmune hepatitis",
    ):
        assert fact in card["detail"]
    assert card["source"]["url"] == "http://localhost/evidence/anti-tnf-liver-injury"
    assert card["overrideReasons"]


def test_infliximab_for_aih_is_assessed_and_aih_is_named(client: FlaskClient, app: Flask) -> None:
    prefetch = f.on_anti_tnf((30, 110), (50, 50), (55, 10), conditions=(f.aih_condition(),))
    body = f.hook_request("patient-view", prefetch=prefetch)
    cards = client.post("/cds-services/aih-patient-view", json=body).get_json()["cards"]
    assert (RULE, "persistent-elevation", "warning") in logged_outcomes(app, cards)
    card = next(c for c in cards if rule_of(c) == RULE)
    assert "Autoimmune hepatitis is on the problem list" in card["detail"]
