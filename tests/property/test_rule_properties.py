"""Properties of the AIH treatment-response and anti-TNF rules over generated lab series.

1. Rules never raise: whatever the lab series (values 0, tiny, negative or huge; no reference
   range, a reference range without ``high`` or in another unit; unknown units; no date, partial
   dates, dates in the future, duplicate dates, unreadable dates; any status), the rule functions
   return a finding or None, and the HTTP endpoint answers 200 with well-formed cards.
2. The indicator is monotone in ALT: raising any single ALT result measured *after* the
   treatment start T0 (treatment response) or *after* the anti-TNF start S (anti-TNF liver
   injury), all else equal, never yields a less severe card and never removes a card.
   The property is deliberately about results after the start: raising the *baseline* ALT (the
   latest before T0 / S) can legitimately silence a card, because the spec judges the week-4 fall
   against it and disables the anti-TNF persistent-elevation criterion when it is above ULN.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests import factories as f
from tests.rule_harness import (
    SEVERITY,
    TREATMENT_RESPONSE,
    configuration,
    engine_cards,
    run_rule,
)

ANTI_TNF = "anti-tnf-liver-injury"
RULES = (*TREATMENT_RESPONSE, ANTI_TNF)
SERVICES = {"patient-view": "aih-patient-view", "order-sign": "aih-order-sign"}
SERVICES["order-select"] = "aih-order-select"
# The app fixture holds no per-example state the properties depend on (the card log only grows).
SHARED_APP = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

ANALYTES = {
    "alt": ("1742-6", ["U/L", "[IU]/L", "IU/L"]),
    "ast": ("1920-8", ["U/L", "[IU]/L"]),
    "igg": ("2465-3", ["g/L", "mg/dL"]),
    "bilirubin": ("1975-2", ["mg/dL", "umol/L"]),
}
UNKNOWN_UNITS = ["ukat/L", "mmol/L", "", "%"]
DATE_POOL = [f.when(d) for d in (0, 7, 28, 90, 150, 182)]  # shared dates make duplicates

# ---------------------------------------------------------------- strategies: anything goes

# Plausible-to-absurd magnitudes the rules must survive (tiny baselines make huge ratios).
values = st.one_of(
    st.sampled_from([0, 0.0, 1e-30, 0.001, 40, 80, 120, 200, 1e6, 1e9, 1e30, 1e300]),
    st.floats(min_value=1e-30, max_value=1e300),
    st.floats(min_value=-50, max_value=-0.001),
    st.integers(min_value=0, max_value=5000),
)
dates = st.one_of(
    st.none(),
    st.floats(min_value=-400, max_value=1200, allow_nan=False).map(f.when),
    st.sampled_from(DATE_POOL),
    st.sampled_from(
        ["2026", "2025", "2026-05", "2025-12", "2026-06-01", "2026-13-45", "yesterday"]
    ),
)
date_fields = st.sampled_from(["effectiveDateTime", "effectivePeriod", "issued"])
statuses = st.sampled_from(["final", "final", "amended", "preliminary", "entered-in-error"])


@st.composite
def lab_results(draw: st.DrawFn) -> dict[str, Any]:
    analyte = draw(st.sampled_from(sorted(ANALYTES)))
    code, units = ANALYTES[analyte]
    unit = draw(st.one_of(st.sampled_from(units), st.sampled_from(UNKNOWN_UNITS)))
    resource = f.observation(code, value=draw(values), unit=unit, status=draw(statuses))
    date = draw(dates)
    resource.pop("effectiveDateTime", None)
    if date is not None:
        field = draw(date_fields)
        if field == "effectivePeriod":
            resource[field] = {"start": date}
        elif field == "issued" and len(date) > 10:
            resource[field] = date
        else:
            resource["effectiveDateTime"] = date
    uln_kind = draw(st.sampled_from(["none", "high", "high", "zero", "no-high", "other-unit"]))
    if uln_kind == "high":
        high = draw(st.floats(min_value=0.01, max_value=500, allow_nan=False))
        resource["referenceRange"] = [{"high": {"value": high, "unit": unit, "code": unit}}]
    elif uln_kind == "zero":
        resource["referenceRange"] = [{"high": {"value": 0, "unit": unit, "code": unit}}]
    elif uln_kind == "no-high":
        resource["referenceRange"] = [{"low": {"value": 1, "unit": unit, "code": unit}}]
    elif uln_kind == "other-unit":
        resource["referenceRange"] = [{"high": {"value": 55, "unit": "ukat/L", "code": "ukat/L"}}]
    return resource


DRUGS = [f.PREDNISOLONE, f.AZATHIOPRINE, f.MERCAPTOPURINE, f.MYCOPHENOLATE, f.INFLIXIMAB]
DRUGS += [f.ADALIMUMAB, f.TACROLIMUS]


@st.composite
def courses(draw: st.DrawFn) -> dict[str, Any]:
    drug = draw(st.sampled_from(DRUGS))
    start = draw(st.one_of(st.none(), st.integers(min_value=-30, max_value=900)))
    status = draw(st.sampled_from(["active", "active", "completed", "stopped", "on-hold"]))
    end = draw(st.one_of(st.none(), st.integers(min_value=-30, max_value=400)))
    return f.course(drug, start, status=status, end_days_ago=end)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, tuple[dict[str, Any], ...], dict[str, Any]]:
    hook = draw(st.sampled_from(sorted(SERVICES)))
    drafts: tuple[dict[str, Any], ...] = ()
    if hook != "patient-view":
        drafts = tuple(
            f.draft(d, mid=f"draft-{i}")
            for i, d in enumerate(draw(st.lists(st.sampled_from(DRUGS), min_size=1, max_size=2)))
        )
    status = draw(st.sampled_from([None, "active", "active", "resolved", "absent"]))
    conditions = () if status == "absent" else (f.aih_condition(clinical_status=status),)
    medication_requests = draw(st.lists(courses(), max_size=4))
    if draw(st.integers(0, 3)):  # mostly a patient the rules are about: on treatment, dated ALT
        t0_ago, s_ago = draw(st.integers(1, 500)), draw(st.integers(1, 500))
        medication_requests += [
            f.course(f.PREDNISOLONE, t0_ago),
            f.course(f.AZATHIOPRINE, draw(st.integers(0, t0_ago))),
            f.course(f.INFLIXIMAB, s_ago),
        ]
    dated_alts = [
        f.alt(
            draw(values), days_ago=draw(st.integers(0, 600)), uln=draw(st.sampled_from([None, 35]))
        )
        for _ in range(draw(st.integers(0, 6)))
    ]
    prefetch = f.full_prefetch(
        observations=(*dated_alts, *draw(st.lists(lab_results(), max_size=12))),
        medication_requests=tuple(medication_requests),
        conditions=conditions,
    )
    return hook, drafts, prefetch


# ---------------------------------------------------------------- 1. never raise


@given(scenario=scenarios())
def test_rule_functions_never_raise_on_arbitrary_lab_series(
    scenario: tuple[str, tuple[dict[str, Any], ...], dict[str, Any]],
) -> None:
    hook, drafts, prefetch = scenario
    config = configuration()
    for rule_id in RULES:
        finding = run_rule(rule_id, prefetch, hook=hook, drafts=drafts)
        if finding is not None:
            assert finding.rule_id == rule_id
            assert finding.outcome in config.rules[rule_id].outcomes
            assert all(isinstance(v, str) for v in finding.variables.values())


@SHARED_APP
@given(scenario=scenarios())
def test_http_endpoint_never_fails_on_arbitrary_lab_series(
    client: FlaskClient, scenario: tuple[str, tuple[dict[str, Any], ...], dict[str, Any]]
) -> None:
    hook, drafts, prefetch = scenario
    body = f.hook_request(hook, drafts=drafts, prefetch=prefetch)
    response = client.post(f"/cds-services/{SERVICES[hook]}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    cards = response.get_json()["cards"]
    event(f"cards: {sorted(c['source']['topic']['code'] for c in cards)}")
    assert_well_formed(cards)


def assert_well_formed(cards: list[dict[str, Any]]) -> None:
    topics = [c["source"]["topic"]["code"] for c in cards]
    assert len(topics) == len(set(topics)), "a rule emits at most one card per request"
    assert sum(t in TREATMENT_RESPONSE for t in topics) <= 1
    for card in cards:
        assert 0 < len(card["summary"]) < 140
        assert card["indicator"] in {"info", "warning", "critical"}
        if card["indicator"] != "info":
            assert card["overrideReasons"]


# case -> (rules, prefetch, the one card expected: (rule, outcome, indicator))
EXTREME = {
    "alt-1e30-aih": (
        TREATMENT_RESPONSE,
        f.on_aih_treatment((200, 255), (1e30, 30), (1e30, 5)),
        ("aih-refractory", "steroid-refractory", "warning"),
    ),
    "alt-1e300-aih": (
        TREATMENT_RESPONSE,
        f.on_aih_treatment((200, 255), (1e300, 30), (1e300, 5)),
        ("aih-refractory", "steroid-refractory", "warning"),
    ),
    "tiny-baseline-aih": (
        TREATMENT_RESPONSE,
        f.on_aih_treatment((1e-30, 255), (100, 5)),
        ("aih-insufficient-response", "not-in-complete-response", "warning"),
    ),
    "alt-1e30-anti-tnf": (
        (ANTI_TNF,),
        f.on_anti_tnf((1e30, 5)),
        ("anti-tnf-liver-injury", "severe-injury", "critical"),
    ),
}


# Ratios beyond the 28-digit decimal context once made quantize() raise (a 500); card numbers
# are now formatted exactly at any magnitude.
@pytest.mark.parametrize("case", sorted(EXTREME))
def test_rules_do_not_raise_on_extreme_values(case: str) -> None:
    rules, prefetch, (expected_rule, outcome, _) = EXTREME[case]
    findings = {rule_id: run_rule(rule_id, prefetch) for rule_id in rules}
    finding = findings[expected_rule]
    assert finding is not None
    assert finding.outcome == outcome
    assert all(isinstance(v, str) for v in finding.variables.values())


@pytest.mark.parametrize("case", sorted(EXTREME))
def test_http_endpoint_answers_extreme_values_with_a_well_formed_card(
    client: FlaskClient, case: str
) -> None:
    _, prefetch, (expected_rule, _, indicator) = EXTREME[case]
    body = f.hook_request("patient-view", prefetch=prefetch)
    response = client.post("/cds-services/aih-patient-view", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    cards = response.get_json()["cards"]
    assert [(c["source"]["topic"]["code"], c["indicator"]) for c in cards] == [
        (expected_rule, indicator)
    ]
    assert_well_formed(cards)


# ---------------------------------------------------------------- 2. monotone in ALT

# mostly around the thresholds (ULN 40: 1x, 2x, 3x, 5x), sometimes far above them
alt_values = st.one_of(st.integers(min_value=0, max_value=260), st.integers(0, 1500))
raises = st.one_of(st.integers(min_value=1, max_value=120), st.integers(1, 1500))
own_ulns = st.sampled_from([None, None, 35, 50])


def alt_result(value: int, days_ago: int, uln: int | None, index: int) -> dict[str, Any]:
    resource = f.alt(value, days_ago=days_ago, uln=uln)
    resource["id"] = f"alt-{index}"
    return resource


@st.composite
def alt_series(draw: st.DrawFn, start_ago: int, oldest: int) -> tuple[list[dict[str, Any]], int]:
    """ALT results between ``oldest`` days ago and now, at least one strictly after the start;
    returns them and the index of a result after the start to raise."""
    after = draw(st.lists(st.integers(0, start_ago - 1), min_size=1, max_size=5))
    other = draw(st.lists(st.integers(0, oldest), max_size=6))
    days = after + other
    results = [alt_result(draw(alt_values), d, draw(own_ulns), i) for i, d in enumerate(days)]
    return results, draw(st.integers(0, len(after) - 1))


def raised(prefetch: dict[str, Any], alt_id: str, by: int) -> dict[str, Any]:
    changed = copy.deepcopy(prefetch)
    for entry in changed["observations"]["entry"]:
        resource = entry["resource"]
        if resource["id"] == alt_id:
            resource["valueQuantity"]["value"] += by
    return changed


def indicator(rule_id: str, prefetch: dict[str, Any], hook: str = "patient-view") -> int:
    drafts = (f.draft(f.INFLIXIMAB),) if hook != "patient-view" else ()
    finding = run_rule(rule_id, prefetch, hook=hook, drafts=drafts)
    if finding is None:
        return SEVERITY[None]
    outcome = configuration().rules[rule_id].outcomes[finding.outcome]
    return SEVERITY[outcome["indicator"]]


def shown(app: Flask, prefetch: dict[str, Any], rules: tuple[str, ...]) -> int:
    """The most severe card among ``rules`` that the patient-view service shows (0: none)."""
    body = f.hook_request("patient-view", prefetch=prefetch)
    found = [c.card["indicator"] for c in engine_cards(app, body) if c.rule_id in rules]
    return max((SEVERITY[i] for i in found), default=SEVERITY[None])


@st.composite
def aih_patients(draw: st.DrawFn) -> tuple[dict[str, Any], str, int]:
    t0_ago = draw(st.integers(min_value=1, max_value=420))
    alts, index = draw(alt_series(t0_ago, t0_ago + 120))
    partner = draw(st.sampled_from([f.AZATHIOPRINE, f.MYCOPHENOLATE]))
    partner_ago = draw(st.integers(min_value=0, max_value=t0_ago))
    others = []
    if draw(st.booleans()):
        others.append(f.igg(draw(st.integers(5, 40)), days_ago=draw(st.integers(0, 60))))
    if draw(st.booleans()):
        others.append(f.ast(draw(alt_values), days_ago=draw(st.integers(0, 60))))
    prefetch = f.full_prefetch(
        observations=(*alts, *others),
        medication_requests=(f.course(f.PREDNISOLONE, t0_ago), f.course(partner, partner_ago)),
        conditions=(f.aih_condition(),),
    )
    return prefetch, alts[index]["id"], draw(raises)


@SHARED_APP
@given(patient=aih_patients())
def test_treatment_response_is_monotone_in_alt_after_t0(
    app: Flask, patient: tuple[dict[str, Any], str, int]
) -> None:
    """Raising one ALT measured after T0 never lowers the treatment-response card shown
    (refractory > insufficient > non-response applied), nor any single rule's indicator."""
    prefetch, alt_id, by = patient
    higher = raised(prefetch, alt_id, by)
    event(f"shown before: {shown(app, prefetch, TREATMENT_RESPONSE)}")
    for rule_id in TREATMENT_RESPONSE:
        assert indicator(rule_id, higher) >= indicator(rule_id, prefetch), rule_id
    assert shown(app, higher, TREATMENT_RESPONSE) >= shown(app, prefetch, TREATMENT_RESPONSE)


