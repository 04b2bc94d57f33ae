"""Running one rule, or the whole engine, on factory-built data (shared by the rule tests).

``run_rule`` evaluates a single rule function on a PatientRecord built from a prefetch dict, the
way the engine does but without precedence or card rendering; ``engine_cards`` runs a whole
service (triggers, precedence, rendering) without HTTP; ``logged_outcomes`` reads what the HTTP
endpoint wrote to the card log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from flask import Flask

from cds_service.config.configuration import Configuration, load_configuration
from cds_service.hooks.engine import IssuedCard
from cds_service.patient.record import PatientRecord, RecordBuilder, RecordInputs
from cds_service.rules.base import Finding, RuleInput
from cds_service.rules.registry import REGISTRY
from cds_service.storage.store import CardLog
from tests import factories as f

CARDS = Path(__file__).resolve().parents[1] / "cards"
SEVERITY = {None: 0, "info": 1, "warning": 2, "critical": 3}
TREATMENT_RESPONSE = ("aih-refractory", "aih-insufficient-response", "aih-nonresponse")
SERVICE_OF_HOOK = {
    "patient-view": "aih-patient-view",
    "order-sign": "aih-order-sign",
    "order-select": "aih-order-select",
}


@cache
def configuration() -> Configuration:
    return load_configuration(CARDS, REGISTRY)


def _entries(bundle: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [e["resource"] for e in (bundle or {}).get("entry", [])]


def build_record(prefetch: Mapping[str, Any], config: Configuration | None = None) -> PatientRecord:
    config = config or configuration()
    builder = RecordBuilder(config.terminology, config.analytes)
    return builder.build(
        RecordInputs(
            patient_id=f.PATIENT_ID,
            patient=prefetch.get("patient"),
            observations=_entries(prefetch.get("observations")),
            medication_requests=_entries(prefetch.get("medicationRequests")),
            conditions=_entries(prefetch.get("conditions")),
            medication_administrations=_entries(prefetch.get("medicationAdministrations")),
            medication_statements=_entries(prefetch.get("medicationStatements")),
        )
    )


def run_rule(
    rule_id: str,
    prefetch: Mapping[str, Any],
    *,
    hook: str = "patient-view",
    drafts: Sequence[dict[str, Any]] = (),
    now: datetime = f.NOW,
    params: Mapping[str, Any] | None = None,
    config: Configuration | None = None,
) -> Finding | None:
    """The rule's finding (None: no card), evaluated as the engine would on this hook."""
    config = config or configuration()
    rule = config.rules[rule_id]
    builder = RecordBuilder(config.terminology, config.analytes)
    draft_orders = tuple(builder.draft_orders(drafts))
    merged = {**rule.params, **(params or {})}
    if not rule.spec.triggered(draft_orders, hook, merged):
        return None
    return rule.spec.evaluate(
        RuleInput(
            record=build_record(prefetch, config),
            drafts=draft_orders,
            params=merged,
            terminology=config.terminology,
            now=now,
            hook=hook,
        )
    )


def outcome_of(finding: Finding | None) -> str | None:
    return finding.outcome if finding else None


outcome = outcome_of


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
    """``run_rule`` with the chart given as resources (order-sign by default)."""
    prefetch = f.full_prefetch(
        patient_resource=patient,
        observations=observations,
        medication_requests=medication_requests,
        conditions=conditions,
    )
    return run_rule(rule_id, prefetch, hook=hook, drafts=drafts, params=params, config=config)


def engine_cards(app: Flask, body: Mapping[str, Any]) -> list[IssuedCard]:
    """Every card the service for this hook issues (precedence applied), without HTTP."""
    engine = app.extensions["aih_cds"].engine
    return engine.call(SERVICE_OF_HOOK[body["hook"]], dict(body)).cards


def logged_outcomes(app: Flask, cards: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(rule id, outcome, indicator) of HTTP response cards, read back from the card log."""
    store = app.extensions["aih_cds"].store
    rows = []
    with store.sessions() as session:
        for card in cards:
            row = session.get(CardLog, card["uuid"])
            assert row is not None, "every issued card is logged"
            rows.append((row.rule_id, row.rule_outcome, row.indicator))
    return rows


def rule_of(card: Mapping[str, Any]) -> str:
    return str(card["source"]["topic"]["code"])


def card_detail(finding: Finding | None, config: Configuration | None = None) -> str:
    """The detail of the card ``finding`` renders to (phrases chosen, values escaped), on one
    line: rules choose wording by key and the rule file holds the words."""
    from cds_service.config.cards import render_card  # local: most tests never render

    assert finding is not None
    rule = (config or configuration()).rules[finding.rule_id]
    card = render_card(finding, rule, patient_id="p", data_gaps=[], new_uuid=lambda: "u")
    assert card is not None
    return " ".join(str(card["detail"]).split())
