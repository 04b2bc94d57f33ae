from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from cds_service.common.fhirdates import age_in_years, parse_fhir_date, parse_fhir_datetime


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-03", datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024-03-15", datetime(2024, 3, 15, tzinfo=UTC)),
        ("2024-03-15T08:00:00Z", datetime(2024, 3, 15, 8, tzinfo=UTC)),
        ("2024-03-15T10:00:00+02:00", datetime(2024, 3, 15, 8, tzinfo=UTC)),
        ("2024-03-15T08:00:00.123Z", datetime(2024, 3, 15, 8, 0, 0, 123000, tzinfo=UTC)),
    ],
)
def test_parses_fhir_dates(text: str, expected: datetime) -> None:
    assert parse_fhir_datetime(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13", "2024-02-30", None, 2024])
def test_unreadable_dates_are_none(text: object) -> None:
    assert parse_fhir_datetime(text) is None


def test_date_and_age() -> None:
    assert parse_fhir_date("2000-02-29") == date(2000, 2, 29)
    assert age_in_years(date(2000, 2, 29), date(2026, 2, 28)) == 25
    assert age_in_years(date(2000, 2, 29), date(2026, 3, 1)) == 26
