"""Feedback analytics: the report counts what the card log and feedback hold, per rule and
indicator and per week; the same report over HTTP (authenticated) and on the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service.cli.main import main
from cds_service.informatics.analytics import week_start
from cds_service.informatics.charts import DEFAULT_SCENARIOS_DIR
from cds_service.storage.store import Store
from tests.unit.test_app_http import PUBLIC, SANDBOX_ISS, SANDBOX_JKU, sandbox_token

MONDAY = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)  # a Monday
SVG = {"s": "http://www.w3.org/2000/svg"}
PREGNANT_OVERRIDE = {"code": "benefit-outweighs-risk", "system": "urn:x", "display": "Benefit"}


def golden_request(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(
        (DEFAULT_SCENARIOS_DIR / name / "request.json").read_text(encoding="utf-8")
    )
    return body


class Clinic:
    """A service with a movable clock, and helpers to sign orders and answer the cards."""

    def __init__(self, app_factory: Callable[..., Flask]) -> None:
        self.now = MONDAY
        self.app = app_factory(clock=lambda: self.now)
        self.client: FlaskClient = self.app.test_client()

    def sign(self, scenario: str) -> dict[str, Any]:
        response = self.client.post("/cds-services/aih-order-sign", json=golden_request(scenario))
        assert response.status_code == 200
        card: dict[str, Any] = response.get_json()["cards"][0]
        return card

    def answer(self, card: dict[str, Any], outcome: str, **extra: Any) -> None:
        item = {"card": card["uuid"], "outcome": outcome, "outcomeTimestamp": self.now.isoformat()}
        item.update(extra)
        response = self.client.post(
            "/cds-services/aih-order-sign/feedback", json={"feedback": [item]}
        )
        assert response.get_json()["stored"] == 1

    def accept_first(self, card: dict[str, Any]) -> None:
        self.answer(card, "accepted", acceptedSuggestions=[{"id": card["suggestions"][0]["uuid"]}])

    def override(
        self, card: dict[str, Any], reason: dict[str, str] | None, comment: str = ""
    ) -> None:
        override: dict[str, Any] = {}
        if reason:
            override["reason"] = reason
        if comment:
            override["userComment"] = comment
        self.answer(card, "overridden", overrideReason=override)


@pytest.fixture
def clinic(app_factory: Callable[..., Flask]) -> Clinic:
    """Week 1: three critical pregnancy cards (one accepted, two overridden, with and without a
    reason), one warning accepted, one male info card unanswered. Week 2: one critical, accepted.
    """
    c = Clinic(app_factory)
    first, second, third = (c.sign("mmf-pregnant-status") for _ in range(3))
    c.accept_first(first)
    c.override(second, PREGNANT_OVERRIDE, comment="discussed with obstetrics")
    c.override(third, None)
    c.accept_first(c.sign("mmf-new-start-no-test"))
    c.sign("mmf-male")
    c.now = MONDAY + timedelta(days=8)
    c.accept_first(c.sign("mmf-pregnant-hcg"))
    return c


def rule_row(report: dict[str, Any], indicator: str) -> dict[str, Any]:
    row: dict[str, Any] = next(r for r in report["rules"] if r["indicator"] == indicator)
    return row


def test_report_counts_per_rule_and_indicator(clinic: Clinic) -> None:
    report = clinic.client.get("/analytics/feedback").get_json()
    critical = rule_row(report, "critical")
    assert (critical["issued"], critical["accepted"], critical["overridden"]) == (4, 2, 2)
    assert critical["override_rate"] == 0.5
    assert critical["outcomes"] == {"pregnant": 4}
    reasons = {r["display"]: r["count"] for r in critical["override_reasons"]}
    assert reasons == {"Benefit": 1, "(no reason given)": 1}
    assert critical["override_comments"] == 1
    [removal] = critical["suggestions"]
    assert (removal["offered"], removal["accepted"]) == (4, 2)

    warning = rule_row(report, "warning")
    assert (warning["issued"], warning["accepted"], warning["override_rate"]) == (1, 1, 0.0)
    info = rule_row(report, "info")
    assert (info["issued"], info["without_feedback"], info["response_rate"]) == (1, 1, 0.0)
    assert info["acceptance_rate"] is None  # nobody answered: no rate, not 0 %


def test_weekly_trend_and_since(clinic: Clinic) -> None:
    report = clinic.client.get("/analytics/feedback").get_json()
    weeks = {(w["week"], w["issued"], w["overridden"]) for w in report["weekly"]}
    assert weeks == {("2026-06-01", 5, 2), ("2026-06-08", 1, 0)}

    later = clinic.client.get("/analytics/feedback?since=2026-06-02").get_json()
    assert [(r["indicator"], r["issued"]) for r in later["rules"]] == [("critical", 1)]
    bad = clinic.client.get("/analytics/feedback?since=last-week")
    assert bad.status_code == 400
    assert bad.get_json()["issue"][0]["expression"] == ["since"]


def test_override_rate_plot(clinic: Clinic) -> None:
    response = clinic.client.get("/analytics/feedback/override-rate.svg")
    assert response.mimetype == "image/svg+xml"
    svg = ET.fromstring(response.data)  # noqa: S314 - the service's own SVG
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "mmf-teratogenicity  (n=6, 2 of 5 answered overridden)" in texts
    assert {"n=5", "n=1"} <= set(texts)


def test_cli_report_table_json_and_plot(
    clinic: Clinic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = clinic.app.extensions["aih_cds"].settings.database_url
    assert main(["feedback", "report", "--database-url", url, "--json"]) == 0
    assert (
        json.loads(capsys.readouterr().out)["rules"]
        == (clinic.client.get("/analytics/feedback").get_json()["rules"])
    )
    plot = tmp_path / "override.svg"
    assert main(["feedback", "report", "--database-url", url, "--plot", str(plot)]) == 0
    table = capsys.readouterr().out
    assert "override reason: Benefit x1" in table
    assert "accepted 2 of 4 (50%)" in table
    assert ET.parse(plot).getroot().tag.endswith("svg")  # noqa: S314 - the command's own SVG
    assert main(["feedback", "report", "--database-url", url, "--plot", "x.pdf"]) == 2


def test_empty_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    Store(url, b"").create_schema()
    assert main(["feedback", "report", "--database-url", url, "--since", "2026-01-01"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"database: {url}\n")
    assert "no cards issued" in out


def test_endpoint_requires_client_authentication(app_factory: Callable[..., Flask]) -> None:
    trusted = json.dumps([{"iss": SANDBOX_ISS, "jku": [SANDBOX_JKU], "jwks": PUBLIC}])
    client = app_factory(auth=True, trusted_issuers=trusted).test_client()
    assert client.get("/analytics/feedback").status_code == 401
    token = sandbox_token("http://localhost/analytics/feedback")
    response = client.get("/analytics/feedback", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.get_json()["rules"] == []


def test_week_start_is_monday() -> None:
    assert week_start(datetime(2026, 6, 7, 23, 0, tzinfo=UTC)) == date(2026, 6, 1)
    assert week_start(datetime(2026, 6, 8, 0, 0, tzinfo=UTC)) == date(2026, 6, 8)
