"""anti-tnf-liver-injury: ALT rising on an anti-TNF agent (possible drug-induced liver injury).

Choices where the clinical specification is silent (also in docs/rules/anti-tnf-liver-injury.md):
- "After S" means strictly after the course start; the baseline window [S - 180 d, S] includes S.
- The ALT >= 3 x ULN with bilirubin > 2 x ULN criterion uses the same 90-day recency as the
  ALT >= 5 x ULN criterion: an old, resolved episode does not raise a critical card forever.
- Only the most severe situation gives a card (critical > marked elevation > persistent).
- On patient-view the rule needs an anti-TNF course active now; on order hooks the draft counts.
- A known AIH diagnosis is stated on the card (the rise may be AIH activity, or anti-TNF
  autoimmune-like hepatitis), and a raised baseline limits the rule to the 3x/5x/bilirubin
  criteria, as the clinical specification says.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from cds_service.record import DraftOrder, LabResult, MedicationCourse, PatientRecord
from cds_service.rules.base import WHOLE_CHART, Finding, RuleInput, RuleSpec
from cds_service.rules.common import fmt_date
from cds_service.rules.series import (
    above_times_uln,
    after,
    at_least_times_uln,
    between,
    dated,
    default_uln_note,
    describe,
    duration_text,
    latest,
    ratio_text,
    times_uln,
    undated_count,
)
from cds_service.terminology import Terminology

RULE_ID = "anti-tnf-liver-injury"


class Parameters(Schema):
    class Meta:
        unknown = RAISE

    drug_class = fields.String(load_default="anti-tnf")
    course_recency_days = fields.Integer(load_default=180, validate=validate.Range(0, 3650))
    baseline_window_days = fields.Integer(load_default=180, validate=validate.Range(1, 3650))
    critical_alt_multiple = fields.Decimal(load_default=Decimal(5), validate=validate.Range(1))
    recent_window_days = fields.Integer(load_default=90, validate=validate.Range(1, 3650))
    combined_alt_multiple = fields.Decimal(load_default=Decimal(3), validate=validate.Range(1))
    combined_bilirubin_multiple = fields.Decimal(
        load_default=Decimal(2), validate=validate.Range(1)
    )
    combined_max_days_apart = fields.Integer(load_default=7, validate=validate.Range(0, 90))
    warning_alt_multiple = fields.Decimal(load_default=Decimal(3), validate=validate.Range(1))
    persistent_min_days_apart = fields.Integer(load_default=28, validate=validate.Range(1, 365))
    aih_condition_valueset = fields.String(load_default="autoimmune-hepatitis")
    # hooks on which the card offers to remove the anti-TNF draft (the specification: order-sign)
    removal_hooks = fields.List(fields.String(), load_default=lambda: ["order-sign"])
    alt_results_shown = fields.Integer(load_default=8, validate=validate.Range(1, 50))


def triggered(drafts: tuple[DraftOrder, ...], hook: str, params: Mapping[str, Any]) -> bool:
    if hook == "patient-view":
        return True
    return hook in SPEC.hooks and any(params["drug_class"] in d.classes for d in drafts)


def _current_courses(
    record: PatientRecord, drug_class: str, now: datetime, recency_days: int
) -> list[MedicationCourse]:
    return [
        c
        for c in record.courses_in(drug_class)
        if c.is_active(now) or c.ended_within(now, recency_days)
    ]


def evaluate(inp: RuleInput) -> Finding | None:
    params, record, now = inp.params, inp.record, inp.now
    drug_class = str(params["drug_class"])
    drafts = tuple(d for d in inp.drafts if drug_class in d.classes)
    courses = _current_courses(record, drug_class, now, int(params["course_recency_days"]))
    if inp.hook == "patient-view" and not any(c.is_active(now) for c in courses):
        return None
    gaps: list[str] = []
    starts = [c.start for c in courses if c.start is not None]
    if len(starts) < len(courses):
        gaps.append("Anti-TNF order(s) without a start date were not used to date the start.")
    if not starts:
        starts = [d.start or now for d in drafts]
    if not starts:
        return None
    start = min(starts)
    alt_all = record.lab_series("alt")
    if undated_count(alt_all):
        gaps.append(f"{undated_count(alt_all)} ALT result(s) without a date were not used.")
    alt = dated(alt_all, now)
    since_start = after(alt, start)
    if not since_start:
        return None
    baseline = latest(
        between(alt, start - timedelta(days=int(params["baseline_window_days"])), start)
    )
    situation = _classify(since_start, baseline, record, params, now)
    if situation is None:
        return None
    outcome, trigger_result, extra = situation
    if any(r.uln is None for r in since_start):
        gaps.append("Some ALT results had no upper limit of normal and were not compared.")
    gaps += default_uln_note([*([baseline] if baseline else []), *since_start], "ALT")
    names = [inp.terminology.short_name(c.concept, drug_class) for c in courses] or [
        inp.terminology.short_name(d.concept, drug_class) for d in drafts
    ]
    if baseline is None:
        gaps.append(
            f"No ALT in the {params['baseline_window_days']} days before the start: no baseline."
        )
    shown = since_start[-int(params["alt_results_shown"]) :]
    variables = {
        "drug": " + ".join(dict.fromkeys(names)),
        "course_start": fmt_date(start),
        "latency": duration_text(start, trigger_result.when or now),
        "trigger_alt": describe(trigger_result, "ALT"),
        "trigger_ratio": ratio_text(trigger_result),
        "baseline_alt": describe(baseline, "ALT") if baseline else "none on record",
        "baseline_state": _baseline_state(baseline),
        "alt_results": "\n".join(f"- {describe(r, 'ALT')}" for r in shown),
        "liver_history": _liver_history(record, inp.terminology, params),
        "aih_condition": _aih_condition(record, inp.terminology, params),
    } | extra
    removable = drafts if inp.hook in params["removal_hooks"] else ()
    return Finding(RULE_ID, outcome, variables, removable, tuple(gaps))


def _classify(
    since_start: list[LabResult],
    baseline: LabResult | None,
    record: PatientRecord,
    params: Mapping[str, Any],
    now: datetime,
) -> tuple[str, LabResult, dict[str, str]] | None:
    """The most severe situation: (outcome, the ALT result behind it, extra variables)."""
    recent = between(since_start, now - timedelta(days=params["recent_window_days"]), None)
    severe = [r for r in recent if at_least_times_uln(r, params["critical_alt_multiple"])]
    if severe:
        peak = max(severe, key=lambda r: times_uln(r) or 0)
        return "severe-injury", peak, {"criterion": "alt", "bilirubin": "not required"}
    pair = _alt_with_bilirubin(recent, record, params, now)
    if pair is not None:
        alt, bilirubin = pair
        extra = {"criterion": "alt-bilirubin", "bilirubin": describe(bilirubin, "total bilirubin")}
        return "severe-injury", alt, extra
    last = since_start[-1]
    if at_least_times_uln(last, params["warning_alt_multiple"]):
        return "marked-elevation", last, {}
    baseline_raised = baseline is not None and above_times_uln(baseline, Decimal(1))
    if baseline_raised or len(since_start) < 2:
        return None
    first, second = since_start[-2], since_start[-1]
    apart = (second.when - first.when).days if second.when and first.when else 0
    if (
        above_times_uln(first, Decimal(1))
        and above_times_uln(second, Decimal(1))
        and apart >= params["persistent_min_days_apart"]
    ):
        return (
            "persistent-elevation",
            second,
            {
                "earlier_alt": describe(first, "ALT"),
                "days_apart": str(apart),
            },
        )
    return None


def _alt_with_bilirubin(
    recent: list[LabResult], record: PatientRecord, params: Mapping[str, Any], now: datetime
) -> tuple[LabResult, LabResult] | None:
    bilirubin = [
        b
        for b in dated(record.lab_series("bilirubin-total"), now)
        if above_times_uln(b, params["combined_bilirubin_multiple"])
    ]
    window = timedelta(days=params["combined_max_days_apart"])
    for alt in reversed(recent):
        if alt.when is None or not at_least_times_uln(alt, params["combined_alt_multiple"]):
            continue
        for bili in reversed(bilirubin):
            if bili.when is not None and abs(bili.when - alt.when) <= window:
                return alt, bili
    return None


def _baseline_state(baseline: LabResult | None) -> str:
    """Chooses the card's baseline phrase: "missing", "raised" (above ULN) or "normal"."""
    if baseline is None:
        return "missing"
    return "raised" if above_times_uln(baseline, Decimal(1)) else "normal"


