"""Daily dose and route of a MedicationRequest, read from R4 ``dosageInstruction``.

Only what can be computed without guessing is computed: a mass dose (mg, g, ug) times a
frequency per period (``timing.repeat`` or a ``timing.code`` such as BID). Anything else (doses
in tablets, free text only, no frequency) gives no number and a reason the card can show.
Where FHIR allows a range, the higher dose and the shorter period are used, so a computed dose is
never an underestimate (the rules that use it decide whether a dose is low enough).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from cds_service.common.numbers import decimal_or_none

# mass units to milligrams (UCUM codes and the spellings EHRs put in Quantity.unit)
MG_PER_UNIT = {
    "mg": Decimal(1),
    "g": Decimal(1000),
    "ug": Decimal("0.001"),
    "mcg": Decimal("0.001"),
    "µg": Decimal("0.001"),
}
DAYS_PER_PERIOD_UNIT = {
    "s": Decimal(1) / Decimal(86400),
    "min": Decimal(1) / Decimal(1440),
    "h": Decimal(1) / Decimal(24),
    "d": Decimal(1),
    "wk": Decimal(7),
    "mo": Decimal(30),  # UCUM mo is a mean month; 30 days errs towards a higher daily dose
    "a": Decimal(365),
}
# HL7 v3 GTSAbbreviation timing codes (Timing.code): administrations per day
ADMINISTRATIONS_PER_DAY = {
    "QD": Decimal(1),
    "AM": Decimal(1),
    "PM": Decimal(1),
    "BED": Decimal(1),
    "BID": Decimal(2),
    "TID": Decimal(3),
    "QID": Decimal(4),
    "QOD": Decimal("0.5"),
    "Q4H": Decimal(6),
    "Q6H": Decimal(4),
    "Q8H": Decimal(3),
    "WK": Decimal(1) / Decimal(7),
}


@dataclass(frozen=True)
class DailyDose:
    """A computed daily dose in mg, or None with the reason it could not be computed."""

    mg_per_day: Decimal | None
    explanation: str

    def describe(self) -> str:
        if self.mg_per_day is None:
            return f"daily dose not computable: {self.explanation}"
        return f"{plain_number(self.mg_per_day)} mg/day ({self.explanation})"


@dataclass(frozen=True)
class Dosage:
    """What the rules read from a request's dosage instructions."""

    daily_dose: DailyDose
    # route and instruction texts (route.text, route codings' displays, dosage.text)
    route_texts: tuple[str, ...] = ()
    # route codings' codes (e.g. SNOMED CT route of administration)
    route_codes: tuple[str, ...] = ()


NO_DOSAGE = Dosage(DailyDose(None, "no dosage instructions"))


def read_dosage(request: Mapping[str, Any]) -> Dosage:
    instructions = [d for d in request.get("dosageInstruction") or () if isinstance(d, Mapping)]
    if not instructions:
        return NO_DOSAGE
    texts: list[str] = []
    codes: list[Any] = []
    for dosage in instructions:
        route = dosage.get("route")
        route = route if isinstance(route, Mapping) else {}
        texts += [route.get("text") or "", dosage.get("text") or ""]
        codings = [c for c in route.get("coding") or () if isinstance(c, Mapping)]
        texts += [c.get("display") or "" for c in codings]
        codes += [c.get("code") for c in codings]
    return Dosage(
        daily_dose(instructions),
        tuple(t for t in texts if isinstance(t, str) and t),
        tuple(c for c in codes if isinstance(c, str) and c),
    )


def daily_dose(instructions: Sequence[Mapping[str, Any]]) -> DailyDose:
    """Instructions with the same ``sequence`` (or none) run together and are added up; with
    several sequence numbers (e.g. a taper) the highest step is taken."""
    if not instructions:
        return DailyDose(None, "no dosage instructions")
    groups: dict[object, list[Mapping[str, Any]]] = {}
    for dosage in instructions:
        groups.setdefault(dosage.get("sequence"), []).append(dosage)
    totals: list[tuple[Decimal, str]] = []
    for group in groups.values():
        parts = [_instruction_dose(d) for d in group]
        problems = [p.explanation for p in parts if p.mg_per_day is None]
        if problems:
            return DailyDose(None, problems[0])
        total = sum((p.mg_per_day for p in parts if p.mg_per_day is not None), Decimal(0))
        totals.append((total, " + ".join(p.explanation for p in parts)))
    total, explanation = max(totals, key=lambda item: item[0])
    if len(totals) > 1:
        explanation += f"; highest of {len(totals)} sequenced steps"
    return DailyDose(total, explanation)


