"""allopurinol-thiopurine: allopurinol and a thiopurine together need a reduced thiopurine dose.

Decisions where docs/clinical-spec.md is silent (also in docs/rules/allopurinol-thiopurine.md):
- Drafts count as "the other drug" too: allopurinol and a thiopurine drafted together (the usual
  way the combination is started) are checked like a draft beside an active course.
- The thiopurine dose judged is the draft's when a thiopurine is drafted, else that of every
  active thiopurine course. The card is info only when every one of them has a computable daily
  dose at or below the ceiling configured for its ingredient; a thiopurine without a configured
  ceiling (thioguanine by default) always gives the warning.
- Weight-based dosing (mg/kg) is not assessed: the record holds no weight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from cds_service.dosing import DailyDose, plain_number
from cds_service.record import DraftOrder
from cds_service.rules.base import DataKind, Finding, RuleInput, RuleSpec
from cds_service.rules.thiopurines import THIOPURINE, course_lines, thiopurine_drafts
from cds_service.terminology import CodedConcept, NameMatcher, Terminology

RULE_ID = "allopurinol-thiopurine"
ALLOPURINOL = "allopurinol"


class Ceiling(Schema):
    class Meta:
        unknown = RAISE

    ingredient = fields.String(required=True, validate=validate.Length(min=1))
    names = fields.List(fields.String(validate=validate.Length(min=3)), required=True)
    max_mg_per_day = fields.Decimal(required=True, validate=validate.Range(0, min_inclusive=False))


class Parameters(Schema):
    class Meta:
        unknown = RAISE

    reduced_dose_ceilings = fields.List(fields.Nested(Ceiling), required=True)


@dataclass(frozen=True)
class DoseCheck:
    label: str
    dose: DailyDose
    ingredient: str | None
    ceiling: Decimal | None

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
            ceiling = f"{self.ceiling.normalize():f} mg/day"
            limit = f"reduced-dose ceiling for {self.ingredient}: {ceiling}"
        return f"{self.label}: {self.dose.describe()}; {limit}"


def evaluate(inp: RuleInput) -> Finding | None:
    params, now = dict(inp.params), inp.now
    thio_drafts = thiopurine_drafts(inp.drafts)
    allo_drafts = allopurinol_drafts(inp.drafts)
    thio_active = [c for c in inp.record.courses_in(THIOPURINE) if c.is_active(now)]
    allo_active = [c for c in inp.record.courses_in(ALLOPURINOL) if c.is_active(now)]
    if not ((thio_drafts and (allo_active or allo_drafts)) or (allo_drafts and thio_active)):
        return None
    ceilings = params["reduced_dose_ceilings"]
    if thio_drafts:
        checks = [
            _check(d.label, d.concept, d.dosage.daily_dose, ceilings, inp.terminology)
            for d in thio_drafts
        ]
    else:
        checks = [
            _check(c.label, c.concept, c.dosage.daily_dose, ceilings, inp.terminology)
            for c in thio_active
        ]
    variables = {
        "thiopurine": ", ".join(sorted({c.short() for c in checks})),
        "allopurinol": course_lines(allo_active, allo_drafts, now),
        "dose_checks": "\n".join(f"- {c.line()}" for c in checks),
    }
    outcome = "reduced-dose" if all(c.reduced for c in checks) else "dose-reduction-needed"
    gaps = [
        f"Daily dose of {c.label} could not be computed: {c.dose.explanation}."
        for c in checks
        if c.dose.mg_per_day is None
    ]
    return Finding(RULE_ID, outcome, variables, (*thio_drafts, *allo_drafts), tuple(gaps))


def _check(
    label: str,
    concept: CodedConcept,
    dose: DailyDose,
    ceilings: list[dict[str, Any]],
    terminology: Terminology,
) -> DoseCheck:
    texts = [*concept.texts(), *_valueset_displays(concept, terminology)]
    for ceiling in ceilings:
        if NameMatcher.of(ceiling["names"]).matches(texts):
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


def allopurinol_drafts(drafts: tuple[DraftOrder, ...]) -> tuple[DraftOrder, ...]:
    return tuple(d for d in drafts if ALLOPURINOL in d.classes)


def triggered(drafts: tuple[DraftOrder, ...], hook: str, _params: Mapping[str, Any]) -> bool:
    # whether "the other drug" is active is known only once the record is read
    return hook in SPEC.hooks and bool(thiopurine_drafts(drafts) or allopurinol_drafts(drafts))


SPEC = RuleSpec(
    id=RULE_ID,
    hooks=frozenset({"order-sign", "order-select"}),
    needs=frozenset({DataKind.PATIENT, DataKind.MEDICATION_REQUESTS}),
    outcomes={
        "dose-reduction-needed": frozenset({"thiopurine", "allopurinol", "dose_checks"}),
        "reduced-dose": frozenset({"thiopurine", "allopurinol", "dose_checks"}),
    },
    parameters=Parameters,
    triggered=triggered,
    evaluate=evaluate,
)
