"""What-if: run the same patients under two configurations and list the cards that change.

Inputs are the golden scenarios (each built under each configuration from its chart, so changed
prefetch templates are honoured), plus directories of hook requests or patient Bundles (a site's
test-patient export). A card is identified by (input, service, rule); a change is a card that
appears, disappears, changes indicator or changes outcome, or an input one configuration cannot
answer (an error, e.g. a 412 because a new rule needs data the prefetch does not carry).
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cds_service.charts import (
    Chart,
    charts_in_bundle,
    load_scenario,
    scenario_dirs,
    stable_hook_instance,
)
from cds_service.configuration import Configuration, ServiceConfig
from cds_service.engine import Engine
from cds_service.errors import ServiceError
from cds_service.fhir_client import FetchLimits, FhirFetcher

WHATIF_USER = "Practitioner/whatif"


@dataclass(frozen=True)
class Case:
    """One input. ``request`` is fixed; otherwise the chart is turned into a request per service."""

    name: str
    now: datetime
    chart: Chart | None = None
    service_id: str | None = None  # a scenario names its service; otherwise every fitting one
    request: dict[str, Any] | None = None

    def calls(self, config: Configuration) -> Iterator[tuple[ServiceConfig, dict[str, Any]]]:
        for service in config.services.values():
            if self.service_id is not None and service.id != self.service_id:
                continue
            if self.request is not None:
                if self.request.get("hook") == service.hook:
                    yield service, self.request
            elif self.chart is not None and (service.hook == "patient-view" or self.chart.drafts):
                yield (
                    service,
                    self.chart.hook_request(
                        service, hook_instance=stable_hook_instance(self.name), user_id=WHATIF_USER
                    ),
                )


@dataclass(frozen=True)
class CardKey:
    rule: str
    outcome: str
    indicator: str
    summary: str


@dataclass
class Answer:
    cards: dict[str, CardKey] = field(default_factory=dict)  # by rule id
    error: str | None = None


@dataclass(frozen=True)
class Change:
    input: str
    service: str
    rule: str
    change: str  # appeared | disappeared | indicator-changed | outcome-changed | error
    current: str
    proposed: str


@dataclass
class Report:
    current_dir: str
    proposed_dir: str
    inputs: int
    calls: int
    changes: list[Change]

    def as_json(self) -> dict[str, Any]:
        return {
            "current": self.current_dir,
            "proposed": self.proposed_dir,
            "inputs": self.inputs,
            "calls": self.calls,
            "changed": len(self.changes),
            "changes": [asdict(c) for c in self.changes],
        }


def scenario_cases(root: Path) -> list[Case]:
    cases = []
    for directory in scenario_dirs(root):
        scenario = load_scenario(directory)
        cases.append(
            Case(
                name=f"scenario:{scenario.name}",
                now=parse_instant(scenario.now),
                chart=scenario.chart,
                service_id=scenario.service_id,
            )
        )
    return cases


def directory_cases(directory: Path, now: datetime) -> list[Case]:
    """Every *.json below ``directory``: a hook request, or a Bundle of one or more patients."""
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    cases: list[Case] = []
    for path in sorted(directory.rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not valid JSON: {exc}") from exc
        name = str(path.relative_to(directory.parent))
        if isinstance(data, dict) and "hook" in data and "context" in data:
            cases.append(Case(name, _sibling_now(path) or now, request=data))
        elif isinstance(data, dict) and data.get("resourceType") == "Bundle":
            charts = charts_in_bundle(data)
            cases += [Case(f"{name}#{c.patient_id}", now, chart=c) for c in charts]
    return cases


class InputError(ValueError):
    """An input file cannot be read; the message names it."""


def compare(
    current: Configuration,
    proposed: Configuration,
    cases: Sequence[Case],
) -> Report:
    before = evaluate_all(current, cases)
    after = evaluate_all(proposed, cases)
    changes: list[Change] = []
    for key in sorted(before.keys() | after.keys()):
        changes += _diff(key, before.get(key, Answer()), after.get(key, Answer()))
    return Report(
        str(current.cards_dir),
        str(proposed.cards_dir),
        len(cases),
        len(before.keys() | after.keys()),
        changes,
    )


def evaluate_all(config: Configuration, cases: Sequence[Case]) -> dict[tuple[str, str], Answer]:
    instant: list[datetime] = [datetime.now(UTC)]
    counter = itertools.count(1)
    fetcher = FhirFetcher(FetchLimits(2.0, 10, 20_000_000))
    engine = Engine(config, fetcher, lambda: instant[0], lambda: str(uuid.UUID(int=next(counter))))
    answers: dict[tuple[str, str], Answer] = {}
    try:
        for case in cases:
            instant[0] = case.now
            for service, body in case.calls(config):
                answers[(case.name, service.id)] = _answer(engine.call, service.id, body)
    finally:
        fetcher.close()
    return answers


def _answer(call: Callable[[str, Any], Any], service_id: str, body: dict[str, Any]) -> Answer:
    try:
        evaluation = call(service_id, body)
    except ServiceError as exc:
        return Answer(error=f"HTTP {exc.status}: {exc}")
    answer = Answer()
    for issued in evaluation.cards:
        answer.cards[issued.rule_id] = CardKey(
            issued.rule_id, issued.outcome, str(issued.card["indicator"]), issued.card["summary"]
        )
    return answer


def _diff(key: tuple[str, str], before: Answer, after: Answer) -> list[Change]:
    name, service = key
    if before.error or after.error:
        if before.error == after.error:
            return []
        return [
            Change(name, service, "-", "error", before.error or "ok", after.error or "ok"),
        ]
    changes = []
    for rule in sorted(before.cards.keys() | after.cards.keys()):
        old, new = before.cards.get(rule), after.cards.get(rule)
        if old is None:
            changes.append(Change(name, service, rule, "appeared", "-", _label(new)))
        elif new is None:
            changes.append(Change(name, service, rule, "disappeared", _label(old), "-"))
        elif (old.outcome, old.indicator) != (new.outcome, new.indicator):
            kind = "indicator-changed" if old.indicator != new.indicator else "outcome-changed"
            changes.append(Change(name, service, rule, kind, _label(old), _label(new)))
    return changes


def _label(card: CardKey | None) -> str:
    return "-" if card is None else f"{card.indicator} {card.outcome}"


def format_table(report: Report) -> str:
    header = ("input", "service", "rule", "change", "current", "proposed")
    rows = [(c.input, c.service, c.rule, c.change, c.current, c.proposed) for c in report.changes]
    summary = (
        f"{report.inputs} inputs, {report.calls} service calls per configuration: "
        f"{len(report.changes)} card change(s)\n"
        f"current:  {report.current_dir}\nproposed: {report.proposed_dir}"
    )
    if not rows:
        return summary + "\nNo card appears, disappears or changes indicator."
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, tuple("-" * w for w in widths), *rows)
    ]
    return summary + "\n\n" + "\n".join(lines)


def parse_instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _sibling_now(path: Path) -> datetime | None:
    """A request.json beside a scenario.json is evaluated at the scenario's pinned instant."""
    scenario = path.parent / "scenario.json"
    if path.name != "request.json" or not scenario.is_file():
        return None
    return parse_instant(json.loads(scenario.read_text(encoding="utf-8"))["now"])
