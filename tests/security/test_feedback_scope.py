"""Feedback and its analytics are scoped to the client (JWT iss) and tenant a card was issued to:
another client's or tenant's card answers exactly like a card that does not exist."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from cds_service.cli.main import main
from cds_service.storage.scope import NO_CLIENT
from cds_service.storage.store import CardLog, Feedback, Store
from tests import factories as f
from tests.security.support import CRD_EC_PRIVATE, SANDBOX_PRIVATE, jwks, mint

BASE = "https://cds.example.org"
SERVICE = "/cds-services/aih-order-sign"
FEEDBACK = SERVICE + "/feedback"
ANALYTICS = "/analytics/feedback"
SANDBOX_ISS = "https://sandbox.cds-hooks.org"
CRD_ISS = "https://inferno.example.org/custom/crd_server"
MMF_BODY = f.hook_request(
    "order-sign",
    drafts=(f.mmf_draft(),),
    prefetch=f.full_prefetch(observations=(f.pregnancy_status(True),)),
)


class Clients:
    """One service, two trusted clients: the Sandbox (no tenants) and an EHR with two tenants."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.http = app.test_client()

    def token(self, who: str, path: str) -> str:
        if who == "sandbox":
            return mint(SANDBOX_PRIVATE, iss=SANDBOX_ISS, aud=BASE + path)
        return mint(CRD_EC_PRIVATE, iss=CRD_ISS, aud=BASE + path, tenant=who)

    def call(self, who: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": "Bearer " + self.token(who, path)}
        if body is None:
            return self.http.get(path, headers=headers)
        return self.http.post(path, json=body, headers=headers)

    def issue(self, who: str) -> dict[str, Any]:
        answer = self.call(who, SERVICE, MMF_BODY)
        assert answer.status_code == 200
        card: dict[str, Any] = answer.get_json()["cards"][0]
        return card

    def override(self, who: str, card_uuid: str) -> dict[str, Any]:
        item = {
            "card": card_uuid,
            "outcome": "overridden",
            "outcomeTimestamp": "2026-06-01T12:05:00Z",
        }
        answer = self.call(who, FEEDBACK, {"feedback": [item]})
        assert answer.status_code == 200
        result: dict[str, Any] = answer.get_json()
        return result

    @property
    def store(self) -> Store:
        store: Store = self.app.extensions["aih_cds"].store
        return store


@pytest.fixture
def clients(app_factory: Callable[..., Flask], tmp_path: Path) -> Clients:
    trusted = [
        {"iss": SANDBOX_ISS, "jwks": jwks(SANDBOX_PRIVATE)},
        {"iss": CRD_ISS, "jwks": jwks(CRD_EC_PRIVATE), "tenants": ["hospital-a", "hospital-b"]},
    ]
    path = tmp_path / "trusted.json"
    path.write_text(json.dumps(trusted), encoding="utf-8")
    return Clients(app_factory(auth=True, trusted_clients_file=str(path), public_base_url=BASE))


UNKNOWN = {"stored": 0, "duplicates": 0, "unknownCards": 1}


@pytest.mark.parametrize(
    ("owner", "other"),
    [("sandbox", "hospital-a"), ("hospital-a", "sandbox"), ("hospital-a", "hospital-b")],
)
def test_feedback_on_another_scopes_card_answers_like_an_absent_card(
    clients: Clients, owner: str, other: str
) -> None:
    card = clients.issue(owner)
    assert clients.override(other, card["uuid"]) == UNKNOWN
    assert clients.override(other, "no-such-card") == UNKNOWN  # the same answer: nothing revealed
    assert clients.store.feedback_for_card(card["uuid"]) == []
    # The owner's own feedback is still the first outcome: the other scope changed nothing.
    assert clients.override(owner, card["uuid"])["stored"] == 1


def test_cards_and_feedback_are_stored_with_client_and_tenant(clients: Clients) -> None:
    card = clients.issue("hospital-b")
    clients.override("hospital-b", card["uuid"])
    with clients.store.sessions() as session:
        logged = session.scalars(select(CardLog).where(CardLog.uuid == card["uuid"])).one()
        [feedback] = session.scalars(select(Feedback).where(Feedback.card_uuid == card["uuid"]))
    assert (logged.client, logged.tenant) == (CRD_ISS, "hospital-b")
    assert (feedback.client, feedback.tenant) == (CRD_ISS, "hospital-b")


def test_analytics_endpoint_reports_the_callers_own_cards_only(clients: Clients) -> None:
    mine = clients.issue("hospital-a")
    clients.override("hospital-a", mine["uuid"])
    clients.issue("sandbox")
    clients.issue("hospital-b")
    report = clients.call("hospital-a", ANALYTICS).get_json()
    assert report["scope"] == {"client": CRD_ISS, "tenant": "hospital-a"}
    [row] = report["rules"]
    assert (row["issued"], row["overridden"]) == (1, 1)
    sandbox = clients.call("sandbox", ANALYTICS).get_json()
    assert [(r["issued"], r["answered"]) for r in sandbox["rules"]] == [(1, 0)]
    plot = clients.call("hospital-b", ANALYTICS + "/override-rate.svg")
    assert plot.status_code == 200


@pytest.mark.parametrize("tenant", [{"a": 1}, "t" * 257, "a\x00b", "\ud800", "line\nbreak"])
def test_a_tenant_claim_that_cannot_be_stored_is_refused(clients: Clients, tenant: Any) -> None:
    token = mint(SANDBOX_PRIVATE, iss=SANDBOX_ISS, aud=BASE + SERVICE, tenant=tenant)
    answer = clients.http.post(SERVICE, json=MMF_BODY, headers={"Authorization": "Bearer " + token})
    assert answer.status_code == 401


def test_development_mode_stores_no_client(app: Flask) -> None:
    client = app.test_client()
    card = client.post(SERVICE, json=MMF_BODY).get_json()["cards"][0]
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": "2026-06-01T12:05:00Z",
    }
    assert client.post(FEEDBACK, json={"feedback": [item]}).get_json()["stored"] == 1
    store: Store = app.extensions["aih_cds"].store
    [feedback] = store.feedback_for_card(card["uuid"])
    assert (feedback.client, feedback.tenant) == (NO_CLIENT.client, NO_CLIENT.tenant) == ("", "")
    assert client.get(ANALYTICS).get_json()["scope"] == {"client": "", "tenant": ""}


