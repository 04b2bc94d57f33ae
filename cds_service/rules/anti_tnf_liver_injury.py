"""anti-tnf-liver-injury: ALT rising on an anti-TNF agent (possible drug-induced liver injury).

Choices where the clinical specification is silent (also in docs/rules/anti-tnf-liver-injury.md):
- "After S" means strictly after the course start; the baseline window [S - 180 d, S] includes S.
- The ALT >= 3 x ULN with bilirubin > 2 x ULN criterion uses the same 90-day recency as the
  ALT >= 5 x ULN criterion: an old, resolved episode does not raise a critical card forever.
- Only the most severe situation gives a card (critical > marked elevation > persistent).
- On patient-view the rule needs an anti-TNF course active now; on order hooks the draft counts.
- A known AIH diagnosis is stated on the card (the rise may be AIH activity, or anti-TNF
  autoimmune-like hepatitis).
- Rev 2: with a baseline above ULN the ALT multiples are multiples of the baseline value (the
  bilirubin criterion stays against the bilirubin ULN), the persistent-elevation criterion does
  not apply, and a latest ALT below the baseline (a falling ALT: treatment response) gives no
  card unless a severe (critical) criterion relative to the baseline is met in the recent window.
- Rev 2: infusion orders chain into one course (``episodes``); on an order hook for the next dose
  of a current course S is that course's start, not the draft's date.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from cds_service.patient.record import DraftOrder, LabResult, PatientRecord
from cds_service.patient.terminology import Terminology
from cds_service.rules.base import WHOLE_CHART, Finding, RuleInput, RuleSpec
from cds_service.rules.common import fmt_date
from cds_service.rules.episodes import Episode, episodes
from cds_service.rules.series import (
    TIMES,
    above_times_uln,
    after,
    between,
    dated,
    default_uln_note,
    describe,
    duration_text,
    fmt_ratio,
    latest,
    times_uln,
    undated_count,
)

RULE_ID = "anti-tnf-liver-injury"
# multiples of the upper limit of normal; DILI criteria use 2 to 10, so above 50 is a typing error
ULN_MULTIPLE = validate.Range(1, 50)


class Parameters(Schema):
    class Meta:
        unknown = RAISE

    drug_class = fields.String(load_default="anti-tnf")
    course_recency_days = fields.Integer(load_default=180, validate=validate.Range(0, 3650))
    # exposures (e.g. one completed request per infusion) less than this apart form one course,
    # which runs to the last exposure plus this gap
    exposure_gap_days = fields.Integer(load_default=180, validate=validate.Range(1, 3650))
    # with a baseline above ULN, multiples are of the baseline (Aithal 2011)
    raised_baseline_relative = fields.Boolean(load_default=True)
    # with a baseline above ULN, a latest ALT below it is a response, not injury: no card
    falling_alt_no_card = fields.Boolean(load_default=True)
    baseline_window_days = fields.Integer(load_default=180, validate=validate.Range(1, 3650))
    critical_alt_multiple = fields.Decimal(load_default=Decimal(5), validate=ULN_MULTIPLE)
    recent_window_days = fields.Integer(load_default=90, validate=validate.Range(1, 3650))
    combined_alt_multiple = fields.Decimal(load_default=Decimal(3), validate=ULN_MULTIPLE)
    combined_bilirubin_multiple = fields.Decimal(load_default=Decimal(2), validate=ULN_MULTIPLE)
    combined_max_days_apart = fields.Integer(load_default=7, validate=validate.Range(0, 90))
    warning_alt_multiple = fields.Decimal(load_default=Decimal(3), validate=ULN_MULTIPLE)
    persistent_min_days_apart = fields.Integer(load_default=28, validate=validate.Range(1, 365))
    aih_condition_valueset = fields.String(load_default="autoimmune-hepatitis")
    # hooks on which the card offers to remove the anti-TNF draft (the specification: order-sign)
    removal_hooks = fields.List(fields.String(), load_default=lambda: ["order-sign"])
    alt_results_shown = fields.Integer(load_default=8, validate=validate.Range(1, 50))

    @validates_schema(skip_on_field_errors=False)  # reported beside any other problem
    def _thresholds_ordered(self, data: dict[str, Any], **_: object) -> None:
        """A warning below the critical multiple, else the warning card could never show."""
        critical = data.get("critical_alt_multiple")
        warning, combined = data.get("warning_alt_multiple"), data.get("combined_alt_multiple")
        if critical is None:  # invalid itself: reported as such
            return
        if warning is not None and warning >= critical:
            raise ValidationError(
                f"must be below critical_alt_multiple ({critical})", "warning_alt_multiple"
            )
        if combined is not None and combined > critical:
            raise ValidationError(
                f"must not exceed critical_alt_multiple ({critical})", "combined_alt_multiple"
            )


def triggered(drafts: tuple[DraftOrder, ...], hook: str, params: Mapping[str, Any]) -> bool:
    if hook == "patient-view":
        return True
    return hook in SPEC.hooks and any(params["drug_class"] in d.classes for d in drafts)


def current_course(
    record: PatientRecord, params: Mapping[str, Any], now: datetime
) -> Episode | None:
    """The anti-TNF course (chained exposures) active now or ended within the recency window."""
    courses = record.courses_in(str(params["drug_class"]))
    chains = episodes(courses, int(params["exposure_gap_days"]), now)
    if not chains:
        return None
    latest_chain = chains[-1]
    return latest_chain if latest_chain.current(now, int(params["course_recency_days"])) else None


def taken_now(episode: Episode, now: datetime, gap_days: int) -> bool:
    """An open course, or an exposure without end date less than the gap ago."""
    return episode.open_now(now) or any(
        c.end is None and c.start is not None and now - c.start < timedelta(days=gap_days)
        for c in episode.members
    )


def evaluate(inp: RuleInput) -> Finding | None:
    params, record, now = inp.params, inp.record, inp.now
    drug_class = str(params["drug_class"])
    drafts = tuple(d for d in inp.drafts if drug_class in d.classes)
    episode = current_course(record, params, now)
    if inp.hook == "patient-view" and (
        episode is None or not taken_now(episode, now, int(params["exposure_gap_days"]))
    ):
        return None
    gaps: list[str] = []
    courses = list(episode.members) if episode else []
    if any(c.start is None for c in record.courses_in(drug_class)):
        gaps.append("Anti-TNF order(s) without a start date were not used to date the start.")
    if episode is not None:
        start = episode.start  # the next dose of a current course: S is the course's start
    elif drafts:
        start = min(d.start or now for d in drafts)
    else:
        return None
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
    scale = Scale.of(baseline, params)
    situation = _classify(since_start, scale, record, params, now)
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
        "trigger_ratio": scale.text(trigger_result),
        "reference": scale.name,
        "baseline_alt": describe(baseline, "ALT") if baseline else "none on record",
        "baseline_state": _baseline_state(baseline, scale),
        "alt_results": "\n".join(f"- {describe(r, 'ALT')}" for r in shown),
        "liver_history": _liver_history(record, inp.terminology, params),
        "aih_condition": _aih_condition(record, inp.terminology, params),
    } | extra
    removable = drafts if inp.hook in params["removal_hooks"] else ()
    return Finding(RULE_ID, outcome, variables, removable, tuple(gaps))


@dataclass(frozen=True)
class Scale:
    """What ALT multiples are multiples of: the result's ULN, or a raised pre-exposure baseline
    (Aithal 2011: in pre-existing liver disease the baseline replaces the ULN)."""

    name: str  # "ULN" or "baseline"
    ratio: Callable[[LabResult], Decimal | None]
    baseline: LabResult | None = None

    @classmethod
    def of(cls, baseline: LabResult | None, params: Mapping[str, Any]) -> Scale:
        raised = baseline is not None and above_times_uln(baseline, Decimal(1))
        if raised and baseline is not None and params["raised_baseline_relative"]:
            reference = baseline.value
            return cls("baseline", lambda r: r.value / reference, baseline)
        return cls("ULN", times_uln, baseline if raised else None)

    @property
    def raised(self) -> bool:
        return self.baseline is not None

    def at_least(self, result: LabResult, multiple: Decimal) -> bool:
        ratio = self.ratio(result)
        return ratio is not None and ratio >= multiple

    def text(self, result: LabResult) -> str:
        ratio = self.ratio(result)
        return f"{fmt_ratio(ratio)}{TIMES}{self.name}" if ratio is not None else "(ULN unknown)"


def _classify(
    since_start: list[LabResult],
    scale: Scale,
    record: PatientRecord,
    params: Mapping[str, Any],
    now: datetime,
) -> tuple[str, LabResult, dict[str, str]] | None:
    """The most severe situation: (outcome, the ALT result behind it, extra variables)."""
    recent = between(since_start, now - timedelta(days=params["recent_window_days"]), None)
    severe = [r for r in recent if scale.at_least(r, params["critical_alt_multiple"])]
    if severe:
        peak = max(severe, key=lambda r: scale.ratio(r) or 0)
        return "severe-injury", peak, {"criterion": "alt", "bilirubin": "not required"}
    pair = _alt_with_bilirubin(recent, scale, record, params, now)
    if pair is not None:
        alt, bilirubin = pair
        extra = {"criterion": "alt-bilirubin", "bilirubin": describe(bilirubin, "total bilirubin")}
        return "severe-injury", alt, extra
    last = since_start[-1]
    if (
        scale.baseline is not None
        and params["falling_alt_no_card"]
        and last.value < scale.baseline.value
    ):
        return None  # falling below a raised baseline on the agent: a response, not injury
    if scale.at_least(last, params["warning_alt_multiple"]):
        return "marked-elevation", last, {}
    if scale.raised or len(since_start) < 2:
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
    recent: list[LabResult],
    scale: Scale,
    record: PatientRecord,
    params: Mapping[str, Any],
    now: datetime,
) -> tuple[LabResult, LabResult] | None:
    bilirubin = [
        b
        for b in dated(record.lab_series("bilirubin-total"), now)
        if above_times_uln(b, params["combined_bilirubin_multiple"])
    ]
    window = timedelta(days=params["combined_max_days_apart"])
    for alt in reversed(recent):
        if alt.when is None or not scale.at_least(alt, params["combined_alt_multiple"]):
            continue
        for bili in reversed(bilirubin):
            if bili.when is not None and abs(bili.when - alt.when) <= window:
                return alt, bili
    return None


def _baseline_state(baseline: LabResult | None, scale: Scale) -> str:
    """Chooses the card's baseline phrase: "missing", "normal", "raised" (above ULN) or
    "raised-relative" (above ULN, and the ALT multiples are multiples of this baseline)."""
    if baseline is None:
        return "missing"
    if not scale.raised:
        return "normal"
    return "raised-relative" if scale.name == "baseline" else "raised"


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
        "reference",
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
    terminology=frozenset({"alt", "bilirubin-total"}),
)
