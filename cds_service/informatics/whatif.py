"""What-if: run the same patients under two configurations and list the cards that change.

Inputs are the golden scenarios (each built under each configuration from its chart, so changed
prefetch templates are honoured), plus directories of hook requests or patient Bundles (a site's
test-patient export). A card is identified by (input, service, rule); a change is a card that
appears, disappears, changes indicator, outcome, mode (active: shown; silent: logged only, so
clinicians stop or start seeing it) or text (summary or detail), or an input one configuration
cannot answer (an error, e.g. a 412 because a new rule needs data the prefetch does not carry).
Rules whose mode, enabled flag or parameters differ are listed too, whether or not an input
shows a card for them.
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

from cds_service.common.errors import ServiceError
from cds_service.config.configuration import Configuration, ServiceConfig
from cds_service.fhir.client import FetchLimits, FhirFetcher
from cds_service.hooks.engine import Engine
from cds_service.informatics.charts import (
    Chart,
    charts_in_bundle,
    load_scenario,
    scenario_dirs,
    stable_hook_instance,
)

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
    mode: str = "active"
    detail: str = ""


@dataclass
class Answer:
    cards: dict[str, CardKey] = field(default_factory=dict)  # by rule id
    error: str | None = None


@dataclass(frozen=True)
class Change:
    input: str
    service: str
    rule: str
    # appeared | disappeared | indicator-changed | outcome-changed | mode-changed | text-changed
    # | error
    change: str
    current: str
    proposed: str


@dataclass(frozen=True)
class RuleChange:
    """A rule-level difference between the two configurations."""

    rule: str
    field: str  # mode | enabled | parameter name | "rule" (added or removed)
    current: str
    proposed: str


@dataclass
class Report:
    current_dir: str
    proposed_dir: str
    inputs: int
    calls: int
    changes: list[Change]
    rule_changes: list[RuleChange] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.rule_changes)

    def as_json(self) -> dict[str, Any]:
        return {
            "current": self.current_dir,
            "proposed": self.proposed_dir,
            "inputs": self.inputs,
            "calls": self.calls,
            "changed": len(self.changes),
            "changes": [asdict(c) for c in self.changes],
            "rule_changes": [asdict(c) for c in self.rule_changes],
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
        rule_changes(current, proposed),
    )


def rule_changes(current: Configuration, proposed: Configuration) -> list[RuleChange]:
    found: list[RuleChange] = []
    for rule_id in sorted(current.rules.keys() | proposed.rules.keys()):
        old, new = current.rules.get(rule_id), proposed.rules.get(rule_id)
        if old is None or new is None:
            found.append(
                RuleChange(
                    rule_id,
                    "rule",
                    "absent" if old is None else "present",
                    "absent" if new is None else "present",
                )
            )
            continue
        if old.mode != new.mode:
            found.append(RuleChange(rule_id, "mode", old.mode, new.mode))
        if old.enabled != new.enabled:
            found.append(RuleChange(rule_id, "enabled", str(old.enabled), str(new.enabled)))
        for name in sorted(old.params.keys() | new.params.keys()):
            before, after = old.params.get(name), new.params.get(name)
            if before != after:
                found.append(RuleChange(rule_id, name, _short(before), _short(after)))
    return found


def _short(value: Any, width: int = 60) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


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
            issued.rule_id,
            issued.outcome,
            str(issued.card["indicator"]),
            issued.card["summary"],
            issued.mode,
            str(issued.card.get("detail", "")),
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
        else:
            changes += _card_changes(name, service, old, new)
    return changes


def _card_changes(name: str, service: str, old: CardKey, new: CardKey) -> list[Change]:
    """Indicator or outcome, then mode, then text: each difference is one row."""
    changes = []
    if (old.outcome, old.indicator) != (new.outcome, new.indicator):
        kind = "indicator-changed" if old.indicator != new.indicator else "outcome-changed"
        changes.append(Change(name, service, old.rule, kind, _label(old), _label(new)))
    if old.mode != new.mode:
        changes.append(Change(name, service, old.rule, "mode-changed", old.mode, new.mode))
    elif old.outcome == new.outcome and (old.summary, old.detail) != (new.summary, new.detail):
        current, proposed = first_difference(old, new)
        changes.append(Change(name, service, old.rule, "text-changed", current, proposed))
    return changes


def first_difference(old: CardKey, new: CardKey, width: int = 60) -> tuple[str, str]:
    """The first line of summary + detail that differs, cut to ``width`` around the change."""
    old_lines = [old.summary, *old.detail.splitlines()]
    new_lines = [new.summary, *new.detail.splitlines()]
    for index, (before, after) in enumerate(
        itertools.zip_longest(old_lines, new_lines, fillvalue="")
    ):
        if before != after:
            where = "summary" if index == 0 else f"detail line {index}"
            start = next(
                (i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b),
                min(len(before), len(after)),
            )
            start = max(0, start - 10)
            lead = "…" if start else ""
            return (
                f"{where}: {lead + _short(before[start:].lstrip(), width) if before else '(none)'}",
                f"{where}: {lead + _short(after[start:].lstrip(), width) if after else '(none)'}",
            )
    return "-", "-"  # pragma: no cover - called only when the texts differ


def _label(card: CardKey | None) -> str:
    if card is None:
        return "-"
    return f"{card.indicator} {card.outcome}" + (" (silent)" if card.mode == "silent" else "")


def format_table(report: Report) -> str:
    header = ("input", "service", "rule", "change", "current", "proposed")
    rows = [(c.input, c.service, c.rule, c.change, c.current, c.proposed) for c in report.changes]
    summary = (
        f"{report.inputs} inputs, {report.calls} service calls per configuration: "
        f"{len(report.changes)} card change(s), {len(report.rule_changes)} rule setting change(s)\n"
        f"current:  {report.current_dir}\nproposed: {report.proposed_dir}"
    )
    blocks = [summary]
    if report.rule_changes:
        settings = [(c.rule, c.field, c.current, c.proposed) for c in report.rule_changes]
        blocks.append(_table(("rule", "setting", "current", "proposed"), settings))
        if any(c.field == "mode" and c.proposed == "silent" for c in report.rule_changes):
            blocks.append(
                "A rule switched to silent: its cards are logged but clinicians no longer see them."
            )
    if rows:
        blocks.append(_table(header, rows))
    else:
        blocks.append("No card appears, disappears or changes indicator, outcome, mode or text.")
    return "\n\n".join(blocks)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, tuple("-" * w for w in widths), *rows)
    )


def parse_instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _sibling_now(path: Path) -> datetime | None:
    """A request.json beside a scenario.json is evaluated at the scenario's pinned instant."""
    scenario = path.parent / "scenario.json"
    if path.name != "request.json" or not scenario.is_file():
        return None
    return parse_instant(json.loads(scenario.read_text(encoding="utf-8"))["now"])
