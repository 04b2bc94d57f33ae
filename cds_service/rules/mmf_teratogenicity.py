"""mmf-teratogenicity: a mycophenolate draft order for a patient who is or may become pregnant.

Decisions where the clinical specification is silent (also in docs/rules/mmf-teratogenicity.md):
- Evidence of pregnancy fires the critical card whatever the recorded sex or age: administrative
  sex and age are proxies, a pregnancy result is not.
- A "pregnant" status is cancelled by a later "not pregnant" status or negative hCG; a positive
  hCG only by a later negative hCG. Only hCG results count as "a negative pregnancy test".
- A quantitative hCG is negative only below ``hcg_negative_below`` (site-set, default 5 mIU/mL);
  values between that and the positive threshold are indeterminate: not a negative test, and
  shown on the card with advice to repeat a quantitative hCG.
- Rev 2: continuing therapy means a mycophenolate course taken within the last
  ``continuing_therapy_window_days`` (30): an open course, one that ended that recently, or a
  completed/stopped request without end date whose single exposure (its start) is that recent.
  A restart after a longer gap is a new start (contraception may have lapsed).
- Rev 2: a pregnancy ends at a pregnancy Condition's abatement (a date up to now, or abatement
  given without a date), or at a delivery / pregnancy-outcome Condition
  (``pregnancy_ended_valueset``, dated by onset, else recorded date) later than the pregnancy
  evidence (an undated pregnancy Condition is never ended by a delivery record: it may be a new
  pregnancy). The patient is then
  "may become pregnant" (the usual warning or info), with a breastfeeding note for
  ``postpartum_note_days`` after the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, fields, validate, validates_schema
from marshmallow.exceptions import ValidationError

from cds_service.patient.record import ConditionFact, DraftOrder, PatientRecord
from cds_service.patient.terminology import Terminology
from cds_service.rules.base import WHOLE_CHART, DataKind, Finding, RuleInput, RuleSpec
from cds_service.rules.common import age_at, describe_sex, fmt_date, within_days
from cds_service.rules.episodes import last_exposure

RULE_ID = "mmf-teratogenicity"
DRUG_CLASS = "mycophenolate"


class Parameters(Schema):
    class Meta:
        unknown = RAISE

    age_min_years = fields.Integer(load_default=12, validate=validate.Range(0, 120))
    age_max_years = fields.Integer(load_default=55, validate=validate.Range(1, 130))
    unknown_sex_may_be_pregnant = fields.Boolean(load_default=True)
    male_card = fields.Boolean(load_default=True)
    male_age_min_years = fields.Integer(load_default=12, validate=validate.Range(0, 120))
    pregnancy_lookback_days = fields.Integer(load_default=280, validate=validate.Range(1, 400))
    negative_test_window_days = fields.Integer(load_default=7, validate=validate.Range(0, 60))
    continuing_therapy_window_days = fields.Integer(
        load_default=30, validate=validate.Range(0, 365)
    )
    # rev 2: delivery / pregnancy-outcome records end a pregnancy; breastfeeding note after it
    pregnancy_ended_valueset = fields.String(load_default="pregnancy-ended")
    postpartum_note_days = fields.Integer(load_default=365, validate=validate.Range(0, 1000))
    # mIU/mL; qualitative kits detect 10-25, so a cut-off above 100 is a typing error
    hcg_positive_at_or_above = fields.Decimal(
        load_default=Decimal(25), validate=validate.Range(0, 100)
    )
    hcg_negative_below = fields.Decimal(load_default=Decimal(5), validate=validate.Range(0, 100))
    pregnancy_status_valueset = fields.String(load_default="pregnancy-status")
    pregnant_answer_valueset = fields.String(load_default="pregnancy-status-pregnant")
    not_pregnant_answer_valueset = fields.String(load_default="pregnancy-status-not-pregnant")
    pregnancy_condition_valueset = fields.String(load_default="pregnancy")
    not_of_reproductive_potential_valueset = fields.String(
        load_default="not-of-reproductive-potential"
    )
    # completed Procedures (hysterectomy, bilateral oophorectomy)
    not_of_reproductive_potential_procedure_valueset = fields.String(
        load_default="not-of-reproductive-potential-procedure"
    )

    @validates_schema
    def _ranges(self, data: dict[str, object], **_: object) -> None:
        if data["age_min_years"] >= data["age_max_years"]:  # type: ignore[operator]
            raise ValidationError("must be below age_max_years", "age_min_years")
        if data["hcg_negative_below"] > data["hcg_positive_at_or_above"]:  # type: ignore[operator]
            raise ValidationError("must not exceed hcg_positive_at_or_above", "hcg_negative_below")


@dataclass(frozen=True)
class PregnancyEvent:
    """One dated piece of pregnancy evidence.

    ``pregnant`` is True (pregnant / positive), False (not pregnant / negative) or None
    (indeterminate quantitative hCG). ``is_test`` separates hCG results from status answers:
    only a negative *test* counts as "a negative pregnancy test" for the info card.
    """

    when: datetime
    pregnant: bool | None
    is_test: bool
    description: str
    ends_pregnancy: bool = False  # a delivery / pregnancy-outcome record


def pregnancy_events(
    record: PatientRecord, terminology: Terminology, params: dict[str, object]
) -> list[PregnancyEvent]:
    """Dated pregnancy evidence from pregnancy-status answers and hCG results, oldest first."""
    events = _status_events(record, terminology, params)
    for result in record.qualitative_results("hcg"):
        if result.when is not None:
            word = "positive" if result.positive else "negative"
            text = f"hCG {word} on {fmt_date(result.when)}"
            events.append(PregnancyEvent(result.when, result.positive, True, text))
    positive_at = Decimal(str(params["hcg_positive_at_or_above"]))
    negative_below = Decimal(str(params["hcg_negative_below"]))
    for lab in record.lab_series("hcg"):
        if lab.when is None:
            continue
        text = f"hCG {lab.reported_label} on {fmt_date(lab.when)}"
        verdict, why = hcg_verdict(lab.value, lab.comparator, positive_at, negative_below)
        events.append(PregnancyEvent(lab.when, verdict, True, f"{text} ({why})"))
    events += _end_events(record, terminology, params)
    events.sort(key=lambda e: e.when)
    return events


def hcg_verdict(
    value: Decimal, comparator: str, positive_at: Decimal, negative_below: Decimal
) -> tuple[bool | None, str]:
    """(positive / negative / indeterminate, why) for a quantitative hCG in mIU/mL.

    A comparator makes the value a bound: "< 5" is at most 5 (below 5: negative), "> 1000" at
    least 1000 (positive). A bound that leaves the answer open ("< 50", "> 10") is indeterminate,
    and says so, like a value between the two thresholds."""
    at_most = comparator in {"<", "<="}
    at_least = comparator in {">", ">="}
    if not at_most and value >= positive_at:
        return True, f"positive: at or above {positive_at} mIU/mL"
    below = value < negative_below or (comparator == "<" and value <= negative_below)
    if not at_least and below:
        return False, f"negative: below {negative_below} mIU/mL"
    if comparator:
        return None, (
            f"indeterminate: the reported bound {comparator} {value.normalize():f} does not"
            f" decide between negative (below {negative_below}) and positive (at or above"
            f" {positive_at} mIU/mL): repeat a quantitative hCG"
        )
    return None, (
        f"indeterminate: between {negative_below} and {positive_at} mIU/mL; this may be"
        " a very early pregnancy: repeat a quantitative hCG"
    )


def _end_events(
    record: PatientRecord, terminology: Terminology, params: dict[str, object]
) -> list[PregnancyEvent]:
    """Dated ends of pregnancy: abatement of a pregnancy Condition, delivery records."""
    pregnancy_vs = terminology.valueset(str(params["pregnancy_condition_valueset"]))
    ended_vs = terminology.valueset(str(params["pregnancy_ended_valueset"]))
    events = []
    for condition in record.conditions:
        if condition.concept.in_valueset(pregnancy_vs) and condition.abatement is not None:
            text = f"pregnancy ended {fmt_date(condition.abatement)} ({condition.concept.label()})"
            events.append(PregnancyEvent(condition.abatement, False, False, text, True))
        when = condition.onset or condition.recorded or condition.abatement
        if condition.concept.in_valueset(ended_vs) and when is not None:
            text = f"{condition.concept.label()} on {fmt_date(when)}"
            events.append(PregnancyEvent(when, False, False, text, True))
    return events


def _status_events(
    record: PatientRecord, terminology: Terminology, params: dict[str, object]
) -> list[PregnancyEvent]:
    status_vs = terminology.valueset(str(params["pregnancy_status_valueset"]))
    pregnant_vs = terminology.valueset(str(params["pregnant_answer_valueset"]))
    not_pregnant_vs = terminology.valueset(str(params["not_pregnant_answer_valueset"]))
    events = []
    for obs in record.coded_in(status_vs):
        if obs.when is None:
            continue
        if obs.value.in_valueset(pregnant_vs):
            answer: bool | None = True
        elif obs.value.in_valueset(not_pregnant_vs):
            answer = False
        else:
            continue
        word = "pregnant" if answer else "not pregnant"
        text = f"pregnancy status '{word}' on {fmt_date(obs.when)}"
        events.append(PregnancyEvent(obs.when, answer, False, text))
    return events


def evaluate(inp: RuleInput) -> Finding | None:
    drafts = tuple(d for d in inp.drafts if DRUG_CLASS in d.classes)
    if not drafts:
        return None
    params = dict(inp.params)
    terminology = inp.terminology
    record, now = inp.record, inp.now
    age = age_at(record, now)
    sex = record.clinical_sex
    gaps: list[str] = [sex.reason] if sex.reason else []
    base = {
        "drug": ", ".join(sorted({d.label for d in drafts})),
        "age": "unknown" if age is None else str(age),
        "sex": describe_sex(sex.sex or record.gender),
        "age_window": f"{params['age_min_years']} to {int(params['age_max_years']) - 1} years",
        "postpartum": "",
        "pregnancy_ended": "",
    }

    def finding(outcome: str, **extra: str) -> Finding:
        return Finding(RULE_ID, outcome, base | extra, drafts, tuple(gaps))

    events = pregnancy_events(record, terminology, params)
    lookback = int(params["pregnancy_lookback_days"])
    pregnant_lines = _current_pregnancy(events, now, lookback)
    conditions = [
        c
        for c in record.active_conditions_in(
            terminology, str(params["pregnancy_condition_valueset"])
        )
        if not _ended(c, events, now)
    ]
    pregnant_lines += [f"active pregnancy condition: {c.concept.label()}" for c in conditions]
    if pregnant_lines:
        return finding("pregnant", pregnancy_evidence=_lines(pregnant_lines))
    base |= _postpartum(events, now, int(params["postpartum_note_days"]))

    if sex.sex == "male":
        if params["male_card"] and (age is None or age >= int(params["male_age_min_years"])):
            return finding("male-patient")
        return None
    if sex.sex is None:
        if not params["unknown_sex_may_be_pregnant"]:
            return None
        gaps.append(
            f"Sex {describe_sex(record.gender)}: treated as possibly of reproductive potential."
        )
    if age is None:
        gaps.append(
            "No birth date on record: age unknown, treated as within the reproductive age window."
        )
    elif not int(params["age_min_years"]) <= age < int(params["age_max_years"]):
        return None
    if record.active_conditions_in(
        terminology, str(params["not_of_reproductive_potential_valueset"])
    ) or record.completed_procedures_in(
        terminology, str(params["not_of_reproductive_potential_procedure_valueset"])
    ):
        return None

    window = int(params["negative_test_window_days"])
    recent_negative = [
        e for e in events if e.is_test and e.pregnant is False and within_days(e.when, now, window)
    ]
    if recent_negative:
        return finding("recent-negative-test", negative_test=recent_negative[-1].description)
    other_courses = _other_courses(
        record, drafts, now, int(params["continuing_therapy_window_days"])
    )
    if other_courses:
        return finding("continuing-therapy", current_course=other_courses)
    if not events:
        gaps.append("No pregnancy test or pregnancy status on record.")
    last = events[-1].description if events else "no pregnancy test or status on record"
    return finding("pregnancy-test-needed", last_test=last, window_days=str(window))


def _current_pregnancy(
    events: list[PregnancyEvent], now: datetime, lookback_days: int
) -> list[str]:
    """Positive evidence within the lookback that nothing later cancels.

    The specification: a "pregnant" status counts unless a later "not pregnant" follows (a later
    negative hCG is also taken as not pregnant); a positive hCG counts unless a later negative
    hCG follows (a status answer alone does not cancel a positive test).
    """
    current = []
    for event in events:
        if event.pregnant is not True or not within_days(event.when, now, lookback_days):
            continue
        cancelled = any(
            later.pregnant is False
            and later.when > event.when
            and (later.is_test or later.ends_pregnancy or not event.is_test)
            for later in events
        )
        if not cancelled:
            current.append(event.description)
    return current


def _ended(condition: ConditionFact, events: list[PregnancyEvent], now: datetime) -> bool:
    """An active pregnancy Condition whose pregnancy has ended: abatement given (a date up to
    now, or no date), or a delivery record after its onset."""
    if condition.abated and (condition.abatement is None or condition.abatement <= now):
        return True
    start = condition.onset or condition.recorded
    if start is None:
        return False  # cannot tell whether a delivery record ended this pregnancy
    return any(e.ends_pregnancy and start < e.when <= now for e in events)


def _postpartum(events: list[PregnancyEvent], now: datetime, days: int) -> dict[str, str]:
    """The card's postpartum phrase: "ended" (a pregnancy ended within ``days``) or none."""
    ends = [e for e in events if e.ends_pregnancy and within_days(e.when, now, days)]
    if not ends:
        return {}
    return {"postpartum": "ended", "pregnancy_ended": ends[-1].description}


