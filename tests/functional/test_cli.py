"""``aih-cds evaluate`` on golden scenarios; ``aih-cds rules validate`` on good and bad cards/."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from cds_service.cli.main import main
from tests.conftest import REPO

GOLDEN = REPO / "fixtures" / "fhir"
CARDS = REPO / "cards"


def scenario(name: str) -> tuple[Path, str, dict[str, object]]:
    directory = GOLDEN / name
    meta = json.loads((directory / "scenario.json").read_text(encoding="utf-8"))
    expected = json.loads((directory / "expected-cards.json").read_text(encoding="utf-8"))
    return directory / "request.json", meta["now"], expected


@pytest.mark.parametrize(
    ("name", "indicator"),
    [("mmf-pregnant-status", "CRITICAL"), ("mmf-negative-hcg-3-days", "INFO")],
)
def test_evaluate_prints_indicator_and_summary(
    capsys: pytest.CaptureFixture[str], name: str, indicator: str
) -> None:
    request, now, expected = scenario(name)
    assert main(["evaluate", str(request), "--now", now]) == 0
    out = capsys.readouterr().out
    card = expected["cards"][0]  # type: ignore[index]
    assert f"[{indicator}] {card['summary']}" in out
    assert "rule: mmf-teratogenicity" in out


def test_evaluate_order_select_with_explicit_service(capsys: pytest.CaptureFixture[str]) -> None:
    request, now, expected = scenario("mmf-select-selected")
    argv = ["evaluate", str(request), "--now", now, "--service", "aih-order-select"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"[WARNING] {expected['cards'][0]['summary']}" in out  # type: ignore[index]
    assert "suggestion: Order a serum hCG pregnancy test" in out


def test_evaluate_no_card(capsys: pytest.CaptureFixture[str]) -> None:
    request, now, _ = scenario("mmf-female-60")
    assert main(["evaluate", str(request), "--now", now]) == 0
    assert capsys.readouterr().out.strip() == "No cards."


def test_evaluate_json_matches_golden_apart_from_uuids(capsys: pytest.CaptureFixture[str]) -> None:
    request, now, expected = scenario("mmf-pregnant-hcg")
    assert main(["evaluate", str(request), "--now", now, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    # the CLI uses random uuids; everything else is the golden response
    for body in (printed, expected):
        for card in body["cards"]:
            card.pop("uuid")
            for suggestion in card.get("suggestions", ()):
                suggestion.pop("uuid")
    assert printed == expected


def test_rules_validate_accepts_the_bundled_cards(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate", "--cards-dir", str(CARDS)]) == 0
    assert capsys.readouterr().out.startswith(f"OK: {CARDS}")


@pytest.fixture
def broken_cards(tmp_path: Path) -> Path:
    copy = tmp_path / "cards"
    shutil.copytree(CARDS, copy)
    return copy


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= 1, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@dataclass(frozen=True)
class Breakage:
    """One edit to a copy of cards/ and the error it must produce."""

    file: str
    old: str
    new: str
    field: str
    message: str


BREAKAGES = {
    "indicator-urgent": Breakage(
        "rules/mmf-teratogenicity.yaml",
        "indicator: critical",
        "indicator: urgent",
        "outcomes.pregnant.indicator",
        "Must be one of: info, warning, critical",
    ),
    "unknown-template-variable": Breakage(
        "rules/mmf-teratogenicity.yaml",
        'summary: "Evidence of pregnancy:',
        'summary: "Evidence of pregnancy for ${patient_name}:',
        "outcomes.pregnant.summary",
        "unknown variable(s) ['patient_name']",
    ),
    "prefetch-token-draftOrders": Breakage(
        "services/aih-order-sign.yaml",
        'patient: "Patient/{{context.patientId}}"',
        'patient: "Patient/{{context.patientId}}"\n'
        '  drafts: "MedicationRequest?_id={{context.draftOrders}}"',
        "prefetch.drafts",
        "token {{context.draftOrders}} is not a CDS Hooks 2.0 prefetch token",
    ),
}


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_rules_validate_names_file_and_field(
    capsys: pytest.CaptureFixture[str], broken_cards: Path, name: str
) -> None:
    breakage = BREAKAGES[name]
    target = broken_cards / breakage.file
    replace_once(target, breakage.old, breakage.new)
    status = main(["rules", "validate", "--cards-dir", str(broken_cards)])
    captured = capsys.readouterr()
    assert status != 0
    assert not captured.out.startswith("OK")
    # file:line: field: message (the line where the field is, counted from 1)
    assert re.search(rf"{re.escape(str(target))}:\d+: {re.escape(breakage.field)}: ", captured.err)
    assert breakage.message in captured.err


def test_rules_validate_warns_on_a_threshold_written_as_a_literal(
    capsys: pytest.CaptureFixture[str], broken_cards: Path
) -> None:
    """Card text that says "3 x ULN" where the rule's parameter says 3 would not follow a change
    of the parameter: validate still passes but says where to write ${param.NAME}."""
    target = broken_cards / "rules" / "anti-tnf-liver-injury.yaml"
    replace_once(target, "${param.warning_alt_multiple}\u00d7${reference}", "3\u00d7${reference}")
    assert main(["rules", "validate", "--cards-dir", str(broken_cards)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("OK")
    assert (
        f"warning: {target}: outcomes.marked-elevation.detail: literal 3 equals the value of"
        " parameter combined_alt_multiple" in captured.err
    )
    assert "warning_alt_multiple" in captured.err
    assert capsys.readouterr().err == ""
    assert main(["rules", "validate", "--cards-dir", str(CARDS)]) == 0
    assert "warning" not in capsys.readouterr().err
