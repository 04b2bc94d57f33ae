"""aih-nonresponse, aih-insufficient-response, aih-refractory: is first-line AIH treatment working?

Each is its own rule (own YAML file, own parameters, own card); the engine keeps only one card
through the rule files' ``supersedes`` (refractory > insufficient response > non-response). The
shared treatment course (T0, baseline, response class) is computed in ``aih_treatment``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from marshmallow import fields, validate, validates_schema
from marshmallow.exceptions import ValidationError

from cds_service.patient.record import LabResult, MedicationCourse
from cds_service.rules.aih_treatment import (
    COURSE_VARIABLES,
    HOOKS,
    TreatmentCourse,
    TreatmentParameters,
    course_variables,
    igg_gap,
    left_out_because,
    metabolite_status,
    percent,
    treatment_course,
    trigger,
)
from cds_service.rules.base import WHOLE_CHART, Finding, RuleInput, RuleSpec
from cds_service.rules.common import fmt_date
from cds_service.rules.series import (
    after,
    at_least_times_uln,
    closest_to,
    dated,
    default_uln_note,
    describe,
    duration_text,
    latest,
    ratio_text,
    times_uln,
    value_text,
)

METABOLITE_SUGGESTION = "order-metabolite-panel"


def _finding(
    rule_id: str,
    outcome: str,
    inp: RuleInput,
    course: TreatmentCourse,
    extra: dict[str, str],
    *,
    gaps: tuple[str, ...] = (),
) -> Finding:
    """A treatment-response finding: shared course facts, the rule's own facts, and the
    metabolite-panel suggestion only when it applies (on AZA/MP, no recent 6-TGN)."""
    suggest_panel, metabolite_fact = metabolite_status(
        course, inp.record, inp.terminology, inp.params
    )
    variables = course_variables(course, inp.record, inp.params, metabolite_fact) | extra
    applicable = frozenset({METABOLITE_SUGGESTION}) if suggest_panel else frozenset()
    alt_used = [*([course.baseline] if course.baseline else []), *course.alt_since_t0]
    return Finding(
        rule_id,
        outcome,
        variables,
        gaps=(*course.gaps, *default_uln_note(alt_used, "ALT"), *gaps),
        applicable_suggestions=applicable,
    )


def _course_for(inp: RuleInput) -> TreatmentCourse | None:
    return treatment_course(inp.record, inp.terminology, inp.params, inp.now)


# ---------------------------------------------------------------- aih-nonresponse

NONRESPONSE = "aih-nonresponse"


class NonresponseParameters(TreatmentParameters):
    assess_from_days = fields.Integer(load_default=28, validate=validate.Range(0, 365))
    assess_until_days = fields.Integer(load_default=182, validate=validate.Range(1, 730))
    week4_target_days = fields.Integer(load_default=28, validate=validate.Range(1, 365))
    week4_window_start_days = fields.Integer(load_default=21, validate=validate.Range(0, 365))
    week4_window_end_days = fields.Integer(load_default=42, validate=validate.Range(1, 365))
    # non-response when the week-4 ALT is more than this fraction of baseline (< 50 % decrease)
    max_remaining_fraction = fields.Decimal(
        load_default=Decimal("0.5"), validate=validate.Range(0, 1)
    )
    # rev 2: withdrawn once a later ALT is at most this fraction of baseline (>= 50 % fall) or
    # at or below its ULN
    withdraw_on_later_response = fields.Boolean(load_default=True)
    withdraw_remaining_fraction = fields.Decimal(
        load_default=Decimal("0.5"), validate=validate.Range(0, 1)
    )

    @validates_schema
    def _windows(self, data: dict[str, Any], **_: object) -> None:
        start, target, end = (
            data["week4_window_start_days"],
            data["week4_target_days"],
            data["week4_window_end_days"],
        )
        if not start <= target <= end:
            raise ValidationError(
                "week4_window_start_days <= week4_target_days <= week4_window_end_days",
                "week4_target_days",
            )
        if data["assess_from_days"] >= data["assess_until_days"]:
            raise ValidationError("must be below assess_until_days", "assess_from_days")


def evaluate_nonresponse(inp: RuleInput) -> Finding | None:
    course = _course_for(inp)
    if course is None or not course.on_treatment or course.baseline is None:
        return None
    params = inp.params
    days = course.days_since_t0()
    if not params["assess_from_days"] <= days < params["assess_until_days"]:
        return None
    t0 = course.t0
    week4 = closest_to(
        course.alt_since_t0,
        t0 + timedelta(days=params["week4_target_days"]),
        t0 + timedelta(days=params["week4_window_start_days"]),
        t0 + timedelta(days=params["week4_window_end_days"]),
    )
    if week4 is None or week4.when is None:
        return None
    remaining = week4.value / course.baseline.value if course.baseline.value > 0 else None
    if remaining is None or remaining <= params["max_remaining_fraction"]:
        return None
    if params["withdraw_on_later_response"] and _later_response(course, week4, params):
        return None
    return _finding(
        NONRESPONSE,
        "no-early-response",
        inp,
        course,
        {
            "week4_alt": describe(week4, "ALT"),
            "week4_day": str((week4.when - t0).days),
            "alt_decrease": percent(max(Decimal(0), 1 - remaining)),
            "baseline_value": value_text(course.baseline),
            "week4_value": value_text(week4),
        },
        gaps=igg_gap(course, inp.record),
    )


def _later_response(course: TreatmentCourse, week4: LabResult, params: Mapping[str, Any]) -> bool:
    """A later ALT shows a >= 50 % fall from baseline or is at or below its ULN."""
    baseline = course.baseline.value if course.baseline else None
    fraction = Decimal(str(params["withdraw_remaining_fraction"]))
    for result in after(course.alt_since_t0, week4.when or course.t0):
        ratio = times_uln(result)
        if ratio is not None and ratio <= 1:
            return True
        if baseline and result.value <= baseline * fraction:
            return True
    return False


# ---------------------------------------------------------------- aih-insufficient-response

INSUFFICIENT = "aih-insufficient-response"


class InsufficientParameters(TreatmentParameters):
    assess_from_days = fields.Integer(load_default=182, validate=validate.Range(1, 3650))
    measured_after_days = fields.Integer(load_default=150, validate=validate.Range(0, 3650))
    include_ast = fields.Boolean(load_default=True)
    # rev 2: only results of the last recent_days decide; older ones are history
    recent_days = fields.Integer(load_default=120, validate=validate.Range(1, 3650))
    # rev 2: after a complete response in this episode, an ALT above this multiple of its ULN
    # is a relapse
    relapse_alt_uln_multiple = fields.Decimal(
        load_default=Decimal(1), validate=validate.Range(1, 20)
    )

    @validates_schema(skip_on_field_errors=False)  # reported beside any other problem
    def _window_order(self, data: dict[str, Any], **_: object) -> None:
        """Results counted from day measured_after_days must exist by the assessment day."""
        after, assess = data.get("measured_after_days"), data.get("assess_from_days")
        if after is not None and assess is not None and after >= assess:
            raise ValidationError(
                f"must be below assess_from_days ({assess})", "measured_after_days"
            )


def evaluate_insufficient(inp: RuleInput) -> Finding | None:
    course = _course_for(inp)
    params, now = inp.params, inp.now
    if course is None or not course.on_treatment:
        return None
    if course.days_since_t0() < params["assess_from_days"]:
        return None
    since = course.t0 + timedelta(days=params["measured_after_days"])
    recent_from = now - timedelta(days=params["recent_days"])
    analytes = [("ALT", "alt"), ("IgG", "igg")]
    if params["include_ast"]:
        analytes.append(("AST", "ast"))
    measured = {
        name: latest(after(dated(inp.record.lab_series(aid), now), since)) for name, aid in analytes
    }
    stale = {
        name: r for name, r in measured.items() if r is not None and r.when and r.when < recent_from
    }
    latest_by_name = {name: r if name not in stale else None for name, r in measured.items()}
    not_measured = f"not measured since {fmt_date(since)}"
    lines = [
        f"- {describe(result, name)}"
        + (" (history only: too old to decide on)" if name in stale else "")
        if result
        else f"- {name}: {inp.record.not_measured_text(aid, since, not_measured)}"
        for (name, aid), result in zip(analytes, measured.values(), strict=True)
    ]
    abnormal = [
        f"{name} {ratio_text(result)}"
        for name, result in latest_by_name.items()
        if result is not None and (ratio := times_uln(result)) is not None and ratio > 1
    ]
    unknown_uln = [n for n, r in latest_by_name.items() if r is not None and r.uln is None]
    gaps = tuple(
        [f"{name}: {not_measured}." for name, r in latest_by_name.items() if r is None]
        + [f"No upper limit of normal known for {n}: not assessed." for n in unknown_uln]
        + [
            note
            for name, result in latest_by_name.items()
            if result is not None and name != "ALT"
            for note in default_uln_note([result], name)
        ]
    )
    extra = {"assessment": "\n".join(lines), "assessed_since": fmt_date(since)}
    relapse = _relapse(course, latest_by_name["ALT"], params)
    if relapse is not None:
        return _finding(INSUFFICIENT, "relapse", inp, course, extra | relapse, gaps=gaps)
    if abnormal:
        variables = extra | {"abnormal": ", ".join(abnormal)}
        return _finding(INSUFFICIENT, "not-in-complete-response", inp, course, variables, gaps=gaps)
    missing = [n for n in ("ALT", "IgG") if latest_by_name[n] is None or n in unknown_uln]
    stale_missing = [n for n in missing if n in stale]
    if stale_missing:
        last = max((w for n in stale_missing if (w := stale[n].when)), default=since)
        variables = extra | {
            "missing": " and ".join(stale_missing),
            "last_result_date": fmt_date(last),
        }
        return _finding(INSUFFICIENT, "stale-results", inp, course, variables, gaps=gaps)
    if missing:
        variables = extra | {"missing": " and ".join(missing)}
        return _finding(INSUFFICIENT, "monitoring-gap", inp, course, variables, gaps=gaps)
    return None  # complete biochemical response


def _relapse(
    course: TreatmentCourse, alt: LabResult | None, params: Mapping[str, Any]
) -> dict[str, str] | None:
    """Relapse variables when a complete response in this episode was followed by a recent ALT
    above the relapse multiple of its ULN."""
    if course.complete_response is None or alt is None or alt.when is None:
        return None
    cr_alt, cr_igg = course.complete_response
    multiple = Decimal(str(params["relapse_alt_uln_multiple"]))
    ratio = times_uln(alt)
    if cr_alt.when is None or alt.when <= cr_alt.when or ratio is None or ratio <= multiple:
        return None
    return {
        "relapse_alt": describe(alt, "ALT"),
        "relapse_ratio": ratio_text(alt),
        "complete_response": (f"{describe(cr_alt, 'ALT')}; {describe(cr_igg, 'IgG')}"),
        "complete_response_date": fmt_date(cr_alt.when),
    }


# ---------------------------------------------------------------- aih-refractory

REFRACTORY = "aih-refractory"


class RefractoryParameters(TreatmentParameters):
    steroid_classes = fields.List(fields.String(), load_default=lambda: ["corticosteroid"])
    immunosuppressant_classes = fields.List(
        fields.String(), load_default=lambda: ["azathioprine-mercaptopurine", "mycophenolate"]
    )
    min_combination_days = fields.Integer(load_default=90, validate=validate.Range(1, 3650))
    alt_uln_multiple = fields.Decimal(load_default=Decimal(2), validate=validate.Range(1, 100))
    results_required = fields.Integer(load_default=2, validate=validate.Range(1, 10))
    results_after_days = fields.Integer(load_default=90, validate=validate.Range(0, 3650))
    # rev 2: the latest ALT must be this recent; older results are history
    recent_days = fields.Integer(load_default=120, validate=validate.Range(1, 3650))
    # rev 2: after a complete response in this episode a rise is a relapse, not refractoriness
    not_after_complete_response = fields.Boolean(load_default=True)


def _established(
    courses: list[MedicationCourse], classes: list[str], now: datetime, min_days: int
) -> list[MedicationCourse]:
    """Active courses of these classes that started at least ``min_days`` ago."""
    cutoff = now - timedelta(days=min_days)
    return [
        c for c in courses if set(classes) & c.classes and c.start is not None and c.start <= cutoff
    ]


def evaluate_refractory(inp: RuleInput) -> Finding | None:
    course = _course_for(inp)
    if course is None:
        return None
    params, now = inp.params, inp.now
    if params["not_after_complete_response"] and course.complete_response is not None:
        return None
    active = [
        c
        for c in inp.record.courses
        if c.is_active(now) and left_out_because(c, inp.record, inp.terminology, params) is None
    ]
    min_days = int(params["min_combination_days"])
    steroids = _established(active, params["steroid_classes"], now, min_days)
    others = _established(active, params["immunosuppressant_classes"], now, min_days)
    if not steroids or not others:
        return None
    needed = int(params["results_required"])
    recent = dated(inp.record.lab_series("alt"), now)[-needed:]
    after = course.t0 + timedelta(days=params["results_after_days"])
    multiple = Decimal(str(params["alt_uln_multiple"]))
    if len(recent) < needed or any(
        r.when is None or r.when <= after or not at_least_times_uln(r, multiple) for r in recent
    ):
        return None
    newest = recent[-1].when
    if newest is None or newest < now - timedelta(days=params["recent_days"]):
        return None  # stale: the insufficient-response rule says it cannot be assessed
    combination_start = max(
        min(c.start for c in steroids if c.start), min(c.start for c in others if c.start)
    )
    steroid_name = inp.terminology.short_name(steroids[0].concept, params["steroid_classes"][0])
    other_class = next(k for k in params["immunosuppressant_classes"] if k in others[0].classes)
    other_name = inp.terminology.short_name(others[0].concept, other_class)
    return _finding(
        REFRACTORY,
        "steroid-refractory",
        inp,
        course,
        {
            "latest_ratio": ratio_text(recent[-1]),
            "combination": f"{steroid_name} + {other_name}",
            "combination_duration": duration_text(combination_start, now),
            "combination_start": fmt_date(combination_start),
            "recent_alts": "\n".join(f"- {describe(r, 'ALT')}" for r in recent),
            "alt_multiple": f"{multiple.normalize():f}",
        },
        gaps=igg_gap(course, inp.record),
    )


# ---------------------------------------------------------------- specs


def _spec(
    rule_id: str,
    outcomes: Mapping[str, frozenset[str]],
    parameters: type[TreatmentParameters],
    evaluate: Any,
    terminology: frozenset[str] = frozenset({"alt", "igg"}),  # the course facts read both
) -> RuleSpec:
    return RuleSpec(
        id=rule_id,
        hooks=HOOKS,
        needs=WHOLE_CHART,
        outcomes={name: COURSE_VARIABLES | extra for name, extra in outcomes.items()},
        parameters=parameters,
        triggered=trigger,
        evaluate=evaluate,
        terminology=terminology,
    )


NONRESPONSE_SPEC = _spec(
    NONRESPONSE,
    {
        "no-early-response": frozenset(
            {"week4_alt", "week4_day", "alt_decrease", "baseline_value", "week4_value"}
        )
    },
    NonresponseParameters,
    evaluate_nonresponse,
)
_ASSESSMENT = frozenset({"assessment", "assessed_since"})
INSUFFICIENT_SPEC = _spec(
    INSUFFICIENT,
    {
        "not-in-complete-response": _ASSESSMENT | {"abnormal"},
        "relapse": _ASSESSMENT
        | {
            "relapse_alt",
            "relapse_ratio",
            "complete_response",
            "complete_response_date",
        },
        "stale-results": _ASSESSMENT | {"missing", "last_result_date"},
        "monitoring-gap": _ASSESSMENT | {"missing"},
    },
    InsufficientParameters,
    evaluate_insufficient,
    frozenset({"alt", "igg", "ast"}),
)
REFRACTORY_SPEC = _spec(
    REFRACTORY,
    {
        "steroid-refractory": frozenset(
            {
                "latest_ratio",
                "combination",
                "combination_duration",
                "combination_start",
                "recent_alts",
                "alt_multiple",
            }
        )
    },
    RefractoryParameters,
    evaluate_refractory,
)
