"""Time-series questions over lab results: windows, latest, closest, multiples of the ULN.

Series come from ``PatientRecord.lab_series`` (oldest first, undated first). Every function here
ignores undated results, because a result that cannot be placed in time cannot answer "when";
rules report how many were ignored (``undated_count``). Results dated more than a day after
``now`` are ignored as well (clock skew between lab and EHR is allowed a day, nothing more).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from cds_service.patient.record import LabResult
from cds_service.rules.common import fmt_date

CLOCK_SKEW = timedelta(days=1)
TIMES = "\u00d7"  # the multiplication sign of "2.8xULN" on cards


def dated(series: Sequence[LabResult], now: datetime) -> list[LabResult]:
    """Dated results up to now (plus the clock-skew allowance), oldest first."""
    return [r for r in series if r.when is not None and r.when <= now + CLOCK_SKEW]


def undated_count(series: Sequence[LabResult]) -> int:
    return sum(1 for r in series if r.when is None)


def between(
    series: Sequence[LabResult], start: datetime | None, end: datetime | None
) -> list[LabResult]:
    """Dated results with start <= when <= end (either bound may be open)."""
    return [
        r
        for r in series
        if r.when is not None
        and (start is None or r.when >= start)
        and (end is None or r.when <= end)
    ]


def after(series: Sequence[LabResult], instant: datetime) -> list[LabResult]:
    """Dated results strictly after ``instant`` ("measured after T0 + 150 d")."""
    return [r for r in series if r.when is not None and r.when > instant]


def latest(series: Sequence[LabResult]) -> LabResult | None:
    dated_results = [r for r in series if r.when is not None]
    return dated_results[-1] if dated_results else None


def closest_to(
    series: Sequence[LabResult], target: datetime, start: datetime, end: datetime
) -> LabResult | None:
    """The result nearest ``target`` within [start, end]; on a tie the earlier one (it is the
    one measured at the intended time or before, not after more days of treatment)."""
    window = between(series, start, end)
    if not window:
        return None
    return min(window, key=lambda r: (abs((r.when or target) - target), r.when))


def times_uln(result: LabResult) -> Decimal | None:
    if result.uln is None or result.uln <= 0:
        return None
    return result.value / result.uln


def at_least_times_uln(result: LabResult, multiple: Decimal) -> bool:
    ratio = times_uln(result)
    return ratio is not None and ratio >= multiple


def above_times_uln(result: LabResult, multiple: Decimal) -> bool:
    ratio = times_uln(result)
    return ratio is not None and ratio > multiple


def fmt_ratio(ratio: Decimal) -> str:
    """One decimal, rounded down: a card never shows "2.0" x ULN for a value below 2 x ULN.
    (``to_integral_value`` is exact at any magnitude, where ``quantize`` would raise.)"""
    tenths = (ratio * 10).to_integral_value(rounding=ROUND_DOWN)
    return f"{tenths / 10:.1f}"


def ratio_text(result: LabResult) -> str:
    """E.g. "2.8 x ULN" (with the multiplication sign) for summaries; rounded down."""
    ratio = times_uln(result)
    return f"{fmt_ratio(ratio)}{TIMES}ULN" if ratio is not None else "(ULN unknown)"


def value_text(result: LabResult) -> str:
    text = f"{fmt_number(result.reported_value)} {result.reported_unit}"
    return f"{result.comparator} {text}" if result.comparator else text


def fmt_number(value: Decimal, places: int | None = None) -> str:
    """A plain decimal without exponent or trailing zeros, optionally rounded to ``places``."""
    text = f"{value:.{places}f}" if places is not None else f"{value.normalize():f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def describe(result: LabResult, name: str) -> str:
    """E.g. "ALT 112 U/L on 2026-03-01 (2.8 x ULN; ULN 40 U/L)": the ULN is the result's own
    reference range unless the text says "configured default ULN" (a card is read quickly)."""
    reported = f"{name} {value_text(result)}"
    if result.reported_unit != result.unit:
        reported += f" (= {fmt_number(result.value, 2)} {result.unit})"
    text = f"{reported} on {fmt_date(result.when)}"
    ratio = times_uln(result)
    if ratio is None or result.uln is None:
        return f"{text} (no upper limit of normal known)"
    uln = fmt_number(result.uln, 2)
    source = f"ULN {uln} {result.unit}"
    if result.uln_source != "reference range":
        source = f"{result.uln_source} ULN {uln} {result.unit}"
    return f"{text} ({fmt_ratio(ratio)}{TIMES}ULN; {source})"


def default_uln_note(results: Sequence[LabResult], name: str) -> list[str]:
    """A data-gap line when any of these results was judged against the configured default ULN
    (the result carried no usable reference range)."""
    assumed = [r for r in results if r.uln_source == "configured default" and r.uln]
    if not assumed:
        return []
    values = ", ".join(
        f"{fmt_number(u)} {assumed[0].unit}" for u in sorted({r.uln for r in assumed if r.uln})
    )
    return [
        f"{name}: no reference range on {len(assumed)} result(s); the configured default ULN"
        f" ({values}) was used."
    ]


def duration_text(start: datetime, end: datetime) -> str:
    """Clinicians' granularity: days under two weeks, weeks under 16 weeks, months under two
    years, then years."""
    days = (end - start).days
    if days < 14:
        return f"{days} day" + ("" if days == 1 else "s")
    if days < 16 * 7:
        return f"{days // 7} weeks"
    months = int(days / 30.44)
    if months < 24:
        return f"{months} months"
    return f"{int(days / 365.25)} years"