@st.composite
def anti_tnf_patients(draw: st.DrawFn) -> tuple[dict[str, Any], str, int]:
    s_ago = draw(st.integers(min_value=1, max_value=400))
    alts, index = draw(alt_series(s_ago, s_ago + 200))
    bilirubins = [
        f.bilirubin(draw(st.floats(0.1, 12, allow_nan=False)), days_ago=draw(st.integers(0, 400)))
        for _ in range(draw(st.integers(0, 3)))
    ]
    aih = (f.aih_condition(),) if draw(st.booleans()) else ()
    prefetch = f.full_prefetch(
        observations=(*alts, *bilirubins),
        medication_requests=(f.course(f.INFLIXIMAB, s_ago),),
        conditions=aih,
    )
    return prefetch, alts[index]["id"], draw(raises)


@SHARED_APP
@given(patient=anti_tnf_patients(), hook=st.sampled_from(sorted(SERVICES)))
def test_anti_tnf_indicator_is_monotone_in_alt_after_s(
    app: Flask, patient: tuple[dict[str, Any], str, int], hook: str
) -> None:
    """Raising one ALT measured after S never lowers the anti-TNF card (critical > warning >
    none), on every hook."""
    prefetch, alt_id, by = patient
    higher = raised(prefetch, alt_id, by)
    event(
        f"before: {indicator(ANTI_TNF, prefetch, hook)}, after: {indicator(ANTI_TNF, higher, hook)}"
    )
    assert indicator(ANTI_TNF, higher, hook) >= indicator(ANTI_TNF, prefetch, hook)
    if hook == "patient-view":
        assert shown(app, higher, (ANTI_TNF,)) >= shown(app, prefetch, (ANTI_TNF,))


