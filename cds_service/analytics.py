"""Feedback analytics: how clinicians answer each rule's cards, from the card log and feedback.

Rates use the cards issued as denominator: a card nobody answered counts as issued but neither
accepted nor overridden (EHRs send feedback only when the clinician acts on a card). Weeks are
ISO weeks (Monday start, UTC) of the card's issue time.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from cds_service.store import CardLog, Feedback, Store, SuggestionLog, utc_naive

NO_REASON = "(no reason given)"


@dataclass
class _Tally:
    issued: int = 0
    accepted: set[str] = field(default_factory=set)
    overridden: set[str] = field(default_factory=set)

    def as_json(self) -> dict[str, Any]:
        answered = self.accepted | self.overridden
        return {
            "issued": self.issued,
            "accepted": len(self.accepted),
            "overridden": len(self.overridden),
            "without_feedback": self.issued - len(answered),
            "acceptance_rate": _rate(len(self.accepted), self.issued),
            "override_rate": _rate(len(self.overridden), self.issued),
        }


@dataclass
class _RuleTally(_Tally):
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    comments: int = 0
    offered: Counter[str] = field(default_factory=Counter)
    taken: Counter[str] = field(default_factory=Counter)


def feedback_report(store: Store, since: date | None = None) -> dict[str, Any]:
    cards, feedback, suggestions = _read(store, since)
    by_rule: dict[tuple[str, str], _RuleTally] = defaultdict(_RuleTally)
    by_week: dict[tuple[str, date], _Tally] = defaultdict(_Tally)
    card_keys: dict[str, tuple[tuple[str, str], tuple[str, date]]] = {}
    for card in cards:
        rule_key = (card.rule_id, card.indicator)
        week_key = (card.rule_id, week_start(card.issued_at))
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
    return {
        "since": since.isoformat() if since else None,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "definitions": {
            "acceptance_rate": "cards with accepted feedback / cards issued",
            "override_rate": "cards with overridden feedback / cards issued",
            "week": "ISO week (Monday, UTC) in which the card was issued",
        },
        "rules": [_rule_json(key, tally) for key, tally in sorted(by_rule.items())],
        "weekly": [
            {"rule": rule, "week": week.isoformat(), **tally.as_json()}
            for (rule, week), tally in sorted(by_week.items())
        ],
    }


def _rule_json(key: tuple[str, str], tally: _RuleTally) -> dict[str, Any]:
    rule, indicator = key
    return {
        "rule": rule,
        "indicator": indicator,
        **tally.as_json(),
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
    store: Store, since: date | None
) -> tuple[list[CardLog], list[Feedback], list[SuggestionLog]]:
    card_filter = []
    if since is not None:
        start = utc_naive(datetime(since.year, since.month, since.day, tzinfo=UTC))
        card_filter.append(CardLog.issued_at >= start)
    with store.sessions() as session:
        cards = list(session.scalars(select(CardLog).where(*card_filter)))
        feedback = list(
            session.scalars(
                select(Feedback)
                .join(CardLog, Feedback.card_uuid == CardLog.uuid)
                .where(*card_filter)
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
