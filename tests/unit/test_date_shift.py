"""Moving a chart in time keeps every date's precision and the story it tells."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cds_service.common.date_shift import days_between, shift_resources, shift_value


@pytest.mark.parametrize(
    ("text", "days", "expected"),
    [
        ("2026-06-01", 173, "2026-11-21"),
        ("2026-06-01T09:00:00Z", 173, "2026-11-21T09:00:00Z"),
        ("2026-06-01T09:00:00+02:00", 1, "2026-06-02T09:00:00+02:00"),
        ("2021-03", 173, "2021-09"),  # a year-month stays a year-month
        ("2021-03", -30, "2021-02"),
        ("2021", 173, "2021"),  # a year moves only when the shift crosses mid-year
        ("2021", 200, "2022"),
        ("not a date", 5, "not a date"),
    ],
)
def test_shift_value_keeps_precision(text: str, days: int, expected: str) -> None:
    assert shift_value(text, days) == expected


def test_only_date_elements_move_and_the_input_is_untouched() -> None:
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "2026-06-01",  # an id that looks like a date is not a date element
        "effectiveDateTime": "2026-05-25T09:00:00Z",
        "valueQuantity": {"value": 112, "unit": "U/L"},
        "code": {"text": "2026-05-25"},
    }
    request = {
        "resourceType": "MedicationRequest",
        "id": "mr",
        "authoredOn": "2025-09-29",
        "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2025-09-29"}}}}],
    }
    moved_obs, moved_request = shift_resources([observation, request], 10)
    assert moved_obs["effectiveDateTime"] == "2026-06-04T09:00:00Z"
    assert moved_obs["id"] == "2026-06-01"
    assert moved_obs["code"] == {"text": "2026-05-25"}
    assert moved_obs["valueQuantity"] == {"value": 112, "unit": "U/L"}
    assert moved_request["authoredOn"] == "2025-10-09"
    period = moved_request["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]
    assert period == {"start": "2025-10-09"}
    assert observation["effectiveDateTime"] == "2026-05-25T09:00:00Z"


def test_days_between_counts_calendar_days() -> None:
    scenario_now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert days_between(scenario_now, datetime(2026, 11, 21, 0, 30, tzinfo=UTC)) == 173
    assert days_between(scenario_now, scenario_now) == 0