def test_monotonicity_is_about_results_after_the_start() -> None:
    """The counter-example the properties exclude on purpose: a raised baseline turns off the
    persistent-elevation criterion (the spec), so a higher baseline ALT removes the card."""
    normal = f.on_anti_tnf((30, 110), (50, 50), (55, 10))
    raised_baseline = f.on_anti_tnf((60, 110), (50, 50), (55, 10))
    assert indicator(ANTI_TNF, normal) > indicator(ANTI_TNF, raised_baseline)


# ---------------------------------------------------------------- rev 2: episodes, falling ALT


@st.composite
def unrelated_steroid_courses(draw: st.DrawFn, t0_ago: int) -> dict[str, Any]:
    """A corticosteroid course the treatment-response rules must ignore: one that ended at least
    the episode gap (180 days) before T0, or one ordered for another condition (any dates)."""
    drug = draw(st.sampled_from([f.PREDNISOLONE, ("8640", "prednisone")]))
    if draw(st.booleans()):
        end_ago = t0_ago + 180 + draw(st.integers(0, 3000))
        start_ago = end_ago + draw(st.integers(0, 60))
        return f.course(drug, start_ago, status="completed", end_days_ago=end_ago)
    start_ago = draw(st.integers(0, 4000))
    status = draw(st.sampled_from(["active", "completed", "stopped"]))
    course = f.course(drug, start_ago, status=status)
    course["reasonCode"] = [
        {"coding": [{"system": f.SNOMED, "code": "13645005", "display": "COPD"}]}
    ]
    return course