def _instruction_dose(dosage: Mapping[str, Any]) -> DailyDose:
    try:
        return _computed_dose(dosage)
    except InvalidOperation:  # 1e30 mg, a period of 1e-30 days: beyond any real order
        return DailyDose(None, "a dose or timing number is out of range")


def _computed_dose(dosage: Mapping[str, Any]) -> DailyDose:
    dose = _dose_mg(dosage)
    if isinstance(dose, str):
        return DailyDose(None, dose)
    per_day = _administrations_per_day(dosage.get("timing") or {})
    if isinstance(per_day, str):
        return DailyDose(None, per_day)
    # rounded to a microgram: 350 mg weekly is 50 mg/day, not 50.00000000000000000000000002
    mg_per_day = (dose[0] * per_day[0]).quantize(Decimal("0.001"))
    frequency_text = per_day[1]
    return DailyDose(mg_per_day, f"{dose[1]} {frequency_text}")


def _dose_mg(dosage: Mapping[str, Any]) -> tuple[Decimal, str] | str:
    entries = [e for e in dosage.get("doseAndRate") or () if isinstance(e, Mapping)]
    # an "ordered" dose wins over a "calculated" one when both are given
    entries.sort(key=lambda e: 0 if _is_ordered(e) else 1)
    for entry in entries:
        if "doseQuantity" in entry:
            return _mass(entry["doseQuantity"])
        if "doseRange" in entry:
            high = (entry["doseRange"] or {}).get("high")
            if not isinstance(high, Mapping):
                return "dose range without an upper dose"
            return _mass(high)
    if dosage.get("text"):
        return f"dose given only as text ({dosage['text']!r})"
    return "no dose quantity"


def _is_ordered(entry: Mapping[str, Any]) -> bool:
    codings = (entry.get("type") or {}).get("coding") or ()
    return any(c.get("code") == "ordered" for c in codings if isinstance(c, Mapping))


def _mass(quantity: Mapping[str, Any]) -> tuple[Decimal, str] | str:
    value = decimal_or_none(quantity.get("value"))
    unit = str(quantity.get("code") or quantity.get("unit") or "").strip()
    factor = MG_PER_UNIT.get(unit) or MG_PER_UNIT.get(unit.lower())
    if value is None:
        return "dose quantity without a value"
    if factor is None:
        return f"dose in {unit or 'no unit'!r}, not a mass unit (strength not known)"
    return value * factor, f"{plain_number(value)} {unit}"


def _administrations_per_day(timing: Mapping[str, Any]) -> tuple[Decimal, str] | str:
    repeat = timing.get("repeat") or {}
    frequency = decimal_or_none(repeat.get("frequencyMax")) or decimal_or_none(
        repeat.get("frequency")
    )
    period = decimal_or_none(repeat.get("period"))
    if period is not None:
        unit = str(repeat.get("periodUnit") or "")
        days = DAYS_PER_PERIOD_UNIT.get(unit)
        if days is None or period <= 0:
            return f"period unit {unit!r} not understood"
        count = frequency if frequency is not None else Decimal(1)
        return count / (period * days), f"x {plain_number(count)} per {plain_number(period)} {unit}"
    per_day_times = len(repeat.get("timeOfDay") or ()) or len(repeat.get("when") or ())
    if per_day_times:
        return Decimal(per_day_times), f"x {per_day_times} times a day"
    codes = [c.get("code") for c in (timing.get("code") or {}).get("coding") or ()]
    for code in codes:
        if isinstance(code, str) and code.upper() in ADMINISTRATIONS_PER_DAY:
            return ADMINISTRATIONS_PER_DAY[code.upper()], code.upper()
    return "no frequency in the timing"


def plain_number(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros: 50, 0.5, 12.5."""
    return f"{value.quantize(Decimal('0.01')).normalize():f}"
