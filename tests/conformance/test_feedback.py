"""Feedback endpoint (POST {base}/cds-services/{id}/feedback) with the spec's examples 19-21 and
AHRQ's ``feedbackFor2.json``; their card and suggestion uuids are rewritten to ones the service
issued in the test, so the feedback lands on real cards."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests import factories as f
from tests.conformance.support import (
    AHRQ_FIXTURES,
    assert_operation_outcome,
    load_material,
    spec_example,
)

FEEDBACK_URL = "/cds-services/aih-order-sign/feedback"
AHRQ_FEEDBACK = f"{AHRQ_FIXTURES}/hooks-feedback/feedbackFor2.json"
MATERIAL_BATCHES: dict[str, Callable[[], dict[str, Any]]] = {
    "spec-19-accepted": lambda: spec_example("19"),
    "spec-20-overridden": lambda: spec_example("20"),
    "spec-21-overridden-with-reason": lambda: spec_example("21"),
    "ahrq-feedbackFor2": lambda: load_material(AHRQ_FEEDBACK),
}


def issue_card(client: FlaskClient) -> dict[str, Any]:
    """A critical mmf card with one suggestion, issued by aih-order-sign."""
    body = f.hook_request(
        "order-sign",
        drafts=(f.mmf_draft(),),
        prefetch=f.full_prefetch(observations=(f.pregnancy_status(True),)),
    )
    response = client.post("/cds-services/aih-order-sign", json=body)
    assert response.status_code == 200
    [card] = response.get_json()["cards"]
    assert card["suggestions"][0]["uuid"]
    return dict(card)


def bind_to_issued_cards(client: FlaskClient, batch: dict[str, Any]) -> dict[str, Any]:
    """Each distinct card uuid in ``batch`` -> a freshly issued card; suggestion ids -> its
    suggestion's uuid; override reason codes -> the card's first reason (only offered ones
    are stored)."""
    issued: dict[str, dict[str, Any]] = {}
    for item in batch["feedback"]:
        card = issued.setdefault(item["card"], issue_card(client))
        item["card"] = card["uuid"]
        for accepted in item.get("acceptedSuggestions", ()):
            accepted["id"] = card["suggestions"][0]["uuid"]
        reason = item.get("overrideReason", {}).get("reason")
        if reason is not None:
            reason.update(offered_reason(card))
    return batch


def offered_reason(card: dict[str, Any]) -> dict[str, str]:
    first = card["overrideReasons"][0]
    return {"system": first["system"], "code": first["code"]}


def post_feedback(client: FlaskClient, batch: Any, url: str = FEEDBACK_URL) -> Any:
    return client.post(url, json=batch)


def stored_rows(app: Flask, card_uuid: str) -> list[Any]:
    rows: list[Any] = app.extensions["aih_cds"].store.feedback_for_card(card_uuid)
    return rows


@pytest.mark.parametrize("name", list(MATERIAL_BATCHES))
def test_material_feedback_is_stored(app: Flask, client: FlaskClient, name: str) -> None:
    batch = bind_to_issued_cards(client, MATERIAL_BATCHES[name]())
    response = post_feedback(client, batch)
    assert response.status_code == 200, response.get_data(as_text=True)
    n = len(batch["feedback"])
    assert response.get_json() == {"stored": n, "duplicates": 0, "unknownCards": 0}
    for item in batch["feedback"]:
        [row] = stored_rows(app, item["card"])
        assert row.outcome == item["outcome"]
        accepted = [s["id"] for s in item.get("acceptedSuggestions", ())]
        assert json.loads(row.accepted_suggestions) == accepted
        reason = item.get("overrideReason", {})
        assert row.reason_code == reason.get("reason", {}).get("code")
        assert row.user_comment == reason.get("userComment")


@pytest.mark.parametrize("name", list(MATERIAL_BATCHES))
def test_same_batch_again_is_counted_as_duplicates(
    app: Flask, client: FlaskClient, name: str
) -> None:
    batch = bind_to_issued_cards(client, MATERIAL_BATCHES[name]())
    assert post_feedback(client, batch).status_code == 200
    again = post_feedback(client, batch)
    assert again.status_code == 200
    n = len(batch["feedback"])
    assert again.get_json() == {"stored": 0, "duplicates": n, "unknownCards": 0}
    for item in batch["feedback"]:
        assert len(stored_rows(app, item["card"])) == 1


def test_sandbox_style_reason_without_display_is_accepted(app: Flask, client: FlaskClient) -> None:
    card = issue_card(client)
    reason = {
        "code": card["overrideReasons"][0]["code"],
        "system": card["overrideReasons"][0]["system"],
    }
    batch = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": reason},
                "outcomeTimestamp": "2026-06-01T11:59:00Z",
            }
        ]
    }
    response = post_feedback(client, batch)
    assert response.status_code == 200
    assert response.get_json()["stored"] == 1
    [row] = stored_rows(app, card["uuid"])
    assert (row.reason_system, row.reason_code, row.reason_display) == (
        reason["system"],
        reason["code"],
        None,
    )


def test_old_style_override_reason_is_accepted(app: Flask, client: FlaskClient) -> None:
    card = issue_card(client)
    batch = spec_example("21")
    item = batch["feedback"][0]
    item["card"] = card["uuid"]
    item["overrideReason"] = offered_reason(card)  # {code, system}, no wrapper
    response = post_feedback(client, batch)
    assert response.status_code == 200
    assert response.get_json()["stored"] == 1
    [row] = stored_rows(app, card["uuid"])
    assert row.reason_code == offered_reason(card)["code"]
    assert row.reason_system == offered_reason(card)["system"]


def _drop(member: str) -> Callable[[dict[str, Any]], Any]:
    return lambda item: item.pop(member)


INVALID_ITEMS = [
    pytest.param(_drop("card"), "feedback[0].card", id="missing-card"),
    pytest.param(_drop("outcome"), "feedback[0].outcome", id="missing-outcome"),
    pytest.param(lambda i: i.update(outcome="dismissed"), "feedback[0].outcome", id="bad-outcome"),
    pytest.param(_drop("outcomeTimestamp"), "feedback[0].outcomeTimestamp", id="missing-ts"),
    pytest.param(
        _drop("acceptedSuggestions"), "feedback[0].acceptedSuggestions", id="accepted-no-ids"
    ),
    pytest.param(
        lambda i: i.update(acceptedSuggestions=[{}]),
        "feedback[0].acceptedSuggestions[0].id",
        id="accepted-without-id",
    ),
    pytest.param(
        lambda i: i.update(outcomeTimestamp="2021-12-11 10:05:31 UTC"),
        "feedback[0].outcomeTimestamp",
        id="pre-2.0-utc-suffix",
    ),
    pytest.param(
        lambda i: i.update(outcomeTimestamp="yesterday"),
        "feedback[0].outcomeTimestamp",
        id="not-a-timestamp",
    ),
    pytest.param(
        lambda i: i.update(overrideReason="patient refused"),
        "feedback[0].overrideReason",
        id="reason-not-object",
    ),
]


@pytest.mark.parametrize(("mutate", "field"), INVALID_ITEMS)
def test_invalid_feedback_is_400_naming_field(
    app: Flask, client: FlaskClient, mutate: Callable[[dict[str, Any]], Any], field: str
) -> None:
    batch = bind_to_issued_cards(client, spec_example("19"))
    card_uuid = batch["feedback"][0]["card"]
    mutate(batch["feedback"][0])
    assert_operation_outcome(post_feedback(client, batch), 400, names=field)
    assert stored_rows(app, card_uuid) == []


@pytest.mark.parametrize("body", [{}, {"feedback": []}, {"feedback": {}}, []], ids=repr)
def test_feedback_without_items_is_400(client: FlaskClient, body: Any) -> None:
    assert_operation_outcome(post_feedback(client, body), 400)


def test_invalid_item_rejects_whole_batch(app: Flask, client: FlaskClient) -> None:
    batch = bind_to_issued_cards(client, load_material(AHRQ_FEEDBACK))
    del batch["feedback"][1]["outcomeTimestamp"]
    assert_operation_outcome(post_feedback(client, batch), 400, names="feedback[1]")
    assert stored_rows(app, batch["feedback"][0]["card"]) == []


def test_unknown_card_uuid_is_counted(client: FlaskClient) -> None:
    response = post_feedback(client, load_material(AHRQ_FEEDBACK))  # uuids never issued here
    assert response.status_code == 200
    assert response.get_json() == {"stored": 0, "duplicates": 0, "unknownCards": 2}


def test_known_and_unknown_cards_in_one_batch(client: FlaskClient) -> None:
    batch = load_material(AHRQ_FEEDBACK)
    known = bind_to_issued_cards(client, {"feedback": [batch["feedback"][0]]})["feedback"][0]
    batch["feedback"][0] = known
    response = post_feedback(client, batch)
    assert response.get_json() == {"stored": 1, "duplicates": 0, "unknownCards": 1}


def test_feedback_for_card_of_another_service_is_unknown(client: FlaskClient) -> None:
    batch = bind_to_issued_cards(client, spec_example("20"))  # issued by aih-order-sign
    response = post_feedback(client, batch, "/cds-services/aih-order-select/feedback")
    assert response.get_json() == {"stored": 0, "duplicates": 0, "unknownCards": 1}


def test_feedback_to_unknown_service_is_404(client: FlaskClient) -> None:
    response = post_feedback(client, spec_example("20"), "/cds-services/nope/feedback")
    assert_operation_outcome(response, 404)


def test_feedback_non_json_is_415(client: FlaskClient) -> None:
    response = client.post(FEEDBACK_URL, data="feedback", content_type="text/plain")
    assert_operation_outcome(response, 415)
