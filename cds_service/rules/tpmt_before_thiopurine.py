"""tpmt-before-thiopurine: TPMT/NUDT15 status before a new thiopurine.

Decisions where the clinical specification is silent (also in docs/rules/tpmt-before-thiopurine.md):
- Every TPMT/NUDT15 result on record counts, however old (genotype does not change); the worst
  class across all of them decides (poor > intermediate > normal).
- Phenotype words are read from the coded answer, the text value and the interpretation, as
  whole words (configurable lists).
- Rev 2: star-allele genotypes (``*1/*3A``, ``TPMT*3A/*3C``, ``NUDT15 *1/*3``) are read with the
  configurable allele-function table (``allele_function``): two no-function alleles -> poor,
  one -> intermediate (also when the other allele is not in the table: it may be worse), two
  normal-function alleles -> normal, anything else -> not interpreted. The gene is the one named
  next to the alleles, else the last one named before them, else the gene of the result's value
  set (``valueset_genes``). The worst of the phenotype words and the genotype decides.
- Rev 2: TPMT and NUDT15 both intermediate -> the intermediate card gives the combined starting
  dose (CPIC 2024 update: 20-50 % of normal; the figures are parameters).
- Variant-presence results (c.719A>G detected) are not translated into phenotypes.
- An activity result is compared with its own ``referenceRange.low``; a low without a unit is
  taken to be in the result's unit, a low in another unit makes the result uninterpretable.
- A result on record that the service cannot interpret gives an info card listing it (never "no
  result"), without the ordering suggestion.
- A thiopurine course completed or stopped without an end date cannot show that the patient is
  established on a thiopurine, so the order counts as a new start (the safer side).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from typing import Any

from marshmallow import RAISE, Schema, fields, validate, validates_schema
from marshmallow.exceptions import ValidationError

from cds_service.common.terms import first_match, term_pattern
from cds_service.patient.readings import Reading, readings_in
from cds_service.patient.record import DraftOrder
from cds_service.patient.units import same_unit
from cds_service.rules.base import DataKind, Finding, RuleInput, RuleSpec
from cds_service.rules.common import fmt_date
from cds_service.rules.thiopurines import THIOPURINE, course_text, thiopurine_drafts

RULE_ID = "tpmt-before-thiopurine"


class AlleleFunction(Schema):
    class Meta:
        unknown = RAISE

    no_function = fields.List(fields.String(validate=validate.Regexp(r"^\*\w+$")), required=True)
    normal_function = fields.List(
        fields.String(validate=validate.Regexp(r"^\*\w+$")), required=True
    )

    @validates_schema
    def _disjoint(self, data: dict[str, Any], **_: object) -> None:
        both = {a.upper() for a in data["no_function"]} & {
            a.upper() for a in data["normal_function"]
        }
        if both:
            raise ValidationError(f"allele(s) in both lists: {sorted(both)}", "normal_function")


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
    # rev 2: CPIC allele function per gene, for star-allele genotypes
    allele_function = fields.Dict(
        keys=fields.String(validate=validate.OneOf(["TPMT", "NUDT15"])),
        values=fields.Nested(AlleleFunction),
        load_default=dict,
    )
    # the gene a result is about when its text names none (value set id -> gene)
    valueset_genes = fields.Dict(
        keys=fields.String(),
        values=fields.String(validate=validate.OneOf(["TPMT", "NUDT15"])),
        load_default=lambda: {"tpmt-activity": "TPMT", "nudt15": "NUDT15"},
    )
    combined_intermediate_min_percent = fields.Integer(
        load_default=20, validate=validate.Range(1, 100)
    )
    combined_intermediate_max_percent = fields.Integer(
        load_default=50, validate=validate.Range(1, 100)
    )

    @validates_schema
    def _percent_order(self, data: dict[str, Any], **_: object) -> None:
        if data["combined_intermediate_min_percent"] > data["combined_intermediate_max_percent"]:
            raise ValidationError(
                "must not exceed combined_intermediate_max_percent",
                "combined_intermediate_min_percent",
            )


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
    gene: str | None = None

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


_GENE = re.compile(r"\b(TPMT|NUDT15)\b", re.I)
_GENOTYPE = re.compile(
    r"(?:\b(TPMT|NUDT15)\s*)?\*\s*(\w+?)\s*/\s*(?:(?:TPMT|NUDT15)\s*)?\*\s*(\w+)\b", re.I
)


def judge_genotypes(
    reading: Reading, default_gene: str | None, table: Mapping[str, Mapping[str, Any]]
) -> list[Judged]:
    """Every star-allele genotype in the reading's texts, judged with the allele table."""
    judged = []
    for text in reading.answer_texts():
        for match in _GENOTYPE.finditer(text):
            named = match.group(1) or _last_gene_before(text, match.start()) or default_gene
            gene = named.upper() if named else None
            alleles = (f"*{match.group(2).upper()}", f"*{match.group(3).upper()}")
            genotype = f"{gene or 'gene not stated'} {alleles[0]}/{alleles[1]}"
            if gene is None or gene not in table:
                reason = f"{genotype}: no allele-function table for this gene"
                judged.append(Judged(reading, Status.UNINTERPRETED, reason, gene))
                continue
            status, why = _genotype_status(alleles, table[gene])
            judged.append(Judged(reading, status, f"{genotype}: {why}", gene))
    return judged


