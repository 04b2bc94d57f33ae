"""The AIH treatment course the three treatment-response rules share: T0, baseline ALT, the ALT
series since T0, the response class, and the facts every treatment-response card shows.

Choices where the clinical specification is silent (also in docs/rules/aih-treatment-response.md):
- Courses without any start date cannot place T0; they are ignored and named as a data gap.
- Results without a date are not used (they cannot be placed in time); their count is a gap.
- Non-response and insufficient response are judged only while a first-line course is active:
  an ALT rise after treatment was stopped is a relapse off treatment, a different question.
- Rev 2, treatment episode: T0 is the first start of the chain of systemic first-line courses
  that includes the current one (consecutive courses less than ``episode_gap_days`` apart), not
  the earliest course ever. Courses whose coded reason names another condition, and courses
  given by a non-systemic route (inhaled, nasal, topical, eye/ear, rectal), are left out and
  named on the card. A reason given only as text cannot be judged and does not exclude.
- Rev 2, complete response (for relapse): an ALT at or below its ULN after T0 with an IgG at or
  below its ULN after T0 measured within ``cr_igg_within_days`` of it.
- Response class (Hegade 2011 series definitions, made computable): CR when the last
  ``cr_sustained_results`` ALT results since T0 are all at or below their ULN; PR when the latest
  ALT is more than ``pr_decrease_fraction`` below baseline; relapse when an earlier result since
  T0 reached CR (at or below ULN) or PR and the latest has lost it; NR otherwise (with a baseline).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from cds_service.common.terms import first_match, term_pattern
from cds_service.patient.record import DraftOrder, LabResult, MedicationCourse, PatientRecord
from cds_service.patient.terminology import Terminology
from cds_service.rules.common import age_at, fmt_date
from cds_service.rules.episodes import episodes
from cds_service.rules.series import (
    after,
    between,
    dated,
    describe,
    duration_text,
    latest,
    times_uln,
    undated_count,
)

# Dose forms and routes of corticosteroids that are not systemic AIH treatment (matched at word
# starts in the product name, route and dosage text: "inhal" matches inhaler and inhalation).
NON_SYSTEMIC_TERMS = (
    "inhal",
    "nebul",
    "respiratory",
    "nasal",
    "intranasal",
    "topical",
    "cutaneous",
    "cream",
    "ointment",
    "lotion",
    "ophthalm",
    "eye drop",
    "otic",
    "ear drop",
    "rectal",
    "enema",
    "foam",
    "suppositor",
)
# ATC codes of non-systemic budesonide (inhaled, nasal, topical); oral is A07EA06
NON_SYSTEMIC_CODES = ("R03BA02", "R01AD05", "D07AC09")

HOOKS = frozenset({"patient-view", "order-sign", "order-select"})


class TreatmentParameters(Schema):
    """Parameters every treatment-response rule file accepts (defaults from the spec)."""

    class Meta:
        unknown = RAISE

    aih_condition_valueset = fields.String(load_default="autoimmune-hepatitis")
    first_line_class = fields.String(load_default="aih-first-line")
    baseline_window_days = fields.Integer(load_default=90, validate=validate.Range(1, 365))
    # orders that make the assessment relevant on order-sign / order-select
    order_trigger_classes = fields.List(
        fields.String(), load_default=lambda: ["aih-first-line", "aih-second-line"]
    )
    pr_decrease_fraction = fields.Decimal(
        load_default=Decimal("0.5"), validate=validate.Range(0, 1)
    )
    cr_sustained_results = fields.Integer(load_default=2, validate=validate.Range(1, 10))
    metabolite_drug_class = fields.String(load_default="azathioprine-mercaptopurine")
    metabolite_valuesets = fields.List(
        fields.String(), load_default=lambda: ["tgn-6", "thiopurine-metabolite-panel"]
    )
    metabolite_lookback_days = fields.Integer(load_default=180, validate=validate.Range(1, 730))
    alt_results_shown = fields.Integer(load_default=8, validate=validate.Range(1, 50))
    # rev 2: treatment episodes
    episode_gap_days = fields.Integer(load_default=180, validate=validate.Range(1, 3650))
    current_within_days = fields.Integer(load_default=30, validate=validate.Range(0, 365))
    exclude_other_indications = fields.Boolean(load_default=True)
    non_systemic_terms = fields.List(
        fields.String(validate=validate.Length(min=3)),
        load_default=lambda: list(NON_SYSTEMIC_TERMS),
    )
    non_systemic_codes = fields.List(
        fields.String(validate=validate.Length(min=1)),
        load_default=lambda: list(NON_SYSTEMIC_CODES),
    )
    # complete response: a normal ALT with a normal IgG measured within this many days of it
    cr_igg_within_days = fields.Integer(load_default=90, validate=validate.Range(0, 365))
    # below this age the card mentions paediatric options (phrase "age_group": "child")
    child_below_years = fields.Integer(load_default=18, validate=validate.Range(1, 30))


@dataclass
class TreatmentCourse:
    """One patient's AIH treatment as the rules see it at ``now``."""

    now: datetime
    t0: datetime
    first_line: list[MedicationCourse]
    active_first_line: list[MedicationCourse]
    therapy: str  # short names of the active first-line drugs, "prednisolone + azathioprine"
    baseline: LabResult | None
    alt_since_t0: list[LabResult]
    gaps: list[str] = field(default_factory=list)
    # the normal ALT and IgG that document a complete response in this episode, if any
    complete_response: tuple[LabResult, LabResult] | None = None

    @property
    def on_treatment(self) -> bool:
        return bool(self.active_first_line)

    def days_since_t0(self) -> float:
        return (self.now - self.t0) / timedelta(days=1)


