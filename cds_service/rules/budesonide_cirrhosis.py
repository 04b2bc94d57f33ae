"""budesonide-cirrhosis: a draft budesonide order for a patient with cirrhosis.

The budesonide value set names oral budesonide by ATC (A07EA06), but the RxNorm ingredient code
and the name fallback also match inhaled, nasal, topical and rectal products, which are not AIH
treatment. So the route is decided per draft (also in docs/rules/budesonide-cirrhosis.md):
1. a coding in ``oral_codes`` (ATC A07EA06) -> oral;
2. else a non-systemic term (inhalation, nasal, rectal, ...) in the product name, the route or
   the dosage text -> not AIH treatment, no card (logged);
3. else an oral term (oral, capsule, tablet, ...) -> oral;
4. else the route is unknown -> the card is shown, saying that oral use was assumed.

Rev 2: a Condition in ``counts_as_cirrhosis_valuesets`` (portal hypertension) counts like
cirrhosis; a Condition in ``decompensated_valuesets`` (ascites, varices, encephalopathy,
hepatorenal syndrome, decompensated cirrhosis) gives the critical ``decompensated`` outcome,
whose removal suggestion is recommended. Decompensation alone (without a cirrhosis code) is
enough: it implies advanced liver disease.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from cds_service.common.terms import first_match, term_pattern
from cds_service.patient.record import DraftOrder
from cds_service.rules.base import DataKind, Finding, RuleInput, RuleSpec

log = logging.getLogger(__name__)

RULE_ID = "budesonide-cirrhosis"
BUDESONIDE = "budesonide"


class Parameters(Schema):
    class Meta:
        unknown = RAISE

    cirrhosis_valueset = fields.String(load_default="cirrhosis")
    # rev 2: conditions that count like cirrhosis (portal hypertension)
    counts_as_cirrhosis_valuesets = fields.List(
        fields.String(), load_default=lambda: ["portal-hypertension"]
    )
    # rev 2: decompensated liver disease -> critical
    decompensated_valuesets = fields.List(
        fields.String(), load_default=lambda: ["decompensated-liver-disease"]
    )
    oral_codes = fields.List(fields.String(validate=validate.Length(min=1)), required=True)
    # terms match at the start of a word: "inhal" matches inhaler, inhalation, inhaled
    non_systemic_terms = fields.List(fields.String(validate=validate.Length(min=3)), required=True)
    oral_terms = fields.List(fields.String(validate=validate.Length(min=3)), required=True)


def route_of(draft: DraftOrder, params: Mapping[str, Any]) -> tuple[str, str]:
    """("oral" | "non-systemic" | "unknown", the evidence for it)."""
    oral_codes = set(params["oral_codes"])
    for code in draft.concept.codes:
        if code.code in oral_codes:
            return "oral", f"coded {code.code} (oral budesonide)"
    texts = [t for t in (*draft.concept.texts(), *draft.dosage.route_texts) if t]
    for kind, key in (("non-systemic", "non_systemic_terms"), ("oral", "oral_terms")):
        pattern = term_pattern(params[key], whole_word=False)
        term = first_match(pattern, texts)
        if term is not None:
            return kind, f"{term!r} in the product name, route or dosage text"
    return "unknown", "no route or dose form recorded"


def evaluate(inp: RuleInput) -> Finding | None:
    params = dict(inp.params)
    systemic: list[tuple[DraftOrder, str, str]] = []
    for draft in inp.drafts:
        if BUDESONIDE not in draft.classes:
            continue
        kind, why = route_of(draft, params)
        if kind == "non-systemic":
            log.info("budesonide draft %s is not oral (%s): not checked", draft.id, why)
            continue
        systemic.append((draft, kind, why))
    if not systemic:
        return None
    record, terminology = inp.record, inp.terminology
    decompensated = [
        c
        for vs in params["decompensated_valuesets"]
        for c in record.active_conditions_in(terminology, vs)
    ]
    cirrhosis = [
        c
        for vs in [params["cirrhosis_valueset"], *params["counts_as_cirrhosis_valuesets"]]
        for c in record.active_conditions_in(terminology, vs)
    ]
    conditions = list({c.id: c for c in [*decompensated, *cirrhosis]}.values())
    if not conditions:
        return None
    drafts = tuple(d for d, _, _ in systemic)
    gaps = [
        f"Route of {d.label} not recorded: taken as oral budesonide."
        for d, kind, _ in systemic
        if kind == "unknown"
    ]
    variables = {
        "drug": ", ".join(sorted({d.label for d in drafts})),
        "route": "\n".join(f"- {d.label}: {kind} ({why})" for d, kind, why in systemic),
        "cirrhosis": "\n".join(
            f"- {c.concept.label()}" + (f" (onset {c.onset.date().isoformat()})" if c.onset else "")
            for c in conditions
        ),
    }
    outcome = "decompensated" if decompensated else "cirrhosis"
    return Finding(RULE_ID, outcome, variables, drafts, tuple(gaps))


def triggered(drafts: tuple[DraftOrder, ...], hook: str, _params: Mapping[str, Any]) -> bool:
    return hook in SPEC.hooks and any(BUDESONIDE in d.classes for d in drafts)


SPEC = RuleSpec(
    id=RULE_ID,
    hooks=frozenset({"order-sign", "order-select"}),
    needs=frozenset({DataKind.PATIENT, DataKind.CONDITIONS}),
    outcomes={
        "cirrhosis": frozenset({"drug", "route", "cirrhosis"}),
        "decompensated": frozenset({"drug", "route", "cirrhosis"}),
    },
    parameters=Parameters,
    triggered=triggered,
    evaluate=evaluate,
    terminology=frozenset({BUDESONIDE}),
)