def _aih(record: PatientRecord, terminology: Terminology, params: Mapping[str, Any]) -> list[Any]:
    return record.active_conditions_in(terminology, str(params["aih_condition_valueset"]))


def _liver_history(
    record: PatientRecord, terminology: Terminology, params: Mapping[str, Any]
) -> str:
    """Chooses the card's phrase: "aih" (AIH on the problem list) or "none"."""
    return "aih" if _aih(record, terminology, params) else "none"


def _aih_condition(
    record: PatientRecord, terminology: Terminology, params: Mapping[str, Any]
) -> str:
    aih = _aih(record, terminology, params)
    return aih[0].concept.label() if aih else "none"


_COMMON = frozenset(
    {
        "drug",
        "course_start",
        "latency",
        "trigger_alt",
        "trigger_ratio",
        "baseline_alt",
        "alt_results",
        "liver_history",
        "baseline_state",
        "aih_condition",
    }
)
SPEC = RuleSpec(
    id=RULE_ID,
    hooks=frozenset({"patient-view", "order-sign", "order-select"}),
    needs=WHOLE_CHART,
    outcomes={
        "severe-injury": _COMMON | {"criterion", "bilirubin"},
        "marked-elevation": _COMMON,
        "persistent-elevation": _COMMON | {"earlier_alt", "days_apart"},
    },
    parameters=Parameters,
    triggered=triggered,
    evaluate=evaluate,
)
