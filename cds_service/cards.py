"""Findings + rule configuration -> CDS Hooks 2.0 cards, serialised to the spec by our own code."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from string import Template
from typing import Any

from cds_service.configuration import RuleConfig
from cds_service.rules.base import Finding

log = logging.getLogger(__name__)

RULE_TOPIC_SYSTEM = "urn:aih-cds:rule"
SUMMARY_MAX = 139  # the spec says "<140 characters"
OVERRIDE_INDICATORS = frozenset({"warning", "critical"})


def render_card(
    finding: Finding,
    rule: RuleConfig,
    *,
    patient_id: str,
    data_gaps: Sequence[str],
    new_uuid: Callable[[], str],
    link_targets: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """The card for a finding, or None when its outcome is switched off in configuration."""
    outcome = rule.outcomes[finding.outcome]
    if not outcome["enabled"]:
        return None
    variables = {**rule.snippets, **finding.variables}
    variables["evidence"] = (
        _bullets(f"{e['citation']} [{e['key']}]" for e in rule.evidence) or "- none listed"
    )
    gaps = [*finding.gaps, *data_gaps]
    variables["data_gaps"] = _bullets(gaps) or "- none: all data the rule reads was available"
    summary = _fit_summary(Template(outcome["summary"]).substitute(variables), rule.id)
    card: dict[str, Any] = {
        "uuid": new_uuid(),
        "summary": summary,
        "detail": Template(outcome["detail"]).substitute(variables).strip(),
        "indicator": outcome["indicator"],
        "source": _source(rule),
    }
    suggestions = [
        _suggestion(rule.suggestions[sid], variables, finding, patient_id, new_uuid)
        for sid in outcome["suggestions"]
        if finding.applicable_suggestions is None or sid in finding.applicable_suggestions
    ]
    suggestions = [s for s in suggestions if s is not None]
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = outcome["selection_behavior"]
    if outcome["indicator"] in OVERRIDE_INDICATORS:
        chosen = outcome.get("override_reasons")
        card["overrideReasons"] = [
            dict(reason)
            for reason in rule.override_reasons
            if chosen is None or reason["code"] in chosen
        ]
    links = [
        link
        for lid in outcome["links"]
        if (link := _link(rule.links[lid], link_targets or {})) is not None
    ]
    if links:
        card["links"] = links
    pruned: dict[str, Any] = prune(card)
    return pruned


def _link(config: Mapping[str, Any], targets: Mapping[str, str]) -> dict[str, Any] | None:
    """A configured link; a ``target`` link only when that page exists for this patient."""
    link = dict(config)
    target = link.pop("target", None)
    if target is None:
        return link
    if target not in targets:
        return None
    link["url"] = targets[target]
    return link


def _source(rule: RuleConfig) -> dict[str, Any]:
    source = dict(rule.source)
    source["topic"] = {"system": RULE_TOPIC_SYSTEM, "code": rule.id, "display": rule.title}
    return source


def _suggestion(
    config: Mapping[str, Any],
    variables: Mapping[str, str],
    finding: Finding,
    patient_id: str,
    new_uuid: Callable[[], str],
) -> dict[str, Any] | None:
    actions: list[dict[str, Any]]
    if config["action"] == "remove-draft":
        actions = [
            {
                "type": "delete",
                "description": f"{config['description']}: {d.label}",
                "resourceId": d.reference,
            }
            for d in finding.drafts
            if d.id  # a draft without an id cannot be named in a delete action
        ]
        if not actions:
            return None
    else:
        resource = copy.deepcopy(dict(config["resource"]))
        resource.setdefault("status", "draft")
        resource.setdefault("intent", "proposal")
        resource["subject"] = {"reference": f"Patient/{patient_id}"}
        actions = [{"type": "create", "description": config["description"], "resource": resource}]
    suggestion: dict[str, Any] = {
        "label": Template(config["label"]).substitute(variables),
        "uuid": new_uuid(),
        "actions": actions,
    }
    if config["recommended"]:
        suggestion["isRecommended"] = True
    return suggestion


def _fit_summary(summary: str, rule_id: str) -> str:
    summary = " ".join(summary.split())
    if len(summary) <= SUMMARY_MAX:
        return summary
    log.warning("summary of %s exceeded %d characters and was shortened", rule_id, SUMMARY_MAX)
    return summary[: SUMMARY_MAX - 1].rstrip() + "…"


def _bullets(items: Any) -> str:
    return "\n".join(f"- {item}" for item in items)


def prune(value: Any) -> Any:
    """Drop None and empty members recursively: the spec forbids null and empty elements."""
    if isinstance(value, Mapping):
        pruned = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if not _empty(v)}
    if isinstance(value, list):
        items = [prune(v) for v in value]
        return [v for v in items if not _empty(v)]
    return value


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)
