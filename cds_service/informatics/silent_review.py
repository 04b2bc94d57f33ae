"""Silent cards for review: what a rule in ``mode: silent`` would have shown, from the card log.

The card log holds, per silent card, the rule, outcome, indicator, service, hookInstance, issue
time and a keyed hash of the patient id (HMAC-SHA256 with ``CDS_PATIENT_HASH_KEY``); never the
patient id. An authorised reviewer finds the encounter from the hookInstance and time in the
EHR's CDS Hooks audit log, or checks a known patient by hashing its id with the same key.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from cds_service.storage.store import CardLog, Store, utc_naive


@dataclass(frozen=True)
class Period:
    since: date
    until: date  # inclusive

    def bounds(self) -> tuple[datetime, datetime]:
        start = datetime.combine(self.since, time(), UTC)
        end = datetime.combine(self.until + timedelta(days=1), time(), UTC)
        return utc_naive(start), utc_naive(end)


def silent_cards(
    store: Store,
    period: Period,
    rule: str | None = None,
    patient_hash: str | None = None,
    limit: int = 200,
) -> dict[str, Any]:
    start, end = period.bounds()
    filters = [CardLog.mode == "silent", CardLog.issued_at >= start, CardLog.issued_at < end]
    if rule:
        filters.append(CardLog.rule_id == rule)
    if patient_hash:
        filters.append(CardLog.patient_hash == patient_hash)
    with store.sessions() as session:
        rows = list(session.scalars(select(CardLog).where(*filters).order_by(CardLog.issued_at)))
    counts = Counter((r.rule_id, r.rule_outcome, r.indicator) for r in rows)
    return {
        "since": period.since.isoformat(),
        "until": period.until.isoformat(),
        "rule": rule,
        "total": len(rows),
        "by_rule": [
            {"rule": rule_id, "outcome": outcome, "indicator": indicator, "count": count}
            for (rule_id, outcome, indicator), count in sorted(counts.items())
        ],
        "cards": [
            {
                "issued_at": row.issued_at.replace(tzinfo=UTC).isoformat(timespec="seconds"),
                "rule": row.rule_id,
                "outcome": row.rule_outcome,
                "indicator": row.indicator,
                "service": row.service_id,
                "hook_instance": row.hook_instance,
                "patient_hash": row.patient_hash,
            }
            for row in rows[-limit:]
        ],
        "shown": min(limit, len(rows)),
    }
