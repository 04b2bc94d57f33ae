"""Card log and feedback storage: hashing, idempotency, concurrent duplicates, report."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cds_service.hooks.protocol import FeedbackItem
from cds_service.storage.store import LoggedCard, Store
from tests.factories import NOW


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'log.sqlite'}", b"key")
    s.create_schema()
    log_cards(
        s,
        "hook-1",
        "pt-1",
        [LoggedCard("card-1", "mmf-teratogenicity", "pregnant", "critical", ("sug-1",))],
    )
    return s


def log_cards(store: Store, hook: str, patient: str, cards: list[LoggedCard]) -> None:
    entry = store.card_log_entry("aih-order-sign", hook, patient, cards, NOW)
    assert entry is not None
    store.write_card_log(entry)


def item(outcome: str = "overridden", second: int = 0, card: str = "card-1") -> FeedbackItem:
    return FeedbackItem(
        card=card,
        outcome=outcome,
        outcome_timestamp=datetime(2026, 6, 1, 12, 5, second, tzinfo=UTC),
        accepted_suggestions=("sug-1",) if outcome == "accepted" else (),
        reason_system="urn:aih-cds:override-reason",
        reason_code="benefit-outweighs-risk",
        reason_display=None,
        user_comment="discussed",
    )


def test_patient_id_is_stored_only_as_keyed_hash(store: Store, tmp_path: Path) -> None:
    raw = (tmp_path / "log.sqlite").read_bytes()
    assert b"pt-1" not in raw
    assert store.patient_hash("pt-1") != Store("sqlite://", b"other").patient_hash("pt-1")
    assert len(store.patient_hash("pt-1")) == 64


def test_feedback_is_idempotent(store: Store) -> None:
    first = store.record_feedback("aih-order-sign", [item()], NOW)
    again = store.record_feedback("aih-order-sign", [item(), item(second=9)], NOW)
    assert (first.stored, first.duplicates) == (1, 0)
    assert (again.stored, again.duplicates) == (0, 2)
    assert len(store.feedback_for_card("card-1")) == 1


def test_a_card_has_one_outcome_a_conflicting_one_is_reported(store: Store) -> None:
    receipt = store.record_feedback("aih-order-sign", [item(), item("accepted", 1)], NOW)
    assert receipt.results == ("stored", "conflict")
    [row] = store.feedback_for_card("card-1")
    assert row.outcome == "overridden"


def test_suggestions_and_reasons_the_card_never_offered_are_kept_apart(store: Store) -> None:
    never_offered = FeedbackItem(**{**item("accepted").__dict__, "accepted_suggestions": ("x",)})
    offered = {"mmf-teratogenicity": frozenset({"benefit-outweighs-risk"})}
    odd_reason = FeedbackItem(**{**item().__dict__, "reason_code": "made-up"})
    receipt = store.record_feedback("aih-order-sign", [never_offered, odd_reason], NOW, offered)
    assert receipt.results == ("unknown-suggestion", "unknown-reason")
    assert store.feedback_for_card("card-1") == []


def test_unknown_card_or_other_service_is_not_stored(store: Store) -> None:
    receipt = store.record_feedback("aih-order-sign", [item(card="nope")], NOW)
    other = store.record_feedback("aih-order-select", [item()], NOW)
    assert (receipt.unknown_cards, other.unknown_cards) == (1, 1)
    assert store.feedback_for_card("card-1") == []


def test_concurrent_duplicates_store_once(store: Store) -> None:
    receipts = []
    barrier = threading.Barrier(8)

    def send() -> None:
        barrier.wait()
        receipts.append(store.record_feedback("aih-order-sign", [item()], NOW))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.stored for r in receipts) == 1
    assert sum(r.duplicates for r in receipts) == 7
    assert len(store.feedback_for_card("card-1")) == 1


def test_report_by_rule(store: Store) -> None:
    store.record_feedback("aih-order-sign", [item()], NOW)
    silent = LoggedCard("card-2", "mmf-teratogenicity", "pregnant", "critical", (), mode="silent")
    log_cards(store, "hook-2", "pt-2", [silent])  # not in the report
    (row,) = store.feedback_by_rule()
    assert (row.rule_id, row.indicator, row.issued, row.accepted, row.overridden) == (
        "mmf-teratogenicity",
        "critical",
        1,
        0,
        1,
    )


def test_db_purge_command_uses_the_retention_settings(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cds_service.cli.main import main

    store.record_feedback("aih-order-sign", [item()], NOW)
    monkeypatch.setenv("CDS_DATABASE_URL", str(store.engine.url))
    monkeypatch.setenv("CDS_FEEDBACK_RETENTION_DAYS", "1")
    assert main(["db", "purge"]) == 0  # NOW is in the past: the feedback is older than a day
    assert store.count_rows() == (1, 0)
    assert main(["db", "purge", "--card-log-days", "1"]) == 0
    assert store.count_rows() == (0, 0)
    assert "purged 1 cards" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["db", "purge", "--card-log-days", "-3"])


def test_purge_keeps_everything_when_retention_is_zero(store: Store) -> None:
    store.record_feedback("aih-order-sign", [item()], NOW)
    report = store.purge(NOW.replace(year=2040), card_log_days=0, feedback_days=0)
    assert (report.cards, report.feedback, store.count_rows()) == (0, 0, (1, 1))
