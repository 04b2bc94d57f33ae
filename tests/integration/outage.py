"""A card-log database outage under real gunicorn (2 workers) and a bounded request loop on
127.0.0.1: what the fault tests of PostgreSQL and SQLite share.

``run_outage`` makes calls before, during and after the outage and returns what happened; the
tests assert on it and print it (``pytest -s`` shows the figures)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests import factories as f
from tests.integration.ports import free_port
from tests.integration.serving.gunicorn_process import HTTP_TIMEOUT, gunicorn_serving
from tests.integration.serving.test_gunicorn_metrics import samples, value

OUTAGE_CALLS = 40  # hook calls made while the database is down (4 at a time)
CALLS_AROUND = 8  # before and after the outage
RECOVERY_POLLS = 240  # x 0.25 s: at most a minute for the spool to drain
FEEDBACK_RETRIES = 40


@dataclass
class OutageReport:
    calls_during: int = 0
    answers_during: dict[int, int] = field(default_factory=dict)  # status -> count
    calls_without_cards: int = 0
    issued: list[str] = field(default_factory=list)  # every card uuid answered, whole run
    peak_spool_depth: int = 0
    ready_during: set[int] = field(default_factory=set)  # /readyz statuses seen
    database_reported_down: bool = False
    feedback_cards: list[str] = field(default_factory=list)
    feedback_during: list[int] = field(default_factory=list)
    feedback_retry_after: str = ""
    feedback_after: dict[str, int] = field(default_factory=dict)
    feedback_attempts_after: int = 0
    spooled_metric: float = 0.0
    replayed_metric: float = 0.0
    dropped_metric: float = 0.0

    def summary(self, database: str, logged: int, distinct: int) -> str:
        return (
            f"[{database} outage] calls during outage: {self.calls_during}; answers: "
            f"{self.answers_during} (without cards: {self.calls_without_cards}); /readyz during: "
            f"{sorted(self.ready_during)}; spool depth at peak: {self.peak_spool_depth}; "
            f"feedback during: {self.feedback_during} (Retry-After {self.feedback_retry_after}), "
            f"after {self.feedback_attempts_after} attempt(s): {self.feedback_after}; "
            f"card log after recovery: {logged} rows ({distinct} distinct) vs "
            f"{len(self.issued)} cards issued; metrics spooled={self.spooled_metric:g} "
            f"replayed={self.replayed_metric:g} dropped={self.dropped_metric:g}"
        )


@contextmanager
def gunicorn(tmp_path: Path, database_url: str, **settings: str) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "CDS_AUTH": "off",
        "CDS_DATABASE_URL": database_url,
        "CDS_SPOOL_DIR": str(tmp_path / "spool"),
        "CDS_SPOOL_RETRY_S": "0.5",
        "CDS_PATIENT_HASH_KEY": "test-key",
        "CDS_BIND": f"127.0.0.1:{port}",
        "CDS_WORKERS": "2",
        "CDS_THREADS": "4",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        **settings,
    }
    with gunicorn_serving(env, tmp_path / "server.log") as base:
        yield base


# card uuid -> an override reason code that card offered (feedback must name one it offered)
OFFERED_REASON: dict[str, str] = {}


def hook_call(base: str) -> tuple[int, list[str]]:
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    response = requests.post(
        f"{base}/cds-services/aih-order-sign",
        json=body,
        headers={"Connection": "close"},  # a new connection each time: both workers answer
        timeout=HTTP_TIMEOUT,
    )
    cards = response.json().get("cards", []) if response.status_code == 200 else []
    for card in cards:
        reasons = card.get("overrideReasons") or [{"code": "none-offered"}]
        OFFERED_REASON[card["uuid"]] = reasons[0]["code"]
    return response.status_code, [card["uuid"] for card in cards]


def feedback(base: str, card_uuid: str) -> requests.Response:
    item = {
        "card": card_uuid,
        "outcome": "overridden",
        "outcomeTimestamp": "2026-06-01T12:05:00Z",
        "overrideReason": {"reason": {"code": OFFERED_REASON[card_uuid], "display": "other"}},
    }
    return requests.post(
        f"{base}/cds-services/aih-order-sign/feedback",
        json={"feedback": [item]},
        timeout=HTTP_TIMEOUT,
    )


def readiness(base: str) -> requests.Response:
    return requests.get(f"{base}/readyz", timeout=HTTP_TIMEOUT)


def run_outage(base: str, begin: Callable[[], None], end: Callable[[], None]) -> OutageReport:
    report = OutageReport()
    with ThreadPoolExecutor(4) as pool:
        before = list(pool.map(lambda _: hook_call(base), range(CALLS_AROUND)))
        assert {status for status, _ in before} == {200}
        report.issued += [u for _, uuids in before for u in uuids]
        begin()
        try:
            for batch in range(OUTAGE_CALLS // 8):
                answers = list(pool.map(lambda _: hook_call(base), range(8)))
                report.calls_during += len(answers)
                for status, uuids in answers:
                    report.answers_during[status] = report.answers_during.get(status, 0) + 1
                    report.calls_without_cards += not uuids
                    report.issued += uuids
                ready = readiness(base)
                report.ready_during.add(ready.status_code)
                state = ready.json()
                report.peak_spool_depth = max(report.peak_spool_depth, state["spoolDepth"] or 0)
                report.database_reported_down |= state["database"] is False
                if batch == 0:  # a card issued before the outage, and one issued during it
                    report.feedback_cards = [report.issued[0], report.issued[-1]]
                    for card in report.feedback_cards:
                        refused = feedback(base, card)
                        report.feedback_during.append(refused.status_code)
                        report.feedback_retry_after = refused.headers.get("Retry-After", "")
        finally:
            end()
        wait_for_empty_spool(base)
        for card in report.feedback_cards:
            for key, count in retry_feedback(base, card, report).items():
                report.feedback_after[key] = report.feedback_after.get(key, 0) + count
        after = list(pool.map(lambda _: hook_call(base), range(CALLS_AROUND)))
        assert {status for status, _ in after} == {200}
        report.issued += [u for _, uuids in after for u in uuids]
    # A worker that spooled keeps spooling until its replay thread sees the spool empty (at
    # most CDS_SPOOL_RETRY_S): calls just after the recovery may still pass through the spool.
    wait_for_empty_spool(base)
    for _ in range(RECOVERY_POLLS):
        found = samples(base)
        report.spooled_metric = value(found, "cds_card_log_entries_total", result="spooled")
        report.replayed_metric = value(found, "cds_card_log_entries_total", result="replayed")
        report.dropped_metric = value(found, "cds_card_log_dropped_total")
        if report.replayed_metric >= report.spooled_metric:
            break
        time.sleep(0.25)
    return report


def wait_for_empty_spool(base: str) -> None:
    for _ in range(RECOVERY_POLLS):
        state = readiness(base).json()
        if state["spoolDepth"] == 0 and state["database"]:
            return
        time.sleep(0.25)
    raise AssertionError(f"spool not drained after recovery: {state}")


def retry_feedback(base: str, card_uuid: str, report: OutageReport) -> dict[str, int]:
    """Send as a client would: again after Retry-After (capped: the test stays short)."""
    for _ in range(FEEDBACK_RETRIES):
        report.feedback_attempts_after += 1
        answer = feedback(base, card_uuid)
        if answer.status_code == 200:
            receipt: dict[str, int] = answer.json()
            return receipt
        assert answer.status_code == 503
        time.sleep(min(float(answer.headers["Retry-After"]), 0.5))
    raise AssertionError("feedback still refused after recovery")