def _last_gene_before(text: str, end: int) -> str | None:
    genes = _GENE.findall(text[:end])
    return genes[-1] if genes else None


def _genotype_status(alleles: tuple[str, str], function: Mapping[str, Any]) -> tuple[Status, str]:
    no_function = {a.upper() for a in function["no_function"]}
    normal = {a.upper() for a in function["normal_function"]}
    lost = sum(1 for a in alleles if a in no_function)
    if lost == 2:
        return Status.POOR, "two no-function alleles (poor metabolizer)"
    if lost == 1:
        other = alleles[1] if alleles[0] in no_function else alleles[0]
        if other in normal:
            return Status.INTERMEDIATE, "one no-function allele (intermediate metabolizer)"
        return (
            Status.INTERMEDIATE,
            f"one no-function allele and {other} of unknown function (at least intermediate)",
        )
    if all(a in normal for a in alleles):
        return Status.NORMAL, "two normal-function alleles"
    unknown = [a for a in alleles if a not in normal]
    return Status.UNINTERPRETED, f"allele(s) {', '.join(unknown)} not in the allele-function table"


def judged_results(inp: RuleInput) -> list[Judged]:
    params = dict(inp.params)
    terminology, record = inp.terminology, inp.record
    words = PhenotypeWords(params)
    results = []
    genes = params["valueset_genes"]
    activity_vs = params["activity_valueset"]
    for reading in readings_in(record, terminology.valueset(activity_vs)):
        judged = judge_activity(reading, params["absent_activity_fraction"])
        # a lab may report the activity only with its interpretation ("intermediate")
        if judged.status is Status.UNINTERPRETED:
            by_words = words.judge(reading)
            judged = by_words if by_words.status is not Status.UNINTERPRETED else judged
        results.append(_with_gene(judged, genes.get(activity_vs)))
    for valueset_id in params["genotype_phenotype_valuesets"]:
        for reading in readings_in(record, terminology.valueset(valueset_id)):
            default_gene = genes.get(valueset_id)
            by_words = _with_gene(words.judge(reading), default_gene)
            genotypes = judge_genotypes(reading, default_gene, params["allele_function"])
            if genotypes and by_words.status is Status.UNINTERPRETED:
                results += genotypes
            else:
                results += [by_words, *(g for g in genotypes if g.status > by_words.status)]
    return results


def _with_gene(judged: Judged, default_gene: str | None) -> Judged:
    named = {g.upper() for t in judged.reading.answer_texts() for g in _GENE.findall(t)}
    gene = next(iter(named)) if len(named) == 1 else default_gene
    return Judged(judged.reading, judged.status, judged.reason, gene)


def starting_dose(results: list[Judged]) -> str:
    """The card's starting-dose phrase: "both-intermediate" (TPMT and NUDT15 both intermediate:
    the combined advice) or "single"."""
    genes = {j.gene for j in results if j.status is Status.INTERMEDIATE}
    return "both-intermediate" if {"TPMT", "NUDT15"} <= genes else "single"


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
    if worst is Status.INTERMEDIATE:
        variables["starting_dose"] = starting_dose(results)
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
        "intermediate-metabolizer": _VARS | {"deciding", "result_value", "starting_dose"},
        "uninterpreted-result": _VARS | {"deciding", "result_value"},
        "no-result": _VARS,
    },
    parameters=Parameters,
    triggered=triggered,
    evaluate=evaluate,
    terminology=frozenset({THIOPURINE}),
)
