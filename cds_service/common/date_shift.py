"""Move a chart in time: every FHIR date in its resources shifted by whole days.

The demo charts are the golden scenarios, written around a fixed ``now``; rules judge windows
("ALT in the last 90 days") against the real clock. Shifting the chart so its ``now`` becomes
today keeps a demo patient's story (and the cards it earns) the same on any day. Precision is
kept: ``2021-03`` stays a year-month, ``2024`` a year, a date a date, a dateTime a dateTime.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

# Elements of the resource types the service reads whose values are FHIR date/dateTime/instant.
DATE_ELEMENTS = frozenset(
    {
        "birthDate",
        "effectiveDateTime",
        "effectiveInstant",
        "issued",
        "authoredOn",
        "onsetDateTime",
        "abatementDateTime",
        "recordedDate",
        "start",
        "end",
        "valueDateTime",
        "dateAsserted",
    }
)
_YEAR = re.compile(r"^\d{4}$")
_YEAR_MONTH = re.compile(r"^\d{4}-\d{2}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def shift_resources(resources: Iterable[dict[str, Any]], days: int) -> tuple[dict[str, Any], ...]:
    """Copies of the resources with every date element moved by ``days``."""
    return tuple(_shift(resource, days) for resource in resources)


def days_between(scenario_now: datetime, today: datetime) -> int:
    """Whole days that move a chart written around ``scenario_now`` to ``today``."""
    return (today.astimezone(UTC).date() - scenario_now.astimezone(UTC).date()).days


def shift_value(text: str, days: int) -> str:
    """One FHIR date/dateTime/instant moved by ``days``, at its own precision; anything that is
    not a date is returned unchanged."""
    delta = timedelta(days=days)
    if _YEAR.match(text):
        return str((date(int(text), 7, 1) + delta).year)  # mid-year: a year moves by years
    if _YEAR_MONTH.match(text):
        moved = date(int(text[:4]), int(text[5:7]), 15) + delta  # mid-month, likewise
        return f"{moved.year:04d}-{moved.month:02d}"
    if _DATE.match(text):
        return (date.fromisoformat(text) + delta).isoformat()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    moved_text = (parsed + delta).isoformat()
    return moved_text.replace("+00:00", "Z") if text.endswith("Z") else moved_text


def _shift(value: Any, days: int, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _shift(v, days, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_shift(item, days, key) for item in value]
    if isinstance(value, str) and key in DATE_ELEMENTS:
        return shift_value(value, days)
    return value