def test_feedback_report_command_narrows_to_a_client_and_tenant(
    clients: Clients, capsys: pytest.CaptureFixture[str]
) -> None:
    clients.issue("hospital-a")
    clients.issue("hospital-b")
    clients.issue("sandbox")
    url = clients.app.extensions["aih_cds"].settings.database_url

    def issued(*scope: str) -> int:
        assert main(["feedback", "report", "--database-url", url, "--json", *scope]) == 0
        report = json.loads(capsys.readouterr().out)
        return sum(row["issued"] for row in report["rules"])

    assert issued() == 3
    assert issued("--client", CRD_ISS) == 2
    assert issued("--client", CRD_ISS, "--tenant", "hospital-b") == 1
    assert issued("--client", "") == 0
    assert main(["feedback", "report", "--database-url", url, "--client", SANDBOX_ISS]) == 0
    assert f"scope: client {SANDBOX_ISS!r}, every tenant" in capsys.readouterr().out


def test_a_spooled_card_of_another_scope_answers_like_an_absent_card(
    clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    def database_down(*_args: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("down"))

    monkeypatch.setattr(clients.store, "write_card_log", database_down)
    monkeypatch.setattr(clients.store, "replay_card_log", database_down)
    writer = clients.app.extensions["aih_cds"].card_log
    try:
        card = clients.issue("hospital-a")  # answered, and held in the spool
        assert clients.override("hospital-b", card["uuid"]) == UNKNOWN
        item = {
            "card": card["uuid"],
            "outcome": "overridden",
            "outcomeTimestamp": "2026-06-01T12:05:00Z",
        }
        own = clients.call("hospital-a", FEEDBACK, {"feedback": [item]})
        assert own.status_code == 503  # the owner is told to retry once it is in the database
    finally:
        writer.stop()
