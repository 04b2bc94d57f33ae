"""Silent cards for review: what a rule in ``mode: silent`` would have shown, from the card log.

The card log holds, per silent card, the rule, outcome, indicator, service, client and tenant,
hookInstance, issue time and a keyed hash of the patient id (HMAC-SHA256 with
``CDS_PATIENT_HASH_KEY``); never the patient id. An authorised reviewer finds the encounter from
the client/tenant (which EHR), hookInstance and time in that EHR's CDS Hooks audit log, under the
EHR's own access rules, or checks a known patient by hashing its id with the same key.

The rendered text (``CDS_SILENT_CARD_TEXT``, off by default) is shown while it is kept; a text
past its retention is never shown, even before it is deleted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, select

from cds_service.storage.store import CardLog, SilentCardText, Store, utc_naive


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
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    start, end = period.bounds()
    kept = and_(
        SilentCardText.card_uuid == CardLog.uuid,
        SilentCardText.expires_at > utc_naive(now or datetime.now(UTC)),
    )
    filters = [CardLog.mode == "silent", CardLog.issued_at >= start, CardLog.issued_at < end]
    if rule:
        filters.append(CardLog.rule_id == rule)
    if patient_hash:
        filters.append(CardLog.patient_hash == patient_hash)
    with store.sessions() as session:
        found = session.execute(
            select(CardLog, SilentCardText.text)
            .outerjoin(SilentCardText, kept)
            .where(*filters)
            .order_by(CardLog.issued_at)
        ).all()
    rows = [row for row, _text in found]
    texts = {row.uuid: text for row, text in found}
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
                "client": row.client,
                "tenant": row.tenant,
                "hook_instance": row.hook_instance,
                "patient_hash": row.patient_hash,
                "text": texts[row.uuid],
            }
            for row in rows[-limit:]
        ],
        "shown": min(limit, len(rows)),
    }
