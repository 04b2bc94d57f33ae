"""allopurinol-thiopurine: allopurinol and a thiopurine together need a reduced thiopurine dose.

Decisions where the clinical specification is silent (also in docs/rules/allopurinol-thiopurine.md):
- Drafts count as "the other drug" too: allopurinol and a thiopurine drafted together (the usual
  way the combination is started) are checked like a draft beside an active course.
- The thiopurine dose judged is the draft's when a thiopurine is drafted, else that of every
  active thiopurine course. The card is info only when every one of them has a computable daily
  dose at or below the ceiling configured for its ingredient; a thiopurine without a configured
  ceiling (thioguanine by default) always gives the warning.
- Rev 2: the inhibitor is any ``inhibitor_classes`` drug (allopurinol or febuxostat). A drug of
  ``contraindicated_classes`` (febuxostat) with azathioprine or mercaptopurine is the critical
  ``contraindicated`` outcome: no dose-reduction regimen exists, so no dose is judged and the
  draft that makes the combination is offered for removal (the inhibitor's when it is drafted,
  else the thiopurine's).
- Rev 2: with a body weight from the last ``weight_lookback_days`` the ceiling is the per-kg
  ceiling times the weight, used instead of the absolute ceiling; without one the absolute
  ceiling is used and the card says no weight-based check was possible. A patient under
  ``child_age_years`` without a recent weight never gets the info card (an absolute adult
  ceiling says nothing about a child's dose).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from cds_service.patient.dosing import DailyDose, plain_number
from cds_service.patient.record import DraftOrder, LabResult, MedicationCourse
from cds_service.patient.terminology import CodedConcept, NameMatcher, Terminology
from cds_service.rules.base import DataKind, Finding, RuleInput, RuleSpec
from cds_service.rules.common import age_at, fmt_date, within_days
from cds_service.rules.series import fmt_number, latest
from cds_service.rules.thiopurines import THIOPURINE, course_lines, thiopurine_drafts

RULE_ID = "allopurinol-thiopurine"


class Ceiling(Schema):
    class Meta:
        unknown = RAISE

    ingredient = fields.String(required=True, validate=validate.Length(min=1))
    names = fields.List(fields.String(validate=validate.Length(min=3)), required=True)
    # azathioprine's full dose is at most about 300 mg/day; a reduced ceiling is far below 1000
    max_mg_per_day = fields.Decimal(
        required=True, validate=validate.Range(0, 1000, min_inclusive=False)
    )
    # with a recent body weight this ceiling (times the weight) is used instead
    max_mg_per_kg_per_day = fields.Decimal(
        load_default=None, allow_none=True, validate=validate.Range(0, 10, min_inclusive=False)
    )


class Parameters(Schema):
    class Meta:
        unknown = RAISE

    reduced_dose_ceilings = fields.List(fields.Nested(Ceiling), required=True)
    # drugs that raise 6-TGN with a thiopurine (rev 2: allopurinol and febuxostat)
    inhibitor_classes = fields.List(
        fields.String(),
        load_default=lambda: ["xanthine-oxidase-inhibitor"],
        validate=validate.Length(1),
    )
    # inhibitors contraindicated with contraindicated_with_class (rev 2: febuxostat): critical
    contraindicated_classes = fields.List(fields.String(), load_default=lambda: ["febuxostat"])
    contraindicated_with_class = fields.String(load_default="azathioprine-mercaptopurine")
    weight_analyte = fields.String(load_default="body-weight")
    weight_lookback_days = fields.Integer(load_default=180, validate=validate.Range(1, 730))
    child_age_years = fields.Integer(load_default=18, validate=validate.Range(0, 30))


@dataclass(frozen=True)
class DoseCheck:
    label: str
    dose: DailyDose
    ingredient: str | None
    ceiling: Decimal | None
    basis: str = ""  # how the ceiling was set, e.g. "0.7 mg/kg/day x 25 kg"

    @property
    def reduced(self) -> bool:
        mg = self.dose.mg_per_day
        return mg is not None and self.ceiling is not None and mg <= self.ceiling

    def short(self) -> str:
        mg = self.dose.mg_per_day
        return f"{self.label} ({plain_number(mg)} mg/day)" if mg is not None else self.label

    def line(self) -> str:
        if self.ingredient is None or self.ceiling is None:
            limit = "no reduced-dose ceiling configured for this drug"
        else:
            ceiling = f"{plain_number(self.ceiling)} mg/day"
            limit = f"reduced-dose ceiling for {self.ingredient}: {ceiling}{self.basis}"
        return f"{self.label}: {self.dose.describe()}; {limit}"


@dataclass(frozen=True)
class Combination:
    """The thiopurine and inhibitor drafts and active courses one request is about."""

    thio_drafts: tuple[DraftOrder, ...]
    thio_active: list[MedicationCourse]
    inhibitor_drafts: tuple[DraftOrder, ...]
    inhibitor_active: list[MedicationCourse]

    @classmethod
    def of(cls, inp: RuleInput, classes: set[str]) -> Combination:
        now = inp.now
        return cls(
            thiopurine_drafts(inp.drafts),
            [c for c in inp.record.courses_in(THIOPURINE) if c.is_active(now)],
            tuple(d for d in inp.drafts if classes & d.classes),
            [c for c in inp.record.courses if classes & c.classes and c.is_active(now)],
        )

    def present(self) -> bool:
        return bool(
            (self.thio_drafts and (self.inhibitor_active or self.inhibitor_drafts))
            or (self.inhibitor_drafts and self.thio_active)
        )

    def restricted(self, inhibitors: set[str], thiopurine_class: str) -> Combination:
        """Only the contraindicated inhibitors and the thiopurines they are contraindicated with."""
        return Combination(
            tuple(d for d in self.thio_drafts if thiopurine_class in d.classes),
            [c for c in self.thio_active if thiopurine_class in c.classes],
            tuple(d for d in self.inhibitor_drafts if inhibitors & d.classes),
            [c for c in self.inhibitor_active if inhibitors & c.classes],
        )


def evaluate(inp: RuleInput) -> Finding | None:
    params, now = dict(inp.params), inp.now
    contraindicated = set(params["contraindicated_classes"])
    combination = Combination.of(inp, set(params["inhibitor_classes"]) | contraindicated)
    if not combination.present():
        return None
    inhibitor_text = course_lines(combination.inhibitor_active, combination.inhibitor_drafts, now)
    strict = combination.restricted(contraindicated, str(params["contraindicated_with_class"]))
    if contraindicated and strict.present():
        remove = strict.inhibitor_drafts or strict.thio_drafts
        variables = {
            "thiopurine": course_lines(strict.thio_active, strict.thio_drafts, now),
            "allopurinol": inhibitor_text,
            "inhibitor": ", ".join(
                sorted(
                    {d.label for d in strict.inhibitor_drafts}
                    | {c.label for c in strict.inhibitor_active}
                )
            ),
        }
        return Finding(RULE_ID, "contraindicated", variables, remove)
    weight, weight_variables = _weight(inp, params)
    ceilings = params["reduced_dose_ceilings"]
    judged: list[tuple[str, CodedConcept, DailyDose]] = (
        [(d.label, d.concept, d.dosage.daily_dose) for d in combination.thio_drafts]
        if combination.thio_drafts
        else [(c.label, c.concept, c.dosage.daily_dose) for c in combination.thio_active]
    )
    checks = [_check(*item, ceilings, inp.terminology, weight=weight) for item in judged]
    variables = {
        "thiopurine": ", ".join(sorted({c.short() for c in checks})),
        "allopurinol": inhibitor_text,
        "dose_checks": "\n".join(f"- {c.line()}" for c in checks),
    } | weight_variables
    age = age_at(inp.record, now)
    child_without_weight = weight is None and age is not None and age < params["child_age_years"]
    reduced = all(c.reduced for c in checks) and not child_without_weight
    outcome = "reduced-dose" if reduced else "dose-reduction-needed"
    gaps = [
        f"Daily dose of {c.label} could not be computed: {c.dose.explanation}."
        for c in checks
        if c.dose.mg_per_day is None
    ]
    if weight is None:
        gaps.append("No recent body weight: the absolute reduced-dose ceiling was used.")
    drafts = (*combination.thio_drafts, *combination.inhibitor_drafts)
    return Finding(RULE_ID, outcome, variables, drafts, tuple(gaps))


def _weight(inp: RuleInput, params: Mapping[str, Any]) -> tuple[LabResult | None, dict[str, str]]:
    """The latest body weight within the lookback, and the variables of the card's weight
    phrase: ``weight_check`` is "measured", "missing" or "missing-child" (under the child age,
    where an adult ceiling says nothing)."""
    days = int(params["weight_lookback_days"])
    series = inp.record.lab_series(str(params["weight_analyte"]))
    weight = latest([w for w in series if within_days(w.when, inp.now, days) and w.value > 0])
    if weight is not None:
        measured = f"{fmt_number(weight.value, 1)} kg on {fmt_date(weight.when)}"
        return weight, {"weight_check": "measured", "weight": measured, "age": ""}
    age = age_at(inp.record, inp.now)
    child = age is not None and age < params["child_age_years"]
    key = "missing-child" if child else "missing"
    return None, {"weight_check": key, "weight": "", "age": str(age) if age is not None else ""}


def _check(
    label: str,
    concept: CodedConcept,
    dose: DailyDose,
    ceilings: list[dict[str, Any]],
    terminology: Terminology,
    *,
    weight: LabResult | None = None,
) -> DoseCheck:
    texts = [*concept.texts(), *_valueset_displays(concept, terminology)]
    for ceiling in ceilings:
        if NameMatcher.of(ceiling["names"]).matches(texts):
            per_kg = ceiling.get("max_mg_per_kg_per_day")
            if weight is not None and per_kg is not None:
                limit = per_kg * weight.value
                basis = f" ({plain_number(per_kg)} mg/kg/day x {fmt_number(weight.value, 1)} kg)"
                return DoseCheck(label, dose, ceiling["ingredient"], limit, basis)
            return DoseCheck(label, dose, ceiling["ingredient"], ceiling["max_mg_per_day"])
    return DoseCheck(label, dose, None, None)


def _valueset_displays(concept: CodedConcept, terminology: Terminology) -> list[str]:
    """Displays the thiopurine value set gives the concept's codes (names a bare code)."""
    valueset = terminology.drug_classes[THIOPURINE].valueset
    return [
        valueset.displays.get((c.system, c.code), "")
        for c in concept.codes
        if valueset.contains(c.system, c.code)
    ]


def triggered(drafts: tuple[DraftOrder, ...], hook: str, params: Mapping[str, Any]) -> bool:
    # whether "the other drug" is active is known only once the record is read
    classes = {*params["inhibitor_classes"], *params["contraindicated_classes"]}
    return hook in SPEC.hooks and any(
        THIOPURINE in d.classes or classes & d.classes for d in drafts
    )


SPEC = RuleSpec(
    id=RULE_ID,
    hooks=frozenset({"order-sign", "order-select"}),
    needs=frozenset({DataKind.PATIENT, DataKind.MEDICATION_REQUESTS, DataKind.OBSERVATIONS}),
    outcomes={
        "contraindicated": frozenset({"thiopurine", "allopurinol", "inhibitor"}),
        "dose-reduction-needed": frozenset(
            {"thiopurine", "allopurinol", "dose_checks", "weight_check", "weight", "age"}
        ),
        "reduced-dose": frozenset(
            {"thiopurine", "allopurinol", "dose_checks", "weight_check", "weight", "age"}
        ),
    },
    parameters=Parameters,
    triggered=triggered,
    evaluate=evaluate,
    terminology=frozenset({THIOPURINE}),
)
