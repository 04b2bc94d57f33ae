"""``aih-cds feedback report`` on a multi-week card log: active and silent apart, response and
override rates with Wilson intervals, the database named and never created, PNG and SVG plots."""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from cds_service.cli.main import main
from cds_service.informatics.analytics import wilson_interval
from cds_service.storage.store import CardLog, Feedback, Store

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
WEEKS = 10
# rule -> (mode, cards per week, share answered, share of answers overridden)
PLAN = {
    "anti-tnf-liver-injury": ("active", 6, 0.7, 0.3),
    "mmf-teratogenicity": ("active", 9, 0.8, 0.15),
    "allopurinol-thiopurine": ("active", 2, 0.5, 0.6),
    "tpmt-before-thiopurine": ("silent", 4, 0.0, 0.0),
}


def make_card_log(path: Path) -> str:
    """A SQLite card log with ten weeks of cards and feedback (fixed random seed)."""
    url = f"sqlite:///{path}"
    store = Store(url, b"k")
    store.create_schema()
    rng = random.Random(17)  # noqa: S311 - test data, not security
    with store.sessions() as session:
        for week in range(WEEKS):
            for rule, (mode, per_week, answered, overridden) in PLAN.items():
                for index in range(max(0, per_week + rng.randint(-2, 2))):
                    issued = START + timedelta(weeks=week, hours=index * 7)
                    uuid = f"{rule}-{week}-{index}"
                    session.add(_card(uuid, rule, mode, issued))
                    if rng.random() < answered:
                        outcome = "overridden" if rng.random() < overridden else "accepted"
                        session.add(_feedback(uuid, outcome, issued + timedelta(minutes=2)))
        session.commit()
    store.engine.dispose()
    return url


def _card(uuid: str, rule: str, mode: str, issued: datetime) -> CardLog:
    return CardLog(
        uuid=uuid,
        service_id="aih-order-sign",
        rule_id=rule,
        rule_outcome="outcome",
        indicator="warning",
        hook_instance=uuid,
        patient_hash="0" * 64,
        suggestion_uuids="[]",
        issued_at=issued.replace(tzinfo=None),
        mode=mode,
    )


def _feedback(uuid: str, outcome: str, when: datetime) -> Feedback:
    naive = when.replace(tzinfo=None)
    reason = "benefit-outweighs-risk" if outcome == "overridden" else None
    return Feedback(
        card_uuid=uuid,
        outcome=outcome,
        outcome_timestamp=naive,
        accepted_suggestions="[]",
        reason_code=reason,
        reason_display="Benefit outweighs risk" if reason else None,
        received_at=naive,
    )


@pytest.fixture(scope="module")
def card_log(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_card_log(tmp_path_factory.mktemp("feedback") / "cards.sqlite")


def report_json(capsys: pytest.CaptureFixture[str], url: str, *extra: str) -> dict[str, Any]:
    assert main(["feedback", "report", "--database-url", url, "--json", *extra]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def test_active_and_silent_apart_with_n_and_intervals(
    card_log: str, capsys: pytest.CaptureFixture[str]
) -> None:
    report = report_json(capsys, card_log)
    assert report["database"] == card_log
    modes = {row["rule"]: row["mode"] for row in report["rules"]}
    assert modes["tpmt-before-thiopurine"] == "silent"
    silent = next(r for r in report["rules"] if r["mode"] == "silent")
    assert silent["issued"] > 0
    assert silent["override_rate"] is None
    assert silent["response_rate"] is None
    tnf = next(r for r in report["rules"] if r["rule"] == "anti-tnf-liver-injury")
    assert tnf["answered"] == tnf["accepted"] + tnf["overridden"]
    assert tnf["response_rate"] == round(tnf["answered"] / tnf["issued"], 4)
    assert tnf["override_rate"] == round(tnf["overridden"] / tnf["answered"], 4)
    low, high = tnf["override_rate_ci95"]
    assert low < tnf["override_rate"] < high
    assert tnf["override_rate_ci95"] == wilson_interval(tnf["overridden"], tnf["answered"])
    weeks = {w["week"] for w in report["weekly"]}
    assert len(weeks) == WEEKS


def test_table_separates_silent_and_shows_intervals(
    card_log: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["feedback", "report", "--database-url", card_log]) == 0
    table = capsys.readouterr().out
    assert table.startswith(f"database: {card_log}\n")
    active, silent = table.index("Active cards"), table.index("Silent cards")
    assert active < silent
    assert "tpmt-before-thiopurine" in table[silent:].split("\n\n")[0]
    assert "tpmt-before-thiopurine" not in table[active:silent]
    assert "95 % Wilson interval" in table


def test_nobody_answered_reads_dash_not_zero() -> None:
    from cds_service.cli.feedback import _with_interval

    assert _with_interval(None, None) == "-"
    assert _with_interval(1.0, wilson_interval(1, 1)) == "100% [21%-100%]"


def test_wilson_interval_known_values() -> None:
    assert wilson_interval(0, 0) is None
    assert wilson_interval(40, 100) == [0.3094, 0.498]
    assert wilson_interval(0, 5) == [0.0, 0.4345]


def test_missing_database_is_named_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["feedback", "report", "--database-url", "sqlite:///cds.sqlite"]) == 2
    err = capsys.readouterr().err
    assert f"no database file at {tmp_path / 'cds.sqlite'}" in err
    assert os.listdir(tmp_path) == []


def test_a_database_without_the_card_log_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.sqlite"
    Store(f"sqlite:///{other}", b"").engine.connect().close()  # an empty SQLite file
    assert main(["feedback", "report", "--database-url", f"sqlite:///{other}"]) == 2
    assert "has no card_log, feedback, suggestion_log table(s)" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_has_one_panel_per_rule_with_weekly_n(
    card_log: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    plot = tmp_path / f"override{suffix}"
    assert main(["feedback", "report", "--database-url", card_log, "--plot", str(plot)]) == 0
    capsys.readouterr()
    if suffix == ".png":
        assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        return
    svg = ET.parse(plot).getroot()  # noqa: S314 - the command's own SVG
    texts = [t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    titles = [t for t in texts if t.startswith(tuple(PLAN))]
    assert sorted(t.split()[0] for t in titles) == sorted(PLAN)  # one panel per rule
    # weekly n on each bar (three rules have cards every week)
    assert sum(t.startswith("n=") for t in texts) >= WEEKS * 3
    assert "2 Mar" in texts  # readable dates
    assert any("silent" in t for t in texts)
