"""Small helpers shared by rules: dates in card text, windows, population checks."""

from __future__ import annotations

from datetime import datetime, timedelta

from cds_service.common.fhirdates import age_in_years
from cds_service.patient.record import PatientRecord


def fmt_date(when: datetime | None) -> str:
    return when.date().isoformat() if when else "undated"


def within_days(when: datetime | None, now: datetime, days: int) -> bool:
    """True when ``when`` lies in the ``days`` before now (a result dated up to a day ahead counts:
    clocks of labs and EHRs differ)."""
    if when is None:
        return False
    return now - timedelta(days=days) <= when <= now + timedelta(days=1)


def age_at(record: PatientRecord, now: datetime) -> int | None:
    return age_in_years(record.birth_date, now.date()) if record.birth_date else None


def describe_sex(gender: str | None) -> str:
    return {"female": "female", "male": "male", "other": "other", "unknown": "unknown"}.get(
        gender or "", "not recorded"
    )
