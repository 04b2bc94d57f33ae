"""tpmt-before-thiopurine: TPMT/NUDT15 status before a new thiopurine.

Decisions where the clinical specification is silent (also in docs/rules/tpmt-before-thiopurine.md):
- Every TPMT/NUDT15 result on record counts, however old (genotype does not change); the worst
  class across all of them decides (poor > intermediate > normal).
- Phenotype words are read from the coded answer, the text value and the interpretation, as
  whole words (configurable lists); genotypes (star alleles, variant presence) are not
  translated into phenotypes by the service: such results are listed as "not interpreted".
- An activity result is compared with its own ``referenceRange.low``; a low without a unit is
  taken to be in the result's unit, a low in another unit makes the result uninterpretable.
- A result on record that the service cannot interpret gives an info card listing it (never "no
  result"), without the ordering suggestion.
- A thiopurine course completed or stopped without an end date cannot show that the patient is
  established on a thiopurine, so the order counts as a new start (the safer side).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from cds_service.readings import Reading, readings_in, same_unit
from cds_service.record import DraftOrder
from cds_service.rules.base import DataKind, Finding, RuleInput, RuleSpec
from cds_service.rules.common import fmt_date
from cds_service.rules.terms import first_match, term_pattern
from cds_service.rules.thiopurines import THIOPURINE, course_text, thiopurine_drafts

RULE_ID = "tpmt-before-thiopurine"


class Parameters(Schema):
    class Meta:
        unknown = RAISE

    established_window_days = fields.Integer(load_default=90, validate=validate.Range(0, 730))
    absent_activity_fraction = fields.Decimal(
        load_default=Decimal("0.3"), validate=validate.Range(0, 1, max_inclusive=False)
    )
    activity_valueset = fields.String(load_default="tpmt-activity")
    genotype_phenotype_valuesets = fields.List(
        fields.String(), load_default=lambda: ["tpmt-genotype-phenotype", "nudt15"]
    )
    poor_terms = fields.List(fields.String(validate=validate.Length(min=3)), required=True)
    intermediate_terms = fields.List(fields.String(validate=validate.Length(min=3)), required=True)
    normal_terms = fields.List(fields.String(validate=validate.Length(min=3)), required=True)


class Status(IntEnum):
    """Ordered by severity, so ``max`` gives the worst."""

    UNINTERPRETED = 0
    NORMAL = 1
    INTERMEDIATE = 2
    POOR = 3


@dataclass(frozen=True)
class Judged:
    reading: Reading
    status: Status
    reason: str

    def line(self) -> str:
        return (
            f"{self.reading.code.label()}: {self.reading.value_label()} on "
            f"{fmt_date(self.reading.when)} ({self.reason})"
        )


def judge_activity(reading: Reading, absent_fraction: Decimal) -> Judged:
    low = reading.reference_low
    if reading.quantity is None:
        return Judged(reading, Status.UNINTERPRETED, "no number to compare")
    if low is None:
        return Judged(reading, Status.UNINTERPRETED, "no reference range low to compare with")
    if reading.reference_low_unit is not None and not (
        same_unit(reading.reference_low_unit, reading.unit)
        or same_unit(reading.reference_low_unit, reading.unit_label)
    ):
        return Judged(
            reading,
            Status.UNINTERPRETED,
            f"reference low {low.normalize():f} is in another unit "
            f"({reading.reference_low_unit!r})",
        )
    absent_below = low * absent_fraction
    if reading.quantity < absent_below:
        return Judged(
            reading,
            Status.POOR,
            f"below {absent_fraction.normalize():f} x the reference low {low.normalize():f}:"
            " absent or very low activity",
        )
    if reading.quantity < low:
        return Judged(reading, Status.INTERMEDIATE, f"below the reference low {low.normalize():f}")
    return Judged(reading, Status.NORMAL, f"at or above the reference low {low.normalize():f}")


class PhenotypeWords:
    """Whole-word, case-insensitive phenotype terms; the worst one found wins."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.patterns = [
            (Status.POOR, term_pattern(params["poor_terms"])),
            (Status.INTERMEDIATE, term_pattern(params["intermediate_terms"])),
            (Status.NORMAL, term_pattern(params["normal_terms"])),
        ]

    def judge(self, reading: Reading) -> Judged:
        texts = reading.answer_texts()
        for status, pattern in self.patterns:
            term = first_match(pattern, texts)
            if term is not None:
                return Judged(reading, status, f"reported as {term!r}")
        return Judged(reading, Status.UNINTERPRETED, "not a phenotype the service can read")


