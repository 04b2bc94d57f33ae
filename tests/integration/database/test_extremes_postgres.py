"""On PostgreSQL: the inputs that used to fail there (NUL characters, lone surrogates, values
longer than the columns) answer 4xx, and the extreme-value fuzzing of feedback finds no 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given

from tests import factories as f
from tests.conformance.test_feedback import issue_card
from tests.security.test_no_500 import (
    EXTREME_SETTINGS,
    FEEDBACK,
    assert_no_server_error,
    extreme_mutation,
)

pytestmark = pytest.mark.integration
SERVICE = "/cds-services/aih-order-sign"


@pytest.fixture
def pg_client(app_factory: Callable[..., Flask], pg_url: str) -> FlaskClient:
    return app_factory(database_url=pg_url).test_client()


@pytest.mark.parametrize(
    "reason",
    [{"code": "c" * 129}, {"code": "a\x00b"}, {"code": "c", "system": "s" * 257}],
)
def test_feedback_values_postgres_cannot_hold_are_a_400(
    pg_client: FlaskClient, reason: dict[str, Any]
) -> None:
    card = issue_card(pg_client)
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": "2026-06-01T12:00:00Z",
        "overrideReason": {"reason": reason},
    }
    assert pg_client.post(SERVICE + "/feedback", json={"feedback": [item]}).status_code == 400


@pytest.mark.parametrize("text", ["\ud800", "a\x00b"])
def test_hook_instance_postgres_cannot_hold_is_a_400(pg_client: FlaskClient, text: str) -> None:
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    body["hookInstance"] = text
    assert pg_client.post(SERVICE, json=body).status_code == 400


@EXTREME_SETTINGS
@given(body=extreme_mutation(FEEDBACK))
def test_extreme_values_in_feedback_on_postgres(pg_client: FlaskClient, body: Any) -> None:
    assert_no_server_error(pg_client, SERVICE + "/feedback", body)
