"""Feedback analytics: how clinicians answer each rule's cards, from the card log and feedback.

Active and silent cards are counted apart: a silent card was logged but never shown, so it has
no answer and no rates, only a count. For active cards:

- response rate = cards with any feedback / cards issued (EHRs send feedback only when the
  clinician acts on a card, so many cards have none);
- override rate and acceptance rate = cards overridden (accepted) / cards with feedback, so a
  rule nobody answered has no rate ("-"), never "0 %".

Each rate comes with a 95 % Wilson score interval, which stays inside 0-1 and is honest about
small n (1 of 1 overridden reads 100 %, 95 % CI 21-100 %). Weeks are ISO weeks (Monday start,
UTC) of the card's issue time.

A report covers one client and tenant (the scope cards were issued to) when asked: the HTTP
endpoint always reports the caller's own scope only; the command line reads every scope unless
``--client``/``--tenant`` narrow it.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from cds_service.storage.scope import ClientScope
from cds_service.storage.store import CardLog, Feedback, Store, SuggestionLog, utc_naive

NO_REASON = "(no reason given)"
Z_95 = 1.959964  # two-sided 95 %
RATES = (
    "accepted",
    "overridden",
    "without_feedback",
    "response_rate",
    "response_rate_ci95",
    "acceptance_rate",
    "acceptance_rate_ci95",
    "override_rate",
    "override_rate_ci95",
)


@dataclass
class _Tally:
    issued: int = 0
    accepted: set[str] = field(default_factory=set)
    overridden: set[str] = field(default_factory=set)

    def as_json(self, mode: str) -> dict[str, Any]:
        answered = len(self.accepted | self.overridden)
        if mode == "silent":  # never shown: nobody could answer, so no rate means anything
            return {"issued": self.issued, "answered": answered} | dict.fromkeys(RATES)
        return {
            "issued": self.issued,
            "answered": answered,
            "accepted": len(self.accepted),
            "overridden": len(self.overridden),
            "without_feedback": self.issued - answered,
            "response_rate": _rate(answered, self.issued),
            "response_rate_ci95": wilson_interval(answered, self.issued),
            "acceptance_rate": _rate(len(self.accepted), answered),
            "acceptance_rate_ci95": wilson_interval(len(self.accepted), answered),
            "override_rate": _rate(len(self.overridden), answered),
            "override_rate_ci95": wilson_interval(len(self.overridden), answered),
        }


@dataclass
class _RuleTally(_Tally):
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    comments: int = 0
    offered: Counter[str] = field(default_factory=Counter)
    taken: Counter[str] = field(default_factory=Counter)


RuleKey = tuple[str, str, str]  # rule, mode, indicator
WeekKey = tuple[str, str, date]  # rule, mode, week


@dataclass(frozen=True)
class ReportScope:
    """Which cards a report reads: one client, one tenant, both, or (None) every one."""

    client: str | None = None
    tenant: str | None = None

    @classmethod
    def of(cls, scope: ClientScope) -> ReportScope:
        return cls(scope.client, scope.tenant)

    def as_json(self) -> dict[str, str | None]:
        return {"client": self.client, "tenant": self.tenant}

    def card_filters(self) -> list[Any]:
        filters = [] if self.client is None else [CardLog.client == self.client]
        return filters + ([] if self.tenant is None else [CardLog.tenant == self.tenant])


EVERY_SCOPE = ReportScope()


def feedback_report(
    store: Store,
    since: date | None = None,
    database: str | None = None,
    scope: ReportScope = EVERY_SCOPE,
) -> dict[str, Any]:
    """The report; ``database`` (shown to whoever runs it) names what was read, ``scope`` the
    client and tenant whose cards are read (null: every one)."""
    cards, feedback, suggestions = _read(store, since, scope)
    by_rule: dict[RuleKey, _RuleTally] = defaultdict(_RuleTally)
    by_week: dict[WeekKey, _Tally] = defaultdict(_Tally)
    card_keys: dict[str, tuple[RuleKey, WeekKey]] = {}
    for card in cards:
        mode = card.mode or "active"
        rule_key = (card.rule_id, mode, card.indicator)
        week_key = (card.rule_id, mode, week_start(card.issued_at))
        card_keys[card.uuid] = (rule_key, week_key)
        by_rule[rule_key].issued += 1
        by_rule[rule_key].outcomes[card.rule_outcome] += 1
        by_week[week_key].issued += 1
    labels: dict[str, str] = {}
    for suggestion in suggestions:
        labels[suggestion.uuid] = suggestion.label
        by_rule[card_keys[suggestion.card_uuid][0]].offered[suggestion.label] += 1
    for item in feedback:
        rule_key, week_key = card_keys[item.card_uuid]
        tally = by_rule[rule_key]
        if item.outcome == "accepted":
            tally.accepted.add(item.card_uuid)
            by_week[week_key].accepted.add(item.card_uuid)
            for suggestion_uuid in json.loads(item.accepted_suggestions or "[]"):
                tally.taken[
                    labels.get(suggestion_uuid, f"(unlogged suggestion {suggestion_uuid})")
                ] += 1
        else:
            tally.overridden.add(item.card_uuid)
            by_week[week_key].overridden.add(item.card_uuid)
            reason = (item.reason_system or "", item.reason_code or "", item.reason_display or "")
            tally.reasons[reason] += 1
            tally.comments += 1 if item.user_comment else 0
    report: dict[str, Any] = {"database": database} if database else {}
    return report | {
        "since": since.isoformat() if since else None,
        "scope": scope.as_json(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "definitions": {
            "response_rate": "cards with any feedback / cards issued",
            "acceptance_rate": "cards with accepted feedback / cards with feedback",
            "override_rate": "cards with overridden feedback / cards with feedback",
            "ci95": "95 % Wilson score interval [low, high]; null when the denominator is 0",
            "mode": "active: shown to clinicians; silent: logged only, never shown",
            "week": "ISO week (Monday, UTC) in which the card was issued",
        },
        "rules": [_rule_json(key, tally) for key, tally in sorted(by_rule.items())],
        "weekly": [
            {"rule": rule, "mode": mode, "week": week.isoformat(), **tally.as_json(mode)}
            for (rule, mode, week), tally in sorted(by_week.items())
        ],
    }


def _rule_json(key: RuleKey, tally: _RuleTally) -> dict[str, Any]:
    rule, mode, indicator = key
    return {
        "rule": rule,
        "mode": mode,
        "indicator": indicator,
        **tally.as_json(mode),
        "outcomes": dict(sorted(tally.outcomes.items())),
        "override_reasons": [
            {
                "system": system or None,
                "code": code or None,
                "display": display or code or NO_REASON,
                "count": count,
            }
            for (system, code, display), count in tally.reasons.most_common()
        ],
        "override_comments": tally.comments,
        "suggestions": [
            {
                "label": label,
                "offered": offered,
                "accepted": tally.taken[label],
                "acceptance_rate": _rate(tally.taken[label], offered),
            }
            for label, offered in sorted(tally.offered.items())
        ],
    }


def _read(
    store: Store, since: date | None, scope: ReportScope
) -> tuple[list[CardLog], list[Feedback], list[SuggestionLog]]:
    card_filter = scope.card_filters()
    if since is not None:
        start = utc_naive(datetime(since.year, since.month, since.day, tzinfo=UTC))
        card_filter.append(CardLog.issued_at >= start)
    with store.sessions() as session:
        cards = list(session.scalars(select(CardLog).where(*card_filter)))
        feedback = list(
            session.scalars(
                select(Feedback)
                .join(CardLog, Feedback.card_uuid == CardLog.uuid)
                # Feedback is stored only from the card's own client; checked again here.
                .where(*card_filter, Feedback.client == CardLog.client)
                .where(Feedback.tenant == CardLog.tenant)
            )
        )
        suggestions = list(
            session.scalars(
                select(SuggestionLog)
                .join(CardLog, SuggestionLog.card_uuid == CardLog.uuid)
                .where(*card_filter)
            )
        )
    return cards, feedback, suggestions


def week_start(moment: datetime) -> date:
    day = moment.date()
    return day - timedelta(days=day.weekday())


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def wilson_interval(part: int, whole: int, z: float = Z_95) -> list[float] | None:
    """The Wilson score interval for ``part`` successes of ``whole``, rounded to 4 places."""
    if whole <= 0:
        return None
    p = part / whole
    z2 = z * z
    centre = (p + z2 / (2 * whole)) / (1 + z2 / whole)
    half = z * math.sqrt(p * (1 - p) / whole + z2 / (4 * whole * whole)) / (1 + z2 / whole)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]
