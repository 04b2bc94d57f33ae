"""unidentified-draft-order: a draft order whose drug cannot be identified is never met with
silence (docs/reading-policy.md, "No silent empty answer").

A draft MedicationRequest with no code, no text and no resolvable medicationReference (not
contained, not in prefetch, not readable from fhirServer) cannot be checked by any drug-safety
rule. Its answer is one info card naming the order and the checks that could not run (their
names are configuration: ``checks``), so an empty ``cards`` list always means "read, and no rule
fired".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from cds_service.patient.record import DraftOrder
from cds_service.rules.base import Finding, RuleInput, RuleSpec

RULE_ID = "unidentified-draft-order"


class Parameters(Schema):
    class Meta:
        unknown = RAISE

    # the safety checks that read a draft's drug, as the card names them
    checks = fields.List(fields.String(validate=validate.Length(min=3)), required=True)


def order_text(draft: DraftOrder) -> str:
    """How the card names the order: its id, why the drug is unknown, what was unreadable."""
    why = (
        f"its medication {draft.unresolved_reference} was neither contained, nor prefetched, "
        "nor readable from the FHIR server"
        if draft.unresolved_reference
        else "it carries no medication code or name"
    )
    unreadable = f"; unreadable: {', '.join(draft.unreadable)}" if draft.unreadable else ""
    return f"- {draft.reference or 'MedicationRequest (no id)'}: {why}{unreadable}"


def evaluate(inp: RuleInput) -> Finding | None:
    unknown = tuple(d for d in inp.drafts if not d.identified)
    if not unknown:
        return None
    variables = {
        "orders": "\n".join(order_text(d) for d in unknown),
        "checks": "\n".join(f"- {check}" for check in inp.params["checks"]),
        "count": str(len(unknown)),
    }
    gaps = tuple(
        f"The drug of {d.reference or 'a MedicationRequest without id'} could not be identified."
        for d in unknown
    )
    return Finding(RULE_ID, "drug-unidentified", variables, unknown, gaps)


def triggered(drafts: tuple[DraftOrder, ...], hook: str, _params: Mapping[str, Any]) -> bool:
    return hook in SPEC.hooks and any(not d.identified for d in drafts)


SPEC = RuleSpec(
    id=RULE_ID,
    hooks=frozenset({"order-sign", "order-select"}),
    needs=frozenset(),
    outcomes={"drug-unidentified": frozenset({"orders", "checks", "count"})},
    parameters=Parameters,
    triggered=triggered,
    evaluate=evaluate,
)
