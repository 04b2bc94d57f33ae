"""Shared helpers for the conformance tests: material loading and the CDS Hooks 2.0 checkers.

The checkers return lists of human-readable violations (empty = conformant) so a failing test
shows every problem at once. Two layers:

- ``response_violations`` / ``card_violations``: what CDS Hooks 2.0 itself requires of a CDS
  Service response (field tables of the spec plus the FSH invariants cds-resp-1..6). Known-valid
  third-party cards must pass it; known-bad ones must fail it.
- ``policy_violations``: what this service promises on top (uuids everywhere for feedback, rule
  topic coding, override reasons on every warning/critical card, FHIR-valid suggested resources).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import MATERIAL

SPEC_EXAMPLES = "HL7-cds-hooks/extracted-examples/v2.0.1/index"
LIBRARY_EXAMPLES = "HL7-cds-hooks-library/extracted-examples/v1.0.1"
AHRQ_FIXTURES = "AHRQ-CDS-Connect-CQL-SERVICES/test/fixtures"
HAPI_RESOURCES = "hapi-fhir/hapi-fhir-server-cds-hooks/src/test/resources"
REQUIREMENTS = "davinci-crd-test-kit/derived/cds-hooks-2.0-and-library-requirements.json"

RULE_TOPIC_SYSTEM = "urn:aih-cds:rule"
INDICATORS = frozenset({"info", "warning", "critical"})
SELECTION_BEHAVIORS = frozenset({"at-most-one", "any"})
ACTION_TYPES = frozenset({"create", "update", "delete"})
LINK_TYPES = frozenset({"absolute", "smart"})
RESPONSE_MEMBERS = frozenset({"cards", "systemActions", "extension"})
_RELATIVE_REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")


def load_material(relative: str) -> Any:
    """A JSON file of tests/material, parsed fresh (callers may mutate the result)."""
    return json.loads((MATERIAL / relative).read_text(encoding="utf-8"))


def spec_example(prefix: str) -> Any:
    """A spec example by its number prefix, e.g. ``"02"`` or ``"25b"``."""
    matches = sorted((MATERIAL / SPEC_EXAMPLES).glob(f"{prefix}-*.json"))
    assert len(matches) == 1, f"expected one spec example {prefix}-*.json, found {matches}"
    return json.loads(matches[0].read_text(encoding="utf-8"))


# ------------------------------------------------------------------------ generic JSON rules


def empty_members(value: Any, path: str = "$") -> list[str]:
    """Paths of members that are null, "", [] or {} (spec "Use of JSON")."""
    found: list[str] = []
    if value is None or (isinstance(value, str | list | dict) and len(value) == 0):
        found.append(path)
    if isinstance(value, Mapping):
        for key, item in value.items():
            found.extend(empty_members(item, f"{path}.{key}"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(empty_members(item, f"{path}[{index}]"))
    return found


def is_absolute_url(value: Any) -> bool:
    if not isinstance(value, str) or value != value.strip():
        return False
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def _nonempty_string(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


# ------------------------------------------------------------------------ spec layer


def response_violations(body: Any) -> list[str]:
    """Violations of the CDS Hooks 2.0 service response rules (HTTP 200 body)."""
    if not isinstance(body, Mapping):
        return ["response body is not a JSON object"]
    problems: list[str] = []
    unknown = set(body) - RESPONSE_MEMBERS
    if unknown:
        problems.append(f"$: unexpected members {sorted(unknown)}")
    cards = body.get("cards")
    if not isinstance(cards, list):
        problems.append("$.cards: REQUIRED array is missing or not an array")
        cards = []
    for index, card in enumerate(cards):
        problems.extend(card_violations(card, f"$.cards[{index}]"))
    if "systemActions" in body:
        actions = body["systemActions"]
        if not isinstance(actions, list):
            problems.append("$.systemActions: must be an array")
        else:
            for index, action in enumerate(actions):
                problems.extend(action_violations(action, f"$.systemActions[{index}]"))
    if "extension" in body and not isinstance(body["extension"], Mapping):
        problems.append("$.extension: must be a JSON object")
    problems.extend(_duplicate_uuids(cards))
    # "cards": [] is the one empty member the spec allows.
    problems.extend(
        f"{path}: null or empty member" for path in empty_members(body) if path != "$.cards"
    )
    return problems


def _duplicate_uuids(cards: list[Any]) -> list[str]:
    """Card and suggestion uuids are optional, but those given must identify one thing."""
    seen: dict[str, str] = {}
    problems = []
    for index, card in enumerate(cards):
        if not isinstance(card, Mapping):
            continue
        owners = [(f"$.cards[{index}]", card)]
        suggestions = card.get("suggestions")
        if isinstance(suggestions, list):
            owners += [
                (f"$.cards[{index}].suggestions[{sindex}]", suggestion)
                for sindex, suggestion in enumerate(suggestions)
                if isinstance(suggestion, Mapping)
            ]
        for where, owner in owners:
            uuid = owner.get("uuid")
            if isinstance(uuid, str) and uuid in seen:
                problems.append(f"{where}.uuid: {uuid!r} is not unique (also {seen[uuid]})")
            elif isinstance(uuid, str):
                seen[uuid] = where
    return problems


def card_violations(card: Any, where: str = "card") -> list[str]:  # noqa: PLR0915
    if not isinstance(card, Mapping):
        return [f"{where}: card is not a JSON object"]
    problems: list[str] = []
    if "uuid" in card and not _nonempty_string(card["uuid"]):
        problems.append(f"{where}.uuid: must be a string")
    summary = card.get("summary")
    if not _nonempty_string(summary):
        problems.append(f"{where}.summary: REQUIRED string is missing")
    elif len(summary) >= 140:
        problems.append(f"{where}.summary: {len(summary)} characters, must be < 140")
    if "detail" in card and not _nonempty_string(card["detail"]):
        problems.append(f"{where}.detail: must be a (Markdown) string")
    if card.get("indicator") not in INDICATORS:
        problems.append(f"{where}.indicator: {card.get('indicator')!r} not in {sorted(INDICATORS)}")
    problems.extend(_source_violations(card.get("source"), f"{where}.source"))

    suggestions = card.get("suggestions")
    behavior = card.get("selectionBehavior")
    if "selectionBehavior" in card and behavior not in SELECTION_BEHAVIORS:
        problems.append(f"{where}.selectionBehavior: {behavior!r} not in at-most-one/any")
    if suggestions is not None:
        if not isinstance(suggestions, list):
            problems.append(f"{where}.suggestions: must be an array")
            suggestions = []
        if suggestions and "selectionBehavior" not in card:
            problems.append(f"{where}: cds-resp-6 suggestions present without selectionBehavior")
        recommended = 0
        for index, suggestion in enumerate(suggestions):
            spath = f"{where}.suggestions[{index}]"
            if not isinstance(suggestion, Mapping):
                problems.append(f"{spath}: suggestion is not a JSON object")
                continue
            if not _nonempty_string(suggestion.get("label")):
                problems.append(f"{spath}.label: REQUIRED string is missing")
            if "uuid" in suggestion and not _nonempty_string(suggestion["uuid"]):
                problems.append(f"{spath}.uuid: must be a string")
            if "isRecommended" in suggestion:
                if not isinstance(suggestion["isRecommended"], bool):
                    problems.append(f"{spath}.isRecommended: must be a boolean")
                elif suggestion["isRecommended"]:
                    recommended += 1
            actions = suggestion.get("actions")
            if actions is not None:
                if not isinstance(actions, list):
                    problems.append(f"{spath}.actions: must be an array")
                else:
                    for aindex, action in enumerate(actions):
                        problems.extend(action_violations(action, f"{spath}.actions[{aindex}]"))
        if behavior == "at-most-one" and recommended > 1:
            problems.append(
                f"{where}: cds-resp-1 at-most-one card with {recommended} isRecommended suggestions"
            )

    reasons = card.get("overrideReasons")
    if reasons is not None:
        if not isinstance(reasons, list):
            problems.append(f"{where}.overrideReasons: must be an array of Coding")
        else:
            for index, reason in enumerate(reasons):
                problems.extend(
                    coding_violations(
                        reason, f"{where}.overrideReasons[{index}]", display_required=True
                    )
                )

    links = card.get("links")
    if links is not None:
        if not isinstance(links, list):
            problems.append(f"{where}.links: must be an array")
        else:
            for index, link in enumerate(links):
                problems.extend(_link_violations(link, f"{where}.links[{index}]"))
    if "extension" in card and not isinstance(card["extension"], Mapping):
        problems.append(f"{where}.extension: must be a JSON object")
    return problems


def _source_violations(source: Any, where: str) -> list[str]:
    if not isinstance(source, Mapping):
        return [f"{where}: REQUIRED Source object is missing"]
    problems: list[str] = []
    if not _nonempty_string(source.get("label")):
        problems.append(f"{where}.label: REQUIRED string is missing")
    for member in ("url", "icon"):
        if member in source and not is_absolute_url(source[member]):
            problems.append(f"{where}.{member}: {source[member]!r} is not an absolute URL")
    if "topic" in source:
        problems.extend(coding_violations(source["topic"], f"{where}.topic"))
    return problems


def coding_violations(coding: Any, where: str, *, display_required: bool = False) -> list[str]:
    if not isinstance(coding, Mapping):
        return [f"{where}: Coding is not a JSON object"]
    problems = [
        f"{where}.{member}: REQUIRED string is missing"
        for member in ("system", "code")
        if not _nonempty_string(coding.get(member))
    ]
    if display_required and not _nonempty_string(coding.get("display")):
        problems.append(f"{where}.display: cds-resp-4 override reason without display")
    elif "display" in coding and not _nonempty_string(coding["display"]):
        problems.append(f"{where}.display: must be a string")
    return problems


def action_violations(action: Any, where: str) -> list[str]:
    if not isinstance(action, Mapping):
        return [f"{where}: Action is not a JSON object"]
    problems: list[str] = []
    kind = action.get("type")
    if kind not in ACTION_TYPES:
        problems.append(f"{where}.type: {kind!r} not in create/update/delete")
    if not _nonempty_string(action.get("description")):
        problems.append(f"{where}.description: cds-resp-5 REQUIRED string is missing")
    resource = action.get("resource")
    if kind in {"create", "update"}:
        if not isinstance(resource, Mapping) or not _nonempty_string(resource.get("resourceType")):
            problems.append(f"{where}.resource: {kind} needs a FHIR resource")
        if kind == "update" and isinstance(resource, Mapping) and "id" not in resource:
            problems.append(f"{where}.resource: update must carry the whole resource with its id")
    if kind == "delete":
        if "resource" in action:
            problems.append(f"{where}.resource: cds-resp-2 delete must not carry a resource")
        reference = action.get("resourceId")
        if not isinstance(reference, str) or not _RELATIVE_REFERENCE.match(reference):
            problems.append(f"{where}.resourceId: delete needs a relative reference Type/id")
    elif "resourceId" in action and not _nonempty_string(action["resourceId"]):
        problems.append(f"{where}.resourceId: must be a string")
    return problems


def _link_violations(link: Any, where: str) -> list[str]:
    if not isinstance(link, Mapping):
        return [f"{where}: Link is not a JSON object"]
    problems: list[str] = []
    if not _nonempty_string(link.get("label")):
        problems.append(f"{where}.label: REQUIRED string is missing")
    if not is_absolute_url(link.get("url")):
        problems.append(f"{where}.url: {link.get('url')!r} is not an absolute URL")
    if link.get("type") not in LINK_TYPES:
        problems.append(f"{where}.type: {link.get('type')!r} not in absolute/smart")
    if "appContext" in link:
        if link.get("type") != "smart":
            problems.append(f"{where}.appContext: cds-resp-3 appContext on a non-smart link")
        if not isinstance(link["appContext"], str):
            problems.append(f"{where}.appContext: must be a string")
    if "autolaunchable" in link and not isinstance(link["autolaunchable"], bool):
        problems.append(f"{where}.autolaunchable: must be a boolean")
    return problems


# ------------------------------------------------------------------------ service policy layer


def policy_violations(body: Mapping[str, Any], rule_ids: Iterable[str]) -> list[str]:
    """What this service promises beyond the spec (see module docstring)."""
    from cds_service.fhir.validation import validation_problem  # the service's own R4B models

    rules = set(rule_ids)
    problems: list[str] = []
    for index, card in enumerate(body.get("cards") or ()):
        where = f"$.cards[{index}]"
        if not _nonempty_string(card.get("uuid")):
            problems.append(f"{where}.uuid: missing (feedback needs it)")
        topic = (card.get("source") or {}).get("topic") or {}
        if topic.get("system") != RULE_TOPIC_SYSTEM or topic.get("code") not in rules:
            problems.append(f"{where}.source.topic: {topic!r} does not name one of {sorted(rules)}")
        if card.get("indicator") in {"warning", "critical"} and not card.get("overrideReasons"):
            problems.append(f"{where}: {card.get('indicator')} card without overrideReasons")
        for sindex, suggestion in enumerate(card.get("suggestions") or ()):
            spath = f"{where}.suggestions[{sindex}]"
            if not _nonempty_string(suggestion.get("uuid")):
                problems.append(f"{spath}.uuid: missing (acceptedSuggestions needs it)")
            if not suggestion.get("actions"):
                problems.append(f"{spath}.actions: a suggestion without actions does nothing")
            for aindex, action in enumerate(suggestion.get("actions") or ()):
                resource = action.get("resource")
                if isinstance(resource, Mapping):
                    problem = validation_problem(resource)
                    if problem:
                        problems.append(f"{spath}.actions[{aindex}].resource: not R4: {problem}")
    return problems


def all_violations(body: Any, rule_ids: Iterable[str]) -> list[str]:
    problems = response_violations(body)
    if isinstance(body, Mapping) and not problems:
        problems = policy_violations(body, rule_ids)
    return problems


def uuids_of(body: Mapping[str, Any]) -> list[str]:
    found = []
    for card in body.get("cards") or ():
        found.append(card.get("uuid"))
        found.extend(s.get("uuid") for s in card.get("suggestions") or ())
    return found


def deep(value: Any) -> Any:
    return copy.deepcopy(value)


# ------------------------------------------------------------------------ error bodies


def assert_operation_outcome(response: Any, status: int, *, names: str | None = None) -> None:
    """``response`` has ``status`` and an OperationOutcome body whose first issue's expression
    contains ``names`` (the offending field)."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype in {"application/json", "application/fhir+json"}
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"], body
    issue = body["issue"][0]
    assert issue["severity"] in {"error", "fatal"}
    assert _nonempty_string(issue.get("code"))
    assert _nonempty_string(issue.get("diagnostics"))
    if names is not None:
        expressions = " ".join(issue.get("expression") or ())
        assert names in expressions, issue
