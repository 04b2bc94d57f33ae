"""Runs one rule's evaluate function on a chart built from factory resources (no HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cds_service.configuration import Configuration, load_configuration
from cds_service.record import RecordBuilder, RecordInputs
from cds_service.rules.base import Finding, RuleInput
from cds_service.rules.registry import REGISTRY
from tests import factories as f

CARDS = Path(__file__).resolve().parents[1] / "cards"


def configuration() -> Configuration:
    return load_configuration(CARDS, REGISTRY)


def decide(
    config: Configuration,
    rule_id: str,
    *,
    hook: str = "order-sign",
    patient: dict[str, Any] | None = None,
    drafts: tuple[dict[str, Any], ...] = (),
    observations: tuple[dict[str, Any], ...] = (),
    medication_requests: tuple[dict[str, Any], ...] = (),
    conditions: tuple[dict[str, Any], ...] = (),
    params: dict[str, Any] | None = None,
) -> Finding | None:
    builder = RecordBuilder(config.terminology, config.analytes)
    record = builder.build(
        RecordInputs(
            patient_id=f.PATIENT_ID,
            patient=patient if patient is not None else f.patient(),
            observations=observations,
            medication_requests=medication_requests,
            conditions=conditions,
        )
    )
    rule = config.rules[rule_id]
    draft_orders = tuple(builder.draft_orders(drafts))
    if not rule.spec.triggered(draft_orders, hook):
        return None
    return rule.spec.evaluate(
        RuleInput(
            record=record,
            drafts=draft_orders,
            params={**rule.params, **(params or {})},
            terminology=config.terminology,
            now=f.NOW,
            hook=hook,
        )
    )


def outcome(finding: Finding | None) -> str | None:
    return finding.outcome if finding else None
