"""Findings + rule configuration -> CDS Hooks 2.0 cards, serialised to the spec by our own code."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from string import Template
from typing import Any

from cds_service.config.card_template import escape_value, plain_value, shorten_at_word
from cds_service.config.configuration import SUGGESTION_SHAPES, RuleConfig
from cds_service.config.evidence import Source
from cds_service.rules.base import Finding

log = logging.getLogger(__name__)

RULE_TOPIC_SYSTEM = "urn:aih-cds:rule"
SUMMARY_MAX = 139  # the spec says "<140 characters"
OVERRIDE_INDICATORS = frozenset({"warning", "critical"})
NO_GAPS = "- none: all data the rule reads was available"
EVIDENCE_LINK_LABEL = "Evidence and background for this card"


def render_card(
    finding: Finding,
    rule: RuleConfig,
    *,
    patient_id: str,
    data_gaps: Sequence[str],
    new_uuid: Callable[[], str],
    link_targets: Mapping[str, str] | None = None,
    sources: Mapping[str, Source] | None = None,
    evidence_url: str | None = None,
) -> dict[str, Any] | None:
    """The card for a finding, or None when its outcome is switched off in configuration.

    Every value the rule found is escaped for Markdown and HTML (it may hold FHIR free text);
    the configured text around it is trusted. ``evidence_url`` is the rule's evidence page
    (``GET /evidence/<rule-id>``): the card's ``source.url`` and its first link."""
    outcome = rule.outcomes[finding.outcome]
    if not outcome["enabled"]:
        return None
    variables = _variables(finding, rule, escape_value)
    plain = _variables(finding, rule, plain_value)
    variables["evidence"] = evidence_line(rule, outcome.get("cites"), sources or {})
    gaps = [escape_value(gap) for gap in (*finding.gaps, *data_gaps)]
    variables["data_gaps"] = _bullets(gaps) or NO_GAPS
    card: dict[str, Any] = {
        "uuid": new_uuid(),
        "summary": fit_summary(outcome["summary"], plain, rule.id),
        "detail": Template(outcome["detail"]).substitute(variables).strip(),
        "indicator": outcome["indicator"],
        "source": _source(rule, evidence_url),
    }
    suggestions = [
        _suggestion(rule.suggestions[sid], plain, finding, patient_id, new_uuid)
        for sid in outcome["suggestions"]
        if finding.applicable_suggestions is None or sid in finding.applicable_suggestions
    ]
    suggestions = [s for s in suggestions if s is not None]
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = outcome["selection_behavior"]
    if outcome["indicator"] in OVERRIDE_INDICATORS:
        fitting = outcome.get("override_reasons")
        card["overrideReasons"] = [
            dict(reason)
            for reason in rule.override_reasons
            if fitting is None or reason["code"] in fitting
        ]
    links = [{"label": EVIDENCE_LINK_LABEL, "url": evidence_url, "type": "absolute"}]
    links = links if evidence_url else []
    links += [
        link
        for lid in outcome["links"]
        if (link := _link(rule.links[lid], link_targets or {})) is not None
    ]
    if links:
        card["links"] = links
    pruned: dict[str, Any] = prune(card)
    return pruned


def _variables(finding: Finding, rule: RuleConfig, escape: Callable[[str], str]) -> dict[str, str]:
    """The finding's values escaped, then each phrase variable replaced by its configured text."""
    variables = {name: escape(value) for name, value in finding.variables.items()}
    for name, choices in rule.phrases.items():
        if name in variables:
            chosen = choices.get(finding.variables[name], "")
            variables[name] = Template(chosen).substitute(variables).strip()
    return variables


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


def evidence_line(
    rule: RuleConfig, cites: Sequence[str] | None, sources: Mapping[str, Source]
) -> str:
    """``${evidence}``: short citations ("Pape et al., J Hepatol 2022") of the sources the
    outcome's text cites, else of all the rule's sources."""
    keys = cites or [e["key"] for e in rule.evidence]
    return "; ".join(sources[k].short for k in keys if k in sources) or "none listed"


def _source(rule: RuleConfig, evidence_url: str | None) -> dict[str, Any]:
    source = dict(rule.source)
    if evidence_url and "url" not in source:
        source["url"] = evidence_url
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
        resource = json_copy(dict(config["resource"]))
        resource.update(SUGGESTION_SHAPES.get(resource["resourceType"], {}))
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


def fit_summary(template: str, variables: Mapping[str, str], rule_id: str) -> str:
    """The summary within the spec's limit. When values make it too long, the longest value
    (usually a drug name) is shortened at a word boundary, never the configured wording."""
    values = {k: " ".join(v.split()) for k, v in variables.items()}
    summary = " ".join(Template(template).substitute(values).split())
    if len(summary) <= SUMMARY_MAX:
        return summary
    log.warning("summary of %s exceeded %d characters and was shortened", rule_id, SUMMARY_MAX)
    used = [n for n in Template(template).get_identifiers() if values.get(n)]
    while len(summary) > SUMMARY_MAX and used:
        longest = max(used, key=lambda n: len(values[n]))
        room = len(values[longest]) - (len(summary) - SUMMARY_MAX)
        values[longest] = shorten_at_word(values[longest], max(room, 12))
        used.remove(longest)
        summary = " ".join(Template(template).substitute(values).split())
    return shorten_at_word(summary, SUMMARY_MAX)


def _bullets(items: Any) -> str:
    return "\n".join(f"- {item}" for item in items)


def prune(value: Any) -> Any:
    """Drop None and empty members recursively: the spec forbids null and empty elements.

    One pass per container, and no call for a string member (most members are): a card is
    mostly configured text, pruned on every call (tests/property/test_card_properties.py holds
    this to the plain recursive definition)."""
    if isinstance(value, dict | Mapping):
        kept: dict[Any, Any] = {}
        for key, member in value.items():
            if type(member) is not str:
                member = prune(member)  # noqa: PLW2901 - the member as it is kept
            if not _empty(member):
                kept[key] = member
        return kept
    if isinstance(value, list):
        items = []
        for member in value:
            if type(member) is not str:
                member = prune(member)  # noqa: PLW2901
            if not _empty(member):
                items.append(member)
        return items
    return value


def json_copy(value: Any) -> Any:
    """A copy of configured JSON that no card shares with another: what ``copy.deepcopy``
    gives for dicts, lists and immutable scalars, without its memo (several times faster)."""
    if isinstance(value, dict | Mapping):
        return {key: json_copy(member) for key, member in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(json_copy(member) for member in value)
    return value  # str, int, float, bool, None: immutable


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)
