"""``aih-cds silent review``: the cards a silent rule logged, without SQL."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from flask import Flask

from cds_service.cli.main import main
from cds_service.common.settings import DEFAULT_CARDS_DIR
from cds_service.informatics.charts import DEFAULT_SCENARIOS_DIR
from tests.conftest import NOW


@pytest.fixture
def silent_service(app_factory: Callable[..., Flask], tmp_path: Path) -> str:
    """The mmf rule running silently; one pregnant patient's MMF order signed. The database URL."""
    cards = shutil.copytree(DEFAULT_CARDS_DIR, tmp_path / "cards-silent")
    path = cards / "rules" / "mmf-teratogenicity.yaml"
    rule = yaml.safe_load(path.read_text(encoding="utf-8"))
    rule["mode"] = "silent"
    path.write_text(yaml.safe_dump(rule, sort_keys=False), encoding="utf-8")
    app = app_factory(cards_dir=cards)
    request = json.loads(
        (DEFAULT_SCENARIOS_DIR / "mmf-pregnant-status" / "request.json").read_text("utf-8")
    )
    answer = app.test_client().post("/cds-services/aih-order-sign", json=request).get_json()
    assert answer["cards"] == []  # silent: nothing shown
    url: str = app.extensions["aih_cds"].settings.database_url
    return url


def review(capsys: pytest.CaptureFixture[str], url: str, *extra: str) -> dict[str, object]:
    day = NOW.date().isoformat()
    argv = ["silent", "review", "--database-url", url, "--since", day, "--until", day, "--json"]
    assert main([*argv, *extra]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_lists_silent_cards_with_what_finds_the_encounter(
    silent_service: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    found = review(capsys, silent_service)
    assert found["total"] == 1
    assert found["by_rule"] == [
        {"rule": "mmf-teratogenicity", "outcome": "pregnant", "indicator": "critical", "count": 1}
    ]
    [card] = found["cards"]  # type: ignore[misc]
    assert card["hook_instance"]
    assert "mmf-pregnant-status" not in json.dumps(found)  # no patient id in the log

    monkeypatch.setenv("CDS_PATIENT_HASH_KEY", "test-key")
    assert review(capsys, silent_service, "--patient", "mmf-pregnant-status")["total"] == 1
    assert review(capsys, silent_service, "--patient", "someone-else")["total"] == 0


def test_patient_filter_needs_the_key_and_text_output_names_the_database(
    silent_service: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CDS_PATIENT_HASH_KEY", raising=False)
    argv = ["silent", "review", "--database-url", silent_service, "--patient", "x"]
    assert main(argv) == 2
    assert "needs CDS_PATIENT_HASH_KEY" in capsys.readouterr().err
    day = NOW.date().isoformat()
    argv = ["silent", "review", "--database-url", silent_service, "--since", day]
    assert main([*argv, "--until", day]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"database: {silent_service}\n")
    assert "mmf-teratogenicity" in out
    assert "pregnant" in out
