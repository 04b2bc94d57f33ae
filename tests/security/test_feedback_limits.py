"""Feedback abuse: item count, one transaction, one outcome per card, lengths, timestamps."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from tests.conformance.test_feedback import issue_card

FEEDBACK = "/cds-services/aih-order-sign/feedback"


def overridden(card: str, **extra: Any) -> dict[str, Any]:
    item = {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-06-01T12:00:00Z"}
    return {**item, **extra}


def test_more_than_100_items_is_a_413_and_nothing_is_read(client: FlaskClient) -> None:
    answer = client.post(FEEDBACK, json={"feedback": [overridden("c")] * 101})
    assert answer.status_code == 413
    assert client.post(FEEDBACK, json={"feedback": [overridden("c")] * 100}).status_code == 200


def test_a_request_is_stored_in_one_transaction(app: Flask, client: FlaskClient) -> None:
    cards = [issue_card(client)["uuid"] for _ in range(5)]
    commits: list[int] = []
    engine = app.extensions["aih_cds"].store.engine

    def count(_connection: Any) -> None:
        commits.append(1)

    event.listen(engine, "commit", count)
    try:
        answer = client.post(FEEDBACK, json={"feedback": [overridden(c) for c in cards]})
    finally:
        event.remove(engine, "commit", count)
    assert answer.get_json()["stored"] == 5
    assert len(commits) == 1


def test_a_conflicting_later_outcome_is_reported_not_stored(
    app: Flask, client: FlaskClient
) -> None:
    card = issue_card(client)
    first = client.post(FEEDBACK, json={"feedback": [overridden(card["uuid"])]})
    accepted = {
        "card": card["uuid"],
        "outcome": "accepted",
        "outcomeTimestamp": "2026-06-01T12:01:00Z",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
    }
    second = client.post(FEEDBACK, json={"feedback": [accepted]})
    assert first.get_json()["stored"] == 1
    assert second.get_json() == {"stored": 0, "duplicates": 0, "unknownCards": 0, "conflicts": 1}
    rows = app.extensions["aih_cds"].store.feedback_for_card(card["uuid"])
    assert [r.outcome for r in rows] == ["overridden"]


def test_a_suggestion_the_card_never_offered_is_reported(client: FlaskClient) -> None:
    card = issue_card(client)
    item = {
        "card": card["uuid"],
        "outcome": "accepted",
        "outcomeTimestamp": "2026-06-01T12:01:00Z",
        "acceptedSuggestions": [{"id": "not-offered"}],
    }
    answer = client.post(FEEDBACK, json={"feedback": [item]})
    assert answer.get_json()["unknownSuggestions"] == 1
    assert answer.get_json()["stored"] == 0


@pytest.mark.parametrize(
    "extra",
    [
        {"overrideReason": {"userComment": "x" * 2001}},
        {"overrideReason": {"reason": {"code": "c" * 129}}},
        {"overrideReason": {"reason": {"code": "c", "display": "d" * 513}}},
        {"card": "u" * 65},  # longer than any card uuid
        {"outcomeTimestamp": "2026-06-01T12:00:00"},  # no zone
        {"outcomeTimestamp": "2026-06-01"},
        {"outcomeTimestamp": "20260601T120000Z"},
        {"outcomeTimestamp": "2026-06-01 12:00:00+00:00 "},
    ],
)
def test_over_long_values_and_loose_timestamps_are_a_400(
    client: FlaskClient, extra: dict[str, Any]
) -> None:
    answer = client.post(FEEDBACK, json={"feedback": [{**overridden("c"), **extra}]})
    assert answer.status_code == 400