def trigger(drafts: tuple[DraftOrder, ...], hook: str, params: Mapping[str, Any]) -> bool:
    """Patient-view always assesses; orders only when they are AIH immunosuppressants."""
    if hook == "patient-view":
        return True
    classes = set(params["order_trigger_classes"])
    return hook in HOOKS and any(classes & d.classes for d in drafts)


def left_out_because(
    course: MedicationCourse,
    record: PatientRecord,
    terminology: Terminology,
    params: Mapping[str, Any],
) -> str | None:
    """Why this course is not systemic AIH treatment (None: it counts)."""
    codes = set(params["non_systemic_codes"])
    coded = next((c.code for c in course.concept.codes if c.code in codes), None)
    if coded is not None:
        return f"non-systemic product (coded {coded})"
    pattern = term_pattern(params["non_systemic_terms"], whole_word=False)
    term = first_match(pattern, [*course.concept.texts(), *course.dosage.route_texts])
    if term is not None:
        return f"non-systemic route or form ({term!r})"
    if not params["exclude_other_indications"]:
        return None
    aih = terminology.valueset(str(params["aih_condition_valueset"]))
    referenced = [
        c
        for c in record.conditions
        if any(ref.split("/")[-1] == c.id for ref in course.reason_references)
    ]
    coded_reasons = [r for r in course.reasons if r.codes]
    if any(r.in_valueset(aih) for r in coded_reasons) or any(
        c.concept.in_valueset(aih) for c in referenced
    ):
        return None
    named = [r.label() for r in coded_reasons] + [c.concept.label() for c in referenced]
    return f"ordered for another condition ({named[0]})" if named else None


