"""FHIR date, dateTime and instant parsing, partial dates included: the one place dates are read."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
# Dates outside these years are read as "no date": date arithmetic (windows of days or years
# around them) must never leave the range a datetime can hold.
MIN_YEAR, MAX_YEAR = 2, 9997


def parse_fhir_datetime(value: object) -> datetime | None:
    """Parse a FHIR date/dateTime/instant to an aware UTC datetime.

    Partial dates (``2024``, ``2024-03``) sort as their first instant; a dateTime without a
    zone is read as UTC (FHIR requires a zone when time is given, so this is only leniency).
    Anything unreadable gives None, which callers treat as "no date", never as "now".
    """
    if not isinstance(value, str) or not value:
        return None
    return _parse(value)


@lru_cache(maxsize=4096)  # one visit's results share a time; bounded, holds no identifiers
def _parse(value: str) -> datetime | None:
    match = _PARTIAL.match(value)
    if match:
        year, month, day = match.groups()
        try:
            return _in_range(datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC))
        except ValueError:
            return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return _in_range(parsed.astimezone(UTC))
    except (ValueError, OverflowError):  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        return None


def _in_range(moment: datetime) -> datetime | None:
    return moment if MIN_YEAR <= moment.year <= MAX_YEAR else None


def parse_fhir_date(value: object) -> date | None:
    parsed = parse_fhir_datetime(value)
    return parsed.date() if parsed else None


def age_in_years(birth: date, on: date) -> int:
    years = on.year - birth.year
    if (on.month, on.day) < (birth.month, birth.day):
        years -= 1
    return years


def days_between(earlier: datetime, later: datetime) -> float:
    return (later - earlier) / timedelta(days=1)