def judged_results(inp: RuleInput) -> list[Judged]:
    params = dict(inp.params)
    terminology, record = inp.terminology, inp.record
    words = PhenotypeWords(params)
    results = []
    for reading in readings_in(record, terminology.valueset(params["activity_valueset"])):
        judged = judge_activity(reading, params["absent_activity_fraction"])
        # a lab may report the activity only with its interpretation ("intermediate")
        if judged.status is Status.UNINTERPRETED:
            by_words = words.judge(reading)
            judged = by_words if by_words.status is not Status.UNINTERPRETED else judged
        results.append(judged)
    for valueset_id in params["genotype_phenotype_valuesets"]:
        for reading in readings_in(record, terminology.valueset(valueset_id)):
            results.append(words.judge(reading))
    return results


def evaluate(inp: RuleInput) -> Finding | None:
    drafts = thiopurine_drafts(inp.drafts)
    if not drafts:
        return None
    draft_ids = {d.id for d in drafts}
    window = int(inp.params["established_window_days"])
    established = [
        c
        for c in inp.record.courses_in(THIOPURINE)
        if c.id not in draft_ids and (c.is_active(inp.now) or c.ended_within(inp.now, window))
    ]
    if established:
        return None
    results = judged_results(inp)
    variables = {
        "drug": ", ".join(sorted({d.label for d in drafts})),
        "results": "\n".join(f"- {j.line()}" for j in results) or "- none",
        "window_days": str(window),
        "previous_courses": _previous(inp) or "none on record",
    }
    if not results:
        return Finding(
            RULE_ID, "no-result", variables, drafts, ("No TPMT or NUDT15 result on record.",)
        )
    worst = max(j.status for j in results)
    if worst is Status.NORMAL:
        return None
    outcome = {
        Status.POOR: "poor-metabolizer",
        Status.INTERMEDIATE: "intermediate-metabolizer",
        Status.UNINTERPRETED: "uninterpreted-result",
    }[worst]
    deciding = [j for j in results if j.status is worst]
    variables["deciding"] = deciding[-1].line()
    variables["result_value"] = deciding[-1].reading.value_label()
    gaps = []
    if worst is not Status.UNINTERPRETED:
        gaps = [f"Not interpreted: {j.line()}." for j in results if not j.status]
    return Finding(RULE_ID, outcome, variables, drafts, tuple(gaps))


def _previous(inp: RuleInput) -> str:
    return "; ".join(course_text(c, inp.now) for c in inp.record.courses_in(THIOPURINE))


def triggered(drafts: tuple[DraftOrder, ...], hook: str, _params: Mapping[str, Any]) -> bool:
    return hook in SPEC.hooks and bool(thiopurine_drafts(drafts))


_VARS = frozenset({"drug", "results", "window_days", "previous_courses"})
SPEC = RuleSpec(
    id=RULE_ID,
    hooks=frozenset({"order-sign", "order-select"}),
    needs=frozenset({DataKind.PATIENT, DataKind.OBSERVATIONS, DataKind.MEDICATION_REQUESTS}),
    outcomes={
        "poor-metabolizer": _VARS | {"deciding", "result_value"},
        "intermediate-metabolizer": _VARS | {"deciding", "result_value"},
        "uninterpreted-result": _VARS | {"deciding", "result_value"},
        "no-result": _VARS,
    },
    parameters=Parameters,
    triggered=triggered,
    evaluate=evaluate,
)