def treatment_course(
    record: PatientRecord, terminology: Terminology, params: Mapping[str, Any], now: datetime
) -> TreatmentCourse | None:
    """None when the rules do not apply: no AIH diagnosis, or no dated first-line course."""
    if not record.active_conditions_in(terminology, str(params["aih_condition_valueset"])):
        return None
    first_line_class = str(params["first_line_class"])
    courses = record.courses_in(first_line_class)
    gaps = []
    undated = [c for c in courses if c.start is None]
    if undated:
        gaps.append(
            f"{len(undated)} first-line medication order(s) without a start date were not used"
            " to date the treatment start."
        )
    systemic = []
    for course in courses:
        why = left_out_because(course, record, terminology, params)
        if why is None:
            systemic.append(course)
        elif course.start is not None:
            gaps.append(f"Not counted as AIH treatment: {course.label} ({why}).")
    # courses the shared route policy (cards/terminology.yaml) already took out of the class
    for course in record.courses:
        if first_line_class in course.not_counted and course.start is not None:
            why = f"non-systemic route: {course.route.evidence}"
            gaps.append(f"Not counted as AIH treatment: {course.label} ({why}).")
    chains = episodes(systemic, int(params["episode_gap_days"]), now)
    if not chains:
        return None
    episode = chains[-1]  # the current one when any is current (the latest always is)
    if len(chains) > 1:
        gaps.append(
            f"{len(chains) - 1} earlier treatment episode(s) ended more than"
            f" {params['episode_gap_days']} days before this one started and were not used"
            " to date the treatment start."
        )
    started = list(episode.members)
    t0 = episode.start
    active = [c for c in started if c.is_active(now)]
    alt = record.lab_series("alt")
    if undated_count(alt):
        gaps.append(f"{undated_count(alt)} ALT result(s) without a date were not used.")
    alt_dated = dated(alt, now)
    window = timedelta(days=int(params["baseline_window_days"]))
    baseline = latest(between(alt_dated, t0 - window, t0))
    if baseline is None:
        gaps.append(
            f"No ALT in the {params['baseline_window_days']} days before treatment start"
            f" ({fmt_date(t0)}): no baseline."
        )
    names = [terminology.short_name(c.concept, first_line_class) for c in active]
    since_t0 = after(alt_dated, t0)
    igg_since_t0 = after(dated(record.lab_series("igg"), now), t0)
    return TreatmentCourse(
        now=now,
        t0=t0,
        first_line=started,
        active_first_line=active,
        therapy=" + ".join(dict.fromkeys(names)) or "no first-line drug active now",
        baseline=baseline,
        alt_since_t0=since_t0,
        gaps=gaps,
        complete_response=_complete_response(
            since_t0, igg_since_t0, int(params["cr_igg_within_days"])
        ),
    )


def _complete_response(
    alt: list[LabResult], igg: list[LabResult], within_days: int
) -> tuple[LabResult, LabResult] | None:
    """The first normal ALT with a normal IgG measured within ``within_days`` of it."""
    window = timedelta(days=within_days)
    for alt_result in alt:
        if alt_result.when is None or not _normal(alt_result):
            continue
        for igg_result in igg:
            near = igg_result.when is not None and abs(igg_result.when - alt_result.when) <= window
            if near and _normal(igg_result):
                return alt_result, igg_result
    return None


# ---------------------------------------------------------------- response class


def _normal(result: LabResult) -> bool:
    ratio = times_uln(result)
    return ratio is not None and ratio <= 1


def _decrease(result: LabResult, baseline: LabResult | None) -> Decimal | None:
    if baseline is None or baseline.value <= 0:
        return None
    return 1 - result.value / baseline.value


def response_class(course: TreatmentCourse, params: Mapping[str, Any]) -> str:
    """The response class per the Hegade series definitions, with the numbers behind it."""
    series = course.alt_since_t0
    if not series:
        return "not classifiable: no ALT result since treatment start"
    last = series[-1]
    pr_fraction = Decimal(str(params["pr_decrease_fraction"]))
    sustained = int(params["cr_sustained_results"])
    decrease = _decrease(last, course.baseline)
    change = "" if decrease is None else f"; ALT change from baseline {signed_percent(-decrease)}"
    pr_text = f"fell by more than {percent(pr_fraction)}"
    tail = series[-sustained:]
    if len(tail) == sustained and all(_normal(r) for r in tail):
        return f"complete response (CR): the last {sustained} ALT result(s) are normal{change}"
    earlier = series[:-1]
    reached_cr = any(_normal(r) for r in earlier)
    reached_pr = any(_fell_more_than(r, course.baseline, pr_fraction) for r in earlier)
    lost_pr = decrease is not None and decrease <= pr_fraction
    if not _normal(last) and (reached_cr or (reached_pr and lost_pr)):
        level = "normalised" if reached_cr else pr_text
        return f"relapse: ALT {level} after treatment start, then worsened{change}"
    if decrease is not None and decrease > pr_fraction:
        return f"partial response (PR): ALT {pr_text}{change}"
    if _normal(last):
        return f"ALT normal at the latest result, not yet sustained ({sustained} needed){change}"
    if decrease is not None:
        return f"no response (NR): ALT fell by {percent(pr_fraction)} or less{change}"
    return "not classifiable: no baseline ALT and the latest ALT is above its ULN"


