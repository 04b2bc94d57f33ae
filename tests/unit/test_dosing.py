"""Daily dose from R4 dosageInstruction: the shapes EHRs send, and the ones that cannot be read."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from cds_service.patient.dosing import daily_dose, read_dosage
from tests import factories as f


def mg_per_day(*instructions: dict[str, Any]) -> Decimal | None:
    return daily_dose(list(instructions)).mg_per_day


@pytest.mark.parametrize(
    ("instruction", "expected"),
    [
        (f.dosage(50), 50),
        (f.dosage(50, frequency=2), 100),
        (f.dosage(25, frequency=3, period=1, period_unit="d"), 75),
        (f.dosage(100, frequency=1, period=2, period_unit="d"), 50),  # every other day
        (f.dosage(350, frequency=1, period=1, period_unit="wk"), 50),
        (f.dosage(12.5, frequency=1, period=12, period_unit="h"), 25),
        (f.dosage(0.05, "g"), 50),
        (f.dosage(50000, "ug"), 50),
        (f.dosage(50, frequency=None), 50),  # period alone: once per period
        (f.dosage(50, frequency=None, period=None, timing_code="BID"), 100),
        (f.dosage(25, frequency=None, period=None, timing_code="TID"), 75),
        (f.dosage(50, frequency=None, period=None, timing_code="QD"), 50),
        (f.dosage(50, frequency=None, period=None, timing_code="qod"), 25),
    ],
    ids=[
        "50mg-daily",
        "50mg-twice-daily",
        "25mg-three-times",
        "100mg-every-2-days",
        "350mg-weekly",
        "12.5mg-every-12h",
        "grams",
        "micrograms",
        "period-without-frequency",
        "code-BID",
        "code-TID",
        "code-QD",
        "code-qod-lowercase",
    ],
)
def test_common_dosage_shapes(instruction: dict[str, Any], expected: float) -> None:
    assert mg_per_day(instruction) == Decimal(str(expected))


def test_frequency_max_and_dose_range_high_are_used() -> None:
    instruction = f.dosage(None)
    instruction["timing"]["repeat"]["frequencyMax"] = 3
    instruction["doseAndRate"] = [
        {"doseRange": {"low": {"value": 25, "unit": "mg"}, "high": {"value": 50, "unit": "mg"}}}
    ]
    assert mg_per_day(instruction) == 150


def test_ordered_dose_wins_over_calculated() -> None:
    instruction = f.dosage(None)
    instruction["doseAndRate"] = [
        {"type": {"coding": [{"code": "calculated"}]}, "doseQuantity": {"value": 75, "code": "mg"}},
        {"type": {"coding": [{"code": "ordered"}]}, "doseQuantity": {"value": 50, "code": "mg"}},
    ]
    assert mg_per_day(instruction) == 50


def test_time_of_day_counts_administrations() -> None:
    instruction = f.dosage(25, period=None)
    instruction["timing"] = {"repeat": {"timeOfDay": ["08:00:00", "20:00:00"]}}
    assert mg_per_day(instruction) == 50


def test_concurrent_instructions_add_up_and_sequenced_steps_take_the_highest() -> None:
    assert mg_per_day(f.dosage(50), f.dosage(25)) == 75
    dose = daily_dose([f.dosage(100, sequence=1), f.dosage(50, sequence=2)])
    assert dose.mg_per_day == 100
    assert "highest of 2 sequenced steps" in dose.explanation


@pytest.mark.parametrize(
    ("instruction", "reason"),
    [
        (f.dosage(2, "{tbl}"), "not a mass unit"),
        (f.dosage(1, "tablet"), "not a mass unit"),
        (f.dosage(50, frequency=None, period=None), "no frequency"),
        ({"text": "50 mg once daily"}, "only as text"),
        ({"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}}, "no dose"),
        (f.dosage(50, period_unit="fortnight"), "period unit"),
    ],
    ids=["tablets", "tablet-word", "no-frequency", "text-only", "no-dose", "bad-period-unit"],
)
def test_uncomputable_doses_say_why(instruction: dict[str, Any], reason: str) -> None:
    dose = daily_dose([instruction])
    assert dose.mg_per_day is None
    assert reason in dose.explanation
    assert dose.describe().startswith("daily dose not computable")


def test_one_unreadable_instruction_makes_the_total_unknown() -> None:
    assert mg_per_day(f.dosage(50), f.dosage(1, "{tbl}")) is None


def test_request_without_dosage_and_route_texts() -> None:
    assert read_dosage({}).daily_dose.mg_per_day is None
    instruction = f.dosage(9, route="Oral route")
    instruction["route"]["coding"] = [{"system": "http://snomed.info/sct", "display": "Oral"}]
    instruction["text"] = "9 mg every morning"
    dosage = read_dosage({"dosageInstruction": [instruction]})
    assert dosage.daily_dose.describe() == "9 mg/day (9 mg x 1 per 1 d)"
    assert set(dosage.route_texts) == {"Oral route", "Oral", "9 mg every morning"}
