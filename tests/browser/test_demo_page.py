"""The demo EHR page in a real headless Chromium (Debian's), driven by playwright-core.

The service runs under gunicorn on a free loopback port with its own SQLite database; the
browser script (demo-page.mjs) picks patients, signs orders, accepts and overrides cards; this
test then reads what the page sent from the database and from the feedback report.
Screenshots are written to build/test-artifacts/ (or DEMO_SCREENSHOTS_DIR).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from cds_service.informatics.analytics import feedback_report
from cds_service.storage.store import Store
from tests.conftest import REPO

HERE = Path(__file__).resolve().parent
ARTIFACTS = Path(os.environ.get("DEMO_SCREENSHOTS_DIR") or REPO / "build" / "test-artifacts")
CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = "run scripts/install-browser-deps.sh (make test does)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, database URL) of a real service process, stopped after the module."""
    work = tmp_path_factory.mktemp("demo-service")
    database_url = f"sqlite:///{work / 'demo.sqlite'}"
    port = free_port()
    env = {
        **os.environ,
        "CDS_AUTH": "off",
        "CDS_DEMO": "on",
        "CDS_DATABASE_URL": database_url,
        "CDS_PATIENT_HASH_KEY": "browser-test",
    }
    log = (work / "service.log").open("w")
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "cds_service.cli", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(base, process, work / "service.log")
        yield base, database_url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait_until_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"service exited: {log.read_text(encoding='utf-8')}")
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    pytest.fail(f"service did not become healthy: {log.read_text(encoding='utf-8')}")