@given(patient=aih_patients(), data=st.data())
def test_an_older_unrelated_steroid_course_never_changes_the_treatment_response(
    patient: tuple[dict[str, Any], str, int], data: st.DataObject
) -> None:
    prefetch, _, _ = patient
    t0_ago = max(
        (f.NOW - datetime.fromisoformat(e["resource"]["authoredOn"])).days
        for e in prefetch["medicationRequests"]["entry"]
    )
    extra = data.draw(unrelated_steroid_courses(t0_ago))
    with_extra = copy.deepcopy(prefetch)
    with_extra["medicationRequests"]["entry"].append({"resource": extra})
    for rule_id in TREATMENT_RESPONSE:
        before = run_rule(rule_id, prefetch)
        after = run_rule(rule_id, with_extra)
        assert (before.outcome if before else None) == (after.outcome if after else None), rule_id


@given(patient=anti_tnf_patients(), factor=st.sampled_from([0, 0.1, 0.5, 0.9, 0.99]))
def test_lowering_every_alt_after_s_never_raises_the_anti_tnf_indicator(
    patient: tuple[dict[str, Any], str, int], factor: float
) -> None:
    prefetch, _, _ = patient
    start = prefetch["medicationRequests"]["entry"][0]["resource"]["authoredOn"]
    lower = copy.deepcopy(prefetch)
    for entry in lower["observations"]["entry"]:
        resource = entry["resource"]
        if (
            resource["code"]["coding"][0]["code"] == "1742-6"
            and resource.get("effectiveDateTime", "") > start
        ):
            resource["valueQuantity"]["value"] *= factor
    for hook in SERVICES:
        assert indicator(ANTI_TNF, lower, hook) <= indicator(ANTI_TNF, prefetch, hook), hook
