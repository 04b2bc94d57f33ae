"""The rendered text of silent cards: stored only when switched on (CDS_SILENT_CARD_TEXT), kept
CDS_SILENT_CARD_TEXT_DAYS, never shown past that, deleted at the next write and by the nightly
purge; ``aih-cds silent review`` shows it, or says plainly that it is not stored."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from sqlalchemy import func, select

from cds_service.cli.main import main
from cds_service.common.settings import DEFAULT_CARDS_DIR, Settings, SettingsError
from cds_service.storage.scope import ClientScope
from cds_service.storage.store import CardLogEntry, LoggedCard, SilentCardText, Store
from tests import factories as f
from tests.security.test_feedback_scope import MMF_BODY as PREGNANT_MMF
from tests.security.test_feedback_scope import SERVICE as SIGN

DAYS = 14


class SilentService:
    """The mmf rule running silently, on a clock the test moves."""

    def __init__(self, app_factory: Callable[..., Flask], cards: Path, **settings: Any) -> None:
        self.now = f.NOW
        self.app = app_factory(cards_dir=cards, clock=lambda: self.now, **settings)
        self.url: str = self.app.extensions["aih_cds"].settings.database_url

    def sign(self) -> None:
        answer = self.app.test_client().post(SIGN, json=PREGNANT_MMF)
        assert answer.status_code == 200
        assert answer.get_json()["cards"] == []  # silent: nothing shown

    def texts(self) -> int:
        store: Store = self.app.extensions["aih_cds"].store
        with store.sessions() as session:
            return session.scalar(select(func.count()).select_from(SilentCardText)) or 0


@pytest.fixture
def silent_cards_dir(tmp_path: Path) -> Path:
    cards = shutil.copytree(DEFAULT_CARDS_DIR, tmp_path / "cards-silent")
    path = cards / "rules" / "mmf-teratogenicity.yaml"
    rule = yaml.safe_load(path.read_text(encoding="utf-8"))
    rule["mode"] = "silent"
    path.write_text(yaml.safe_dump(rule, sort_keys=False), encoding="utf-8")
    return cards


@pytest.fixture
def text_service(app_factory: Callable[..., Flask], silent_cards_dir: Path) -> SilentService:
    """Text storage on, kept DAYS days; one silent card signed at f.NOW."""
    settings = {"silent_card_text": True, "silent_card_text_days": DAYS}
    service = SilentService(app_factory, silent_cards_dir, **settings)
    service.sign()
    return service


def review(
    capsys: pytest.CaptureFixture[str], url: str, now: datetime, *, as_json: bool = True
) -> Any:
    day = f.NOW.date().isoformat()
    argv = ["silent", "review", "--database-url", url, "--since", day, "--until", day]
    argv += ["--now", now.isoformat(), *(["--json"] if as_json else [])]
    assert main(argv) == 0
    out = capsys.readouterr().out
    return json.loads(out) if as_json else out


def test_text_is_not_stored_by_default_and_the_review_says_so(
    app_factory: Callable[..., Flask],
    silent_cards_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = SilentService(app_factory, silent_cards_dir)
    service.sign()
    assert service.texts() == 0
    found = review(capsys, service.url, f.NOW)
    assert found["text_storage"] == {"on": False, "days": None}
    assert [card["text"] for card in found["cards"]] == [None]
    shown = review(capsys, service.url, f.NOW, as_json=False)
    assert "rendered text: NOT STORED (CDS_SILENT_CARD_TEXT=off)" in shown


def test_stored_text_is_shown_until_its_retention_ends_then_deleted(
    text_service: SilentService,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = text_service
    assert service.texts() == 1
    monkeypatch.setenv("CDS_SILENT_CARD_TEXT", "on")
    monkeypatch.setenv("CDS_SILENT_CARD_TEXT_DAYS", str(DAYS))
    [card] = review(capsys, service.url, f.NOW)["cards"]
    assert "mycophenolate is contraindicated in pregnancy" in card["text"]
    assert "Suggestion: Remove the mycophenolate order" in card["text"]
    shown = review(capsys, service.url, f.NOW, as_json=False)
    assert f"rendered text: stored, kept {DAYS} days" in shown
    assert "    | " in shown  # the text, indented under its card

    last_day = f.NOW + timedelta(days=DAYS) - timedelta(seconds=1)
    assert review(capsys, service.url, last_day)["cards"][0]["text"] == card["text"]
    expired = f.NOW + timedelta(days=DAYS)
    assert review(capsys, service.url, expired)["cards"][0]["text"] is None  # hidden at read
    assert "(no text: issued while text storage was off, or past its retention)" in review(
        capsys, service.url, expired, as_json=False
    )

    service.now = expired  # the next silent card's write deletes the expired text
    service.sign()
    assert service.texts() == 1


def test_the_nightly_purge_deletes_expired_text(
    text_service: SilentService, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    service = text_service
    store: Store = service.app.extensions["aih_cds"].store
    assert store.purge(f.NOW + timedelta(days=DAYS - 1), 0, 0).silent_texts == 0
    assert store.purge(f.NOW + timedelta(days=DAYS), 0, 0).silent_texts == 1
    assert service.texts() == 0
    service.sign()
    monkeypatch.setenv("CDS_DATABASE_URL", service.url)
    assert main(["db", "purge"]) == 0  # today is long after f.NOW + DAYS
    assert "and 1 silent-card texts past their retention" in capsys.readouterr().out
    assert service.texts() == 0


def test_active_cards_never_store_text(app_factory: Callable[..., Flask]) -> None:
    app = app_factory(silent_card_text=True)
    assert app.test_client().post(SIGN, json=PREGNANT_MMF).get_json()["cards"]
    store: Store = app.extensions["aih_cds"].store
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(SilentCardText)) == 0


@pytest.mark.parametrize("days", ["0", "-1", "367"])
def test_text_retention_must_be_bounded(days: str) -> None:
    with pytest.raises(SettingsError, match="CDS_SILENT_CARD_TEXT_DAYS"):
        Settings.load(environ={"CDS_SILENT_CARD_TEXT_DAYS": days})


def test_spooled_entries_keep_text_and_scope(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'log.sqlite'}", b"key")
    store.create_schema()
    card = LoggedCard("c1", "rule", "outcome", "info", (), mode="silent", text="Summary")
    entry = store.card_log_entry(
        "svc",
        "hook",
        "pt",
        [card],
        f.NOW,
        scope=ClientScope("https://ehr", "t"),
        text_expires_at=f.NOW + timedelta(days=1),
    )
    assert entry is not None
    again = CardLogEntry.from_json(json.loads(json.dumps(entry.to_json())))
    assert again == entry
    old = entry.to_json()
    for row in old["cards"]:
        del row["client"], row["tenant"]
    del old["texts"]  # an entry spooled before this version
    legacy = CardLogEntry.from_json(old)
    assert (legacy.cards[0]["client"], legacy.cards[0]["tenant"], legacy.texts) == ("", "", ())
    store.replay_card_log([again])
    store.replay_card_log([again])  # replay is idempotent, text included
    with store.sessions() as session:
        assert session.scalars(select(SilentCardText.text)).all() == ["Summary"]