@pytest.fixture(scope="module")
def browser_run(service: tuple[str, str]) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, f"node is not installed: {INSTALL_HINT}"
    assert CHROMIUM.exists(), f"{CHROMIUM} is not installed: {INSTALL_HINT}"
    assert (HERE / "node_modules" / "playwright-core").is_dir(), (
        f"no playwright-core: {INSTALL_HINT}"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(  # noqa: S603 - our own script
        [node, str(HERE / "demo-page.mjs")],
        env={**os.environ, "DEMO_BASE_URL": service[0], "ARTIFACTS_DIR": str(ARTIFACTS)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr + completed.stdout
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def test_page_loads_without_errors_under_a_strict_csp(browser_run: dict[str, Any]) -> None:
    assert browser_run["title"] == "AIH CDS - demo EHR"
    assert browser_run["patientOptions"] > 1
    assert "script-src 'self'" in browser_run["csp"]
    assert browser_run["consoleErrors"] == []
    assert browser_run["pageErrors"] == []


def test_chart_shows_lab_history_with_uln(browser_run: dict[str, Any]) -> None:
    chart = browser_run["chart"]
    alt = chart["facts"]["alt"]
    assert alt["points"] >= 1
    assert alt["aboveUln"] >= 1  # ALT 88 U/L against ULN 40
    assert alt["uln"] == "ULN 40 U/L"
    assert chart["tableRows"] >= 1
    assert chart["trendLink"] == "/demo/patients/mmf-new-start-no-test/labs"
    assert (ARTIFACTS / "demo-chart.png").stat().st_size > 0


def test_chart_axes_have_several_ticks_and_every_value_is_written(
    browser_run: dict[str, Any],
) -> None:
    assert [
        len(p["valueLabels"]) for p in browser_run["chart"]["facts"].values() if p["drawn"]
    ] == [
        p["points"] for p in browser_run["chart"]["facts"].values() if p["drawn"]
    ]  # a short history: every value written
    for facts in (browser_run["chart"]["facts"], browser_run["lanes"]):
        drawn = {k: v for k, v in facts.items() if k != "lanes" and v["drawn"]}
        assert drawn
        for panel in drawn.values():
            assert len(panel["yTicks"]) >= 3, panel["yTicks"]  # not only 0 and the maximum
            # visible without hovering (crowded labels give way; the table lists every value)
            assert len(panel["valueLabels"]) >= min(panel["points"], 5)
            assert all(any(ch.isalpha() for ch in tick) for tick in panel["xTicks"])  # "3 Jun 26"


def test_treatment_lanes_name_every_course_in_full_inside_the_plot(
    browser_run: dict[str, Any],
) -> None:
    lanes = browser_run["lanes"]["lanes"]
    courses = int(browser_run["lanesCourses"])
    assert courses >= 2
    assert len(lanes["laneLabels"]) >= courses  # a long label takes two lines
    for label in lanes["laneLabels"]:
        assert label["x"] >= label["left"]
        assert label["x"] + label["width"] <= label["right"], label["text"]
    written = " ".join(label["text"] for label in lanes["laneLabels"])
    assert "Infliximab 5 mg/kg IV infusion" in written  # in full, not "...IV infusi"
    assert written.count("ongoing") + written.count(" to 20") >= courses
    assert (ARTIFACTS / "demo-chart-lanes-1024.png").stat().st_size > 0


def test_card_markdown_renders_numbered_lists_and_fits_1024_px(
    browser_run: dict[str, Any],
) -> None:
    markdown = browser_run["markdown"]
    assert markdown["orderedItems"] >= 3  # the relapse card's next steps, in order
    assert markdown["literalNumbering"] is False
    assert markdown["literalAsterisks"] is False
    assert markdown["overflow"] == 0
    print(f"relapse card height at 1024 px: {markdown['height']} px")


def test_a_long_override_comment_does_not_widen_the_page(browser_run: dict[str, Any]) -> None:
    assert browser_run["longComment"] == {"overflow": 0, "cardOverflow": 0}


def test_featured_stories_have_unique_names_and_the_rest_is_behind_a_filter(
    browser_run: dict[str, Any],
) -> None:
    picker = browser_run["picker"]
    assert 6 <= len(picker["featured"]) <= 10
    names = [option.split(": ", 1)[1].split(" (")[0] for option in picker["featured"]]
    assert len(set(names)) == len(names), names
    assert picker["allShown"] == picker["allCount"] > len(picker["featured"])
    assert picker["filtered"]
    assert all("tnf-persistent" in option for option in picker["filtered"])


def test_demo_orders_carry_structured_doses(browser_run: dict[str, Any]) -> None:
    text = browser_run["dose"]["text"]
    assert "50 mg/day" in text
    assert "not computable" not in text


def test_unknown_patient_gets_a_page_not_json(browser_run: dict[str, Any]) -> None:
    unknown = browser_run["unknownPatient"]
    assert unknown["status"] == 404
    assert unknown["contentType"].startswith("text/html")
    assert "script-src 'self'" in unknown["csp"]
    assert unknown["heading"] == 'No demo patient "no-such-patient"'
    assert unknown["backLink"] == 1


def test_mmf_order_for_a_pregnant_patient_shows_the_critical_card(
    browser_run: dict[str, Any],
) -> None:
    critical = browser_run["critical"]
    assert critical["badge"].lower() == "critical"
    assert "mycophenolate is contraindicated in pregnancy" in critical["summary"]
    assert critical["boldInDetail"] >= 1  # markdown rendered, not shown as asterisks
    assert critical["listItemsInDetail"] >= 1
    assert critical["overrideReasons"] >= 1
    assert browser_run["unlabelledControls"] == []
    assert browser_run["chartAccessibleName"]


def test_accepting_a_suggestion_is_recorded_and_counted(
    browser_run: dict[str, Any], service: tuple[str, str]
) -> None:
    critical = browser_run["critical"]
    assert critical["draftsLeft"] == 0
    assert any(line.startswith("Removed draft: Mycophenolate") for line in critical["orderLog"])

    store = Store(service[1], b"")
    [accepted] = store.feedback_for_card(critical["uuid"])
    assert accepted.outcome == "accepted"
    assert json.loads(accepted.accepted_suggestions) == [critical["suggestionUuid"]]

    report = feedback_report(store)
    row = next(r for r in report["rules"] if r["indicator"] == "critical")
    assert row["accepted"] == 1
    assert [s["accepted"] for s in row["suggestions"]] == [1]


def test_override_with_reason_is_recorded_and_reported_over_http(
    browser_run: dict[str, Any], service: tuple[str, str]
) -> None:
    assert browser_run["overrideWithoutReason"] == "Choose an override reason first."
    warning = browser_run["warning"]
    [overridden] = Store(service[1], b"").feedback_for_card(warning["uuid"])
    assert overridden.outcome == "overridden"
    assert overridden.reason_display == warning["reason"]
    assert overridden.user_comment == "Patient uses two forms of contraception; test booked"

    report = requests.get(f"{service[0]}/analytics/feedback", timeout=10).json()
    row = next(
        r
        for r in report["rules"]
        if (r["rule"], r["indicator"]) == ("mmf-teratogenicity", "warning")
    )
    assert row["overridden"] == 1
    assert row["override_reasons"][0]["display"] == warning["reason"]


def test_lab_trend_view_at_its_stable_url(browser_run: dict[str, Any]) -> None:
    view = browser_run["labView"]
    assert "lab-view" in view["bodyClass"]
    assert view["chart"] == 1
    assert view["ordersVisible"] is False
