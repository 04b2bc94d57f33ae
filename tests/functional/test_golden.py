"""Golden clinical scenarios: fixtures/fhir/<scenario>/request.json -> expected-cards.json.

Each scenario is POSTed to its service with the clock pinned to the scenario's ``now`` and
deterministic card/suggestion uuids; the response must equal expected-cards.json exactly.
``UPDATE_GOLDEN=1`` rewrites expected-cards.json instead, but only after the response has passed
the clinical expectation in scenario.json (rule, outcome, indicator, actions, detail text), so a
golden file can never be blessed with a wrong answer. See fixtures/fhir/README.md.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from string import Template
from typing import Any

import pytest
from flask import Flask

from cds_service.rules.registry import REGISTRY
from tests.scenarios import GOLDEN, load_build

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
RULE_TOPIC_SYSTEM = "urn:aih-cds:rule"


build = load_build()
SCENARIOS = [d.name for d in build.scenario_dirs(GOLDEN)]


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def parse_now(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def call_service(
    app_factory: Callable[..., Flask], directory: Path
) -> tuple[Flask, dict[str, Any]]:
    scenario = read(directory / "scenario.json")
    now = parse_now(scenario["now"])
    # demo off: golden files are what a production EHR gets (no links to demo pages)
    app = app_factory(clock=lambda: now, demo="off")
    response = app.test_client().post(
        f"/cds-services/{scenario['service']}", json=read(directory / "request.json")
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body, dict)
    return app, body


def template_regex(template: str) -> re.Pattern[str]:
    """A regex matching any rendering of a card template (variables may hold anything)."""
    marker = "\x00"
    identifiers = Template(template).get_identifiers()
    text = Template(template).substitute(dict.fromkeys(identifiers, marker)).strip()
    return re.compile(".*?".join(re.escape(part) for part in text.split(marker)), re.S)


def outcomes_matching(app: Flask, rule_id: str, detail: str) -> list[str]:
    rule = app.extensions["aih_cds"].config.rules[rule_id]
    return [
        name
        for name, outcome in rule.outcomes.items()
        if template_regex(outcome["detail"]).fullmatch(detail)
    ]


def action_keys(card: dict[str, Any]) -> list[str]:
    keys = []
    for suggestion in card.get("suggestions", ()):
        for action in suggestion["actions"]:
            target = action.get("resourceId") or action.get("resource", {}).get("resourceType")
            keys.append(f"{action['type']} {target}")
    return sorted(keys)


def expectations(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    """``expect`` is null (no card), one expectation, or a list of them (one card each; cards
    are matched to expectations by rule)."""
    expect = scenario["expect"]
    if expect is None:
        return []
    return list(expect) if isinstance(expect, list) else [expect]


def expectation_problems(
    app: Flask, scenario: dict[str, Any], request: dict[str, Any], body: dict[str, Any]
) -> list[str]:
    """Why the response does not say what scenario.json's ``expect`` says (empty: it agrees)."""
    expected = expectations(scenario)
    cards = body["cards"]
    if not expected:
        return [] if cards == [] else [f"expected no card, got {len(cards)}: {cards}"]
    if len(cards) != len(expected):
        return [f"expected {len(expected)} card(s), got {len(cards)}"]
    problems = []
    for expect in expected:  # matched by rule: the order of cards is not part of the contract
        matching = [c for c in cards if _topic(c) == (RULE_TOPIC_SYSTEM, expect["rule"])]
        if len(matching) != 1:
            problems.append(f"expected one card of rule {expect['rule']}, got {len(matching)}")
            continue
        problems += card_problems(app, expect, request, matching[0])
    return problems


def _topic(card: dict[str, Any]) -> tuple[Any, Any]:
    topic = card.get("source", {}).get("topic", {})
    return topic.get("system"), topic.get("code")


def card_problems(
    app: Flask, expect: dict[str, Any], request: dict[str, Any], card: dict[str, Any]
) -> list[str]:
    """Why one card does not say what its expectation says."""
    problems = []
    if card["indicator"] != expect["indicator"]:
        problems.append(f"indicator {card['indicator']!r}, expected {expect['indicator']!r}")
    matched = outcomes_matching(app, expect["rule"], card["detail"])
    if matched != [expect["outcome"]]:
        problems.append(f"detail matches outcome(s) {matched}, expected {expect['outcome']!r}")
    configured = app.extensions["aih_cds"].config.rules[expect["rule"]].outcomes
    if configured[expect["outcome"]]["indicator"] != expect["indicator"]:
        problems.append(
            f"cards/ gives outcome {expect['outcome']!r} the indicator "
            f"{configured[expect['outcome']]['indicator']!r}, scenario expects "
            f"{expect['indicator']!r}"
        )
    actions = action_keys(card)
    if actions != sorted(expect.get("actions", ())):
        problems.append(f"suggestion actions {actions}, expected {expect.get('actions', [])}")
    for part in ("summary", "detail"):
        problems += [
            f"{part} does not contain {text!r}"
            for text in expect.get(f"{part}_contains", ())
            if text not in card[part]
        ]
    patient_reference = f"Patient/{request['context']['patientId']}"
    for suggestion in card.get("suggestions", ()):
        for action in suggestion["actions"]:
            subject = action.get("resource", {}).get("subject", {}).get("reference")
            if subject not in (None, patient_reference):
                problems.append(f"suggested resource is about {subject}, not {patient_reference}")
    return problems + card_shape_problems(card)


