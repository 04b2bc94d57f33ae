"""Time-series helpers: windows, latest, closest-to-target (ties), multiples of the ULN, text."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from cds_service.patient.record import LabResult
from cds_service.rules import series
from tests.factories import NOW

DAY = timedelta(days=1)


def lab(
    value: str | int,
    when: datetime | None,
    *,
    uln: str | int | None = 40,
    source: str = "configured default",
    unit: str = "U/L",
    reported: tuple[str, str] | None = None,
) -> LabResult:
    reported_value, reported_unit = reported or (str(value), unit)
    return LabResult(
        id=f"r-{value}-{when}",
        analyte="alt",
        when=when,
        value=Decimal(value),
        unit=unit,
        reported_value=Decimal(reported_value),
        reported_unit=reported_unit,
        uln=None if uln is None else Decimal(uln),
        uln_source=source if uln is not None else "none",
    )


def test_dated_drops_undated_and_results_beyond_the_clock_skew() -> None:
    undated = lab(50, None)
    today = lab(51, NOW)
    skewed = lab(52, NOW + series.CLOCK_SKEW)
    future = lab(53, NOW + series.CLOCK_SKEW + timedelta(seconds=1))
    assert series.dated([undated, today, skewed, future], NOW) == [today, skewed]


def test_undated_count() -> None:
    assert series.undated_count([lab(1, None), lab(2, NOW), lab(3, None)]) == 2
    assert series.undated_count([]) == 0


def test_between_is_inclusive_and_open_ended() -> None:
    early, middle, late = lab(1, NOW - 10 * DAY), lab(2, NOW - 5 * DAY), lab(3, NOW)
    results = [lab(0, None), early, middle, late]
    assert series.between(results, NOW - 10 * DAY, NOW - 5 * DAY) == [early, middle]
    assert series.between(results, None, NOW - 6 * DAY) == [early]
    assert series.between(results, NOW - 5 * DAY, None) == [middle, late]
    assert series.between(results, None, None) == [early, middle, late]


def test_latest_ignores_undated_results() -> None:
    dated = lab(1, NOW - DAY)
    assert series.latest([dated, lab(2, None)]) is dated
    assert series.latest([lab(2, None)]) is None
    assert series.latest([]) is None


@pytest.mark.parametrize(
    ("offsets", "expected"),
    [
        ([21, 42], 21),  # both edges are inside; 21 is nearer to 28
        ([20, 43], None),  # just outside on both sides
        ([22, 29, 40], 29),  # the nearest wins
        ([24, 32], 24),  # a tie (4 days either side) goes to the earlier result
        ([32, 24], 24),  # whatever the input order
        ([28, 28], 28),  # duplicates on the target day
    ],
)
def test_closest_to_target_within_the_window(offsets: list[int], expected: int | None) -> None:
    t0 = NOW - 100 * DAY
    results = [lab(100 + o, t0 + o * DAY) for o in offsets]
    chosen = series.closest_to(results, t0 + 28 * DAY, t0 + 21 * DAY, t0 + 42 * DAY)
    if expected is None:
        assert chosen is None
    else:
        assert chosen is not None
        assert chosen.when == t0 + expected * DAY


def test_closest_to_ignores_undated_results() -> None:
    assert series.closest_to([lab(1, None)], NOW, NOW - DAY, NOW + DAY) is None


@pytest.mark.parametrize(
    ("value", "uln", "ratio"),
    [(80, 40, Decimal(2)), (0, 40, Decimal(0)), (80, None, None), (80, 0, None), (80, -5, None)],
)
def test_times_uln(value: int, uln: int | None, ratio: Decimal | None) -> None:
    assert series.times_uln(lab(value, NOW, uln=uln)) == ratio


def test_at_least_and_above_differ_exactly_at_the_multiple() -> None:
    exactly_two = lab(80, NOW)
    below = lab("79.99", NOW)
    assert series.at_least_times_uln(exactly_two, Decimal(2))
    assert not series.above_times_uln(exactly_two, Decimal(2))
    assert not series.at_least_times_uln(below, Decimal(2))
    assert series.above_times_uln(lab("80.01", NOW), Decimal(2))


def test_without_uln_nothing_is_above_or_at_a_multiple() -> None:
    result = lab(10_000, NOW, uln=None)
    assert not series.at_least_times_uln(result, Decimal(1))
    assert not series.above_times_uln(result, Decimal(1))


def test_ratio_is_rounded_down_so_a_card_never_overstates() -> None:
    assert series.fmt_ratio(Decimal("1.99")) == "1.9"
    assert series.ratio_text(lab(112, NOW)) == f"2.8{series.TIMES}ULN"
    assert series.ratio_text(lab(112, NOW, uln=None)) == "(ULN unknown)"


def test_describe_names_value_date_ratio_and_uln_source() -> None:
    text = series.describe(lab(120, NOW, uln=40, source="reference range"), "ALT")
    assert "ALT 120 U/L" in text
    assert NOW.date().isoformat() in text
    assert f"3.0{series.TIMES}ULN" in text
    assert text.endswith(f"(3.0{series.TIMES}ULN; ULN 40 U/L)")  # the lab's own range: no note
    default = series.describe(lab(120, NOW), "ALT")
    assert "configured default ULN 40 U/L" in default


def test_describe_shows_the_converted_value_for_other_units() -> None:
    igg = lab("18", NOW, unit="g/L", uln=16, reported=("1800", "mg/dL"))
    text = series.describe(igg, "IgG")
    assert "1800 mg/dL" in text
    assert "18" in text
    assert "g/L" in text


def test_describe_prints_the_converted_value_and_uln_to_two_places() -> None:
    """The whole line as a card prints it: the value converted to the rule's unit and the upper
    limit rounded to two places (never three, never every digit the conversion produced)."""
    bilirubin = lab(
        "0.87654",
        NOW,
        unit="mg/dL",
        uln="1.23456",
        source="reference range",
        reported=("14.99", "umol/L"),
    )
    assert series.describe(bilirubin, "Bilirubin") == (
        f"Bilirubin 14.99 umol/L (= 0.88 mg/dL) on {NOW.date().isoformat()}"
        f" (0.7{series.TIMES}ULN; ULN 1.23 mg/dL)"
    )


def test_describe_adds_no_conversion_when_reported_in_the_rules_unit() -> None:
    text = series.describe(lab("112.5", NOW, source="reference range"), "ALT")
    assert text == (f"ALT 112.5 U/L on {NOW.date().isoformat()} (2.8{series.TIMES}ULN; ULN 40 U/L)")


def test_describe_with_a_zero_uln_says_no_upper_limit_is_known() -> None:
    """A reference range with a high of 0 cannot give a multiple: said, not divided by."""
    text = series.describe(lab(50, NOW, uln=0, source="reference range"), "ALT")
    assert text == f"ALT 50 U/L on {NOW.date().isoformat()} (no upper limit of normal known)"


def test_value_text_puts_the_comparator_before_the_value() -> None:
    below = replace(lab("0.5", NOW, unit="mg/dL"), comparator="<")
    assert series.value_text(below) == "< 0.5 mg/dL"
    assert series.describe(below, "Bilirubin").startswith("Bilirubin < 0.5 mg/dL on ")
    assert series.value_text(lab("0.5", NOW, unit="mg/dL")) == "0.5 mg/dL"


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        ("1.2345", 2, "1.23"),
        ("1.2345", None, "1.2345"),
        ("2.500", None, "2.5"),
        ("2.50", 1, "2.5"),
        ("3.001", 2, "3"),
        ("1E+2", None, "100"),
        ("40", 2, "40"),
        ("120", None, "120"),
    ],
)
def test_fmt_number_rounds_only_when_asked_and_drops_trailing_zeros(
    value: str, places: int | None, text: str
) -> None:
    assert series.fmt_number(Decimal(value), places) == text


def test_times_uln_with_an_upper_limit_between_zero_and_one() -> None:
    """Bilirubin in mg/dL has a ULN near 1: a ULN of 0.5 is a real limit, not a missing one."""
    assert series.times_uln(lab("1.5", NOW, unit="mg/dL", uln="0.5")) == Decimal(3)
    assert series.ratio_text(lab("1.5", NOW, unit="mg/dL", uln="0.5")) == f"3.0{series.TIMES}ULN"


def test_describe_without_uln_or_date_says_so() -> None:
    text = series.describe(lab(90, None, uln=None), "ALT")
    assert "no upper limit of normal" in text
    assert "undated" in text


def test_default_uln_note_only_for_results_judged_on_the_default() -> None:
    by_range = lab(50, NOW, source="reference range", uln=35)
    assert series.default_uln_note([by_range], "ALT") == []
    notes = series.default_uln_note([by_range, lab(60, NOW), lab(70, NOW)], "ALT")
    assert len(notes) == 1
    assert "2 result(s)" in notes[0]
    assert "40" in notes[0]


def test_default_uln_note_lists_each_default_once_in_order() -> None:
    results = [lab(60, NOW), lab(70, NOW, uln=35), lab(80, NOW), lab(90, NOW, uln="33.5")]
    assert series.default_uln_note(results, "ALT") == [
        "ALT: no reference range on 4 result(s); the configured default ULN"
        " (33.5 U/L, 35 U/L, 40 U/L) was used."
    ]


@pytest.mark.parametrize(
    ("days", "text"),
    [(0, "0 days"), (1, "1 day"), (13, "13 days"), (14, "2 weeks"), (111, "15 weeks")],
)
def test_duration_text_granularity(days: int, text: str) -> None:
    assert series.duration_text(NOW - days * DAY, NOW) == text


def test_duration_text_in_months_from_16_weeks() -> None:
    assert series.duration_text(NOW - 112 * DAY, NOW) == "3 months"
    assert series.duration_text(NOW - 245 * DAY, NOW) == "8 months"


@pytest.mark.parametrize(
    ("days", "text"),
    [
        (730, "23 months"),  # 23.98 months of 30.44 days
        (731, "2 years"),  # 24.01 months: years from 24 months on
        (1095, "2 years"),  # 2.998 years, rounded down
        (1096, "3 years"),  # 3.0007 years (of 365.25 days)
        (3653, "10 years"),
    ],
)
def test_duration_text_in_years_from_24_months(days: int, text: str) -> None:
    assert series.duration_text(NOW - days * DAY, NOW) == text