def _fell_more_than(result: LabResult, baseline: LabResult | None, fraction: Decimal) -> bool:
    decrease = _decrease(result, baseline)
    return decrease is not None and decrease > fraction


def percent(fraction: Decimal) -> str:
    return f"{(fraction * 100).to_integral_value(rounding=ROUND_HALF_EVEN):f} %"


def signed_percent(fraction: Decimal) -> str:
    text = percent(fraction)
    return text if text.startswith("-") else f"+{text}"


# ---------------------------------------------------------------- shared card facts


def course_variables(
    course: TreatmentCourse,
    record: PatientRecord,
    params: Mapping[str, Any],
    metabolite_fact: str,
) -> dict[str, str]:
    """Template variables every treatment-response outcome offers (``metabolite_fact`` is the
    second half of ``metabolite_status``, computed once by the caller)."""
    shown = course.alt_since_t0[-int(params["alt_results_shown"]) :]
    igg = latest_igg(course, record)
    started = "; ".join(
        f"{c.label} (from {fmt_date(c.start)}, {c.status})" for c in course.first_line
    )
    return {
        "therapy": course.therapy,
        "treatment_start": fmt_date(course.t0),
        "time_on_therapy": duration_text(course.t0, course.now),
        "first_line_courses": started,
        "baseline_alt": describe(course.baseline, "ALT")
        if course.baseline
        else f"none in the {params['baseline_window_days']} days before treatment start",
        "alt_results": "\n".join(f"- {describe(r, 'ALT')}" for r in shown)
        or "- no ALT result since treatment start",
        "latest_igg": describe(igg, "IgG")
        if igg
        else record.not_measured_text("igg", course.t0, "not measured since treatment start"),
        "response_class": response_class(course, params),
        "metabolite_status": metabolite_fact,
        "age_group": _age_group(record, course.now, int(params["child_below_years"])),
    }


def latest_igg(course: TreatmentCourse, record: PatientRecord) -> LabResult | None:
    return latest(between(dated(record.lab_series("igg"), course.now), course.t0, None))


def igg_gap(course: TreatmentCourse, record: PatientRecord) -> tuple[str, ...]:
    """The card shows the latest IgG: when there is none, "Missing or assumed data" says so."""
    return () if latest_igg(course, record) else ("IgG: not measured since treatment start.",)


def _age_group(record: PatientRecord, now: datetime, child_below: int) -> str:
    """ "child", "adult" or "unknown" (no birth date): chooses the card's paediatric phrase."""
    age = age_at(record, now)
    if age is None:
        return "unknown"
    return "child" if age < child_below else "adult"


COURSE_VARIABLES = frozenset(
    {
        "therapy",
        "treatment_start",
        "time_on_therapy",
        "first_line_courses",
        "baseline_alt",
        "alt_results",
        "latest_igg",
        "response_class",
        "metabolite_status",
        "age_group",
    }
)


def metabolite_status(
    course: TreatmentCourse,
    record: PatientRecord,
    terminology: Terminology,
    params: Mapping[str, Any],
) -> tuple[bool, str]:
    """(whether to suggest the metabolite panel, the fact for the card)."""
    drug_class = str(params["metabolite_drug_class"])
    on_thiopurine = [c for c in course.active_first_line if drug_class in c.classes]
    if not on_thiopurine:
        return False, "not on azathioprine or mercaptopurine"
    lookback = int(params["metabolite_lookback_days"])
    measured = [
        o
        for o in record.observed_in(terminology, params["metabolite_valuesets"])
        if o.when is not None and course.now - timedelta(days=lookback) <= o.when
    ]
    if measured:
        return False, f"6-TGN measured on {fmt_date(measured[-1].when)}"
    return True, f"no 6-TGN result in the last {lookback} days: consider the metabolite panel"