def card_shape_problems(card: dict[str, Any]) -> list[str]:
    """the clinical specification 'What every card must satisfy', the parts a machine can check."""
    problems = []
    if not card.get("uuid"):
        problems.append("card has no uuid")
    if len(card["summary"]) >= 140:
        problems.append("summary is 140 characters or longer")
    if card["indicator"] in {"warning", "critical"} and not card.get("overrideReasons"):
        problems.append("warning/critical card without overrideReasons")
    if any("display" not in reason for reason in card.get("overrideReasons", ())):
        problems.append("override reason without display")
    if card.get("suggestions"):
        if "selectionBehavior" not in card:
            problems.append("suggestions without selectionBehavior")
        if any(not s.get("uuid") for s in card["suggestions"]):
            problems.append("suggestion without uuid")
    if "**Missing or assumed data**" not in card["detail"]:
        problems.append("detail does not say what was missing or assumed")
    return problems


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden_scenario(app_factory: Callable[..., Flask], name: str) -> None:
    directory = GOLDEN / name
    scenario = read(directory / "scenario.json")
    request = read(directory / "request.json")
    app, body = call_service(app_factory, directory)

    problems = expectation_problems(app, scenario, request, body)
    known_issue = scenario.get("known_issue")
    if known_issue:
        assert not (directory / "expected-cards.json").exists(), (
            f"{name} has a known_issue: its expected-cards.json would bless a wrong answer"
        )
        if problems:
            pytest.xfail(f"known issue: {known_issue} ({'; '.join(problems)})")
        pytest.fail(
            f"{name}: the known issue appears fixed; remove known_issue from scenario.json and "
            "regenerate with UPDATE_GOLDEN=1"
        )
    assert not problems, (
        f"{name}: the service's answer disagrees with scenario.json's expect "
        f"(golden file NOT written):\n- "
        + "\n- ".join(problems)
        + "\n"
        + json.dumps(body, indent=2)
    )

    target = directory / "expected-cards.json"
    if UPDATE:
        target.write_text(build.dump_json(body), encoding="utf-8")
        return
    assert target.is_file(), f"{target} missing: run UPDATE_GOLDEN=1 .venv/bin/pytest {__file__}"
    assert body == read(target)


@pytest.mark.parametrize("name", SCENARIOS)
def test_request_is_generated(name: str) -> None:
    """request.json is exactly what build.py makes from bundle.json and draft.json."""
    directory = GOLDEN / name
    expected = build.build_request(directory, build.load_services())
    assert read(directory / "request.json") == expected, (
        f"{name}/request.json is stale or hand-edited: run .venv/bin/python fixtures/fhir/build.py"
    )


def test_scenarios_cover_the_brief() -> None:
    """The scenario set must keep covering every outcome, both order hooks and the no-card path."""
    scenarios = [read(GOLDEN / n / "scenario.json") for n in SCENARIOS]
    covered = {(e["rule"], e["outcome"]) for s in scenarios for e in expectations(s)}
    config = build.load_configuration(build.DEFAULT_CARDS_DIR, build.REGISTRY)
    every_outcome = {
        (rid, name)
        for rid, rule in config.rules.items()
        for name, outcome in rule.outcomes.items()
        if outcome["enabled"]  # a disabled outcome issues no card to show
    }
    assert every_outcome - covered == set(), "add a golden scenario for these (rule, outcome)"
    assert any(s["expect"] is None for s in scenarios)
    assert {s["service"] for s in scenarios} == set(config.services)
    assert len(SCENARIOS) >= 16


def test_every_rule_has_scenarios_with_and_without_a_card() -> None:
    """Each rule's golden scenarios (by name prefix) include one without any card."""
    prefixes = {
        "mmf-": "mmf-teratogenicity",
        "aih-": "aih-refractory",
        "tnf-": "anti-tnf-liver-injury",
        "thio-": "thiopurine-metabolites",
        "tpmt-": "tpmt-before-thiopurine",
        "allo-": "allopurinol-thiopurine",
        "bud-": "budesonide-cirrhosis",
    }
    assert set(prefixes.values()) <= set(REGISTRY)
    for prefix in prefixes:
        named = [n for n in SCENARIOS if n.startswith(prefix)]
        assert any(read(GOLDEN / n / "scenario.json")["expect"] is None for n in named), prefix