def _other_courses(
    record: PatientRecord, drafts: tuple[DraftOrder, ...], now: datetime, days: int
) -> str:
    draft_ids = {d.id for d in drafts}
    courses = [
        c
        for c in record.courses_in(DRUG_CLASS)
        if c.id not in draft_ids
        and (last := last_exposure(c, now)) is not None
        and (now - last).days <= days
    ]
    return "; ".join(
        f"{c.label} ({c.status}, started {fmt_date(c.start)}"
        + (f", ended {fmt_date(c.end)})" if c.end and c.end <= now else ")")
        for c in courses
    )


def _lines(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def triggered(drafts: tuple[DraftOrder, ...], hook: str, _params: Mapping[str, Any]) -> bool:
    return hook in SPEC.hooks and any(DRUG_CLASS in d.classes for d in drafts)


_BASE_VARS = frozenset({"drug", "age", "sex", "age_window", "postpartum", "pregnancy_ended"})
SPEC = RuleSpec(
    id=RULE_ID,
    hooks=frozenset({"order-sign", "order-select"}),
    needs=WHOLE_CHART | {DataKind.PROCEDURES},
    outcomes={
        "pregnant": _BASE_VARS | {"pregnancy_evidence"},
        "pregnancy-test-needed": _BASE_VARS | {"last_test", "window_days"},
        "recent-negative-test": _BASE_VARS | {"negative_test"},
        "continuing-therapy": _BASE_VARS | {"current_course"},
        "male-patient": _BASE_VARS,
    },
    parameters=Parameters,
    triggered=triggered,
    evaluate=evaluate,
    terminology=frozenset({"hcg", DRUG_CLASS}),
)
