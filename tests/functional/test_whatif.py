"""`aih-cds whatif`: cards that a proposed cards/ changes, over the golden scenarios and any
directory of hook requests or patient Bundles."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cds_service.cli.main import main
from cds_service.common.settings import DEFAULT_CARDS_DIR
from cds_service.informatics.charts import DEFAULT_SCENARIOS_DIR, scenario_dirs

MMF = "mmf-teratogenicity"


@pytest.fixture
def proposed(tmp_path: Path) -> Callable[[Callable[[dict[str, Any]], None]], Path]:
    """A copy of cards/ with the mmf rule file changed by ``edit``."""

    def make(edit: Callable[[dict[str, Any]], None]) -> Path:
        cards = tmp_path / "proposed"
        shutil.copytree(DEFAULT_CARDS_DIR, cards)
        path = cards / "rules" / f"{MMF}.yaml"
        rule = yaml.safe_load(path.read_text(encoding="utf-8"))
        edit(rule)
        path.write_text(yaml.safe_dump(rule, sort_keys=False), encoding="utf-8")
        return cards

    return make


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["whatif", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def changes_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["input"]: c for c in report["changes"]}


def test_same_configuration_changes_nothing(
    capsys: pytest.CaptureFixture[str], proposed: Callable[..., Path]
) -> None:
    code, report = run(capsys, "--rules", str(proposed(lambda r: None)))
    assert code == 0
    assert report["changed"] == 0
    assert report["rule_changes"] == []
    assert report["inputs"] == len(scenario_dirs(DEFAULT_SCENARIOS_DIR)) > 0


def test_refuses_to_compare_a_folder_with_itself(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(DEFAULT_CARDS_DIR.parent)
    assert main(["whatif", "--rules", "cards/", "--no-scenarios"]) == 2
    assert "same folder" in capsys.readouterr().err
    argv = ["whatif", "--rules", "cards", "--against", str(DEFAULT_CARDS_DIR), "--no-scenarios"]
    assert main(argv) == 2
    assert "same folder" in capsys.readouterr().err


def test_a_rule_switched_to_silent_is_reported_card_by_card_and_as_a_setting(
    capsys: pytest.CaptureFixture[str], proposed: Callable[..., Path]
) -> None:
    cards = proposed(lambda r: r.update(mode="silent"))
    code, report = run(capsys, "--rules", str(cards))
    assert code == 1
    assert report["rule_changes"] == [
        {"rule": MMF, "field": "mode", "current": "active", "proposed": "silent"}
    ]
    change = changes_of(report)["scenario:mmf-pregnant-status"]
    assert (change["change"], change["current"], change["proposed"]) == (
        "mode-changed",
        "active",
        "silent",
    )
    assert {c["change"] for c in report["changes"]} == {"mode-changed"}

    assert main(["whatif", "--rules", str(cards)]) == 1
    table = capsys.readouterr().out
    assert "clinicians no longer see them" in table


def test_card_text_change_is_reported_with_the_first_differing_line(
    capsys: pytest.CaptureFixture[str], proposed: Callable[..., Path]
) -> None:
    def reword(rule: dict[str, Any]) -> None:
        rule["outcomes"]["pregnant"]["summary"] += " (reviewed)"

    code, report = run(capsys, "--rules", str(proposed(reword)))
    assert code == 1
    change = changes_of(report)["scenario:mmf-pregnant-status"]
    assert change["change"] == "text-changed"
    assert change["current"].startswith("summary: ")
    assert change["proposed"].endswith("(reviewed)")
    assert "(reviewed)" not in change["current"]


def test_a_parameter_change_without_any_card_change_still_counts(
    capsys: pytest.CaptureFixture[str], proposed: Callable[..., Path]
) -> None:
    cards = proposed(lambda r: r["parameters"].update(pregnancy_lookback_days=281))
    code, report = run(capsys, "--rules", str(cards), "--no-scenarios")
    assert code == 1
    assert report["changes"] == []
    assert report["rule_changes"] == [
        {"rule": MMF, "field": "pregnancy_lookback_days", "current": "280", "proposed": "281"}
    ]


def test_wider_negative_test_window_turns_a_warning_into_info(
    capsys: pytest.CaptureFixture[str], proposed: Callable[..., Path]
) -> None:
    cards = proposed(lambda r: r["parameters"].update(negative_test_window_days=14))
    code, report = run(capsys, "--rules", str(cards))
    assert code == 1
    change = changes_of(report)["scenario:mmf-negative-hcg-10-days"]
    assert change == {
        "input": "scenario:mmf-negative-hcg-10-days",
        "service": "aih-order-sign",
        "rule": MMF,
        "change": "indicator-changed",
        "current": "warning pregnancy-test-needed",
        "proposed": "info recent-negative-test",
    }
    # a 3-day-old negative test was already inside the window: unchanged
    assert "scenario:mmf-negative-hcg-3-days" not in changes_of(report)


def test_silenced_outcome_disappears_and_against_swaps_direction(
    capsys: pytest.CaptureFixture[str], proposed: Callable[..., Path]
) -> None:
    cards = proposed(lambda r: r["outcomes"]["male-patient"].update(enabled=False))
    code, report = run(capsys, "--rules", str(cards))
    assert code == 1
    assert changes_of(report)["scenario:mmf-male"]["change"] == "disappeared"
    assert {c["rule"] for c in report["changes"]} == {MMF}
    assert {c["change"] for c in report["changes"]} == {"disappeared"}

    code, report = run(capsys, "--rules", str(DEFAULT_CARDS_DIR), "--against", str(cards))
    assert code == 1
    assert changes_of(report)["scenario:mmf-male"]["change"] == "appeared"


def test_table_lists_each_change(
    capsys: pytest.CaptureFixture[str], proposed: Callable[..., Path]
) -> None:
    cards = proposed(lambda r: r["outcomes"]["pregnant"].update(indicator="warning"))
    assert main(["whatif", "--rules", str(cards)]) == 1
    table = capsys.readouterr().out
    assert "scenario:mmf-pregnant-status" in table
    assert "critical pregnant" in table
    assert "warning pregnant" in table
    assert "indicator-changed" in table


def test_directory_of_requests_and_bundles(
    capsys: pytest.CaptureFixture[str], proposed: Callable[..., Path], tmp_path: Path
) -> None:
    export = tmp_path / "site-export"
    (export / "requests").mkdir(parents=True)
    scenario = DEFAULT_SCENARIOS_DIR / "mmf-male"
    shutil.copy(scenario / "request.json", export / "requests" / "male.json")
    # a transaction Bundle whose draft MedicationRequest is the order being signed
    pregnant = DEFAULT_SCENARIOS_DIR / "mmf-pregnant-status"
    bundle = json.loads((pregnant / "bundle.json").read_text(encoding="utf-8"))
    draft = json.loads((pregnant / "draft.json").read_text(encoding="utf-8"))["draftOrders"][0]
    bundle["entry"].append({"resource": draft})
    (export / "patients.json").write_text(json.dumps(bundle), encoding="utf-8")

    cards = proposed(lambda r: r.update(enabled=False))
    code, report = run(
        capsys,
        "--rules",
        str(cards),
        "--no-scenarios",
        "--now",
        "2026-06-01T12:00:00Z",
        str(export),
    )
    assert code == 1
    found = changes_of(report)
    assert found["site-export/requests/male.json"]["current"] == "info male-patient"
    assert found["site-export/patients.json#mmf-pregnant-status"]["current"] == "critical pregnant"
    assert all(c["change"] == "disappeared" for c in report["changes"])


def test_invalid_proposal_or_input_exits_2(
    capsys: pytest.CaptureFixture[str], proposed: Callable[..., Path], tmp_path: Path
) -> None:
    cards = proposed(lambda r: r["outcomes"]["pregnant"].update(indicator="severe"))
    assert main(["whatif", "--rules", str(cards)]) == 2
    assert "indicator" in capsys.readouterr().err

    unchanged = shutil.copytree(DEFAULT_CARDS_DIR, tmp_path / "unchanged")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.json").write_text("{not json", encoding="utf-8")
    assert main(["whatif", "--rules", str(unchanged), str(broken)]) == 2
    assert "x.json: not valid JSON" in capsys.readouterr().err
    assert main(["whatif", "--rules", str(unchanged), str(tmp_path / "nope")]) == 2


def test_an_error_under_one_configuration_only_is_a_change() -> None:
    from cds_service.informatics.whatif import Answer, CardKey, _diff

    ok = Answer({MMF: CardKey(MMF, "pregnant", "critical", "s")})
    failed = Answer(error="HTTP 412: needs data")
    assert _diff(("x", "svc"), ok, failed)[0].change == "error"
    assert _diff(("x", "svc"), failed, Answer(error="HTTP 412: needs data")) == []
    same_outcome_new_text = Answer({MMF: CardKey(MMF, "pregnant", "critical", "other summary")})
    assert [c.change for c in _diff(("x", "svc"), ok, same_outcome_new_text)] == ["text-changed"]
    silenced = Answer({MMF: CardKey(MMF, "pregnant", "critical", "s", mode="silent")})
    assert [c.change for c in _diff(("x", "svc"), ok, silenced)] == ["mode-changed"]
