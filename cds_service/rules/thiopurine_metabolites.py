"""thiopurine-metabolites: a recent 6-TGN result read against the thresholds of its own unit.

Decisions where the clinical specification is silent (also in docs/rules/thiopurine-metabolites.md):
- The latest dated 6-TGN within the lookback is the one judged; an older result in another unit
  is not used instead (the latest result reflects the current dose).
- 6-MMP is paired with that 6-TGN when measured within ``mmp_pairing_days`` of it.
- Units match a configured spelling after removing spaces and ignoring case; a unit with no
  thresholds gives no classification (logged, no card). Nothing is converted.
- Low 6-TGN with 6-MMP absent or in a unit without a 6-MMP threshold gives the info card, which
  says shunting could not be excluded.
- Normal 6-TGN gives no card, whatever the 6-MMP (the clinical specification lists no such pattern).
- Rev 2: 6-MMP above its threshold with a 6-TGN that is not low is the ``high-mmp`` warning
  (hepatotoxicity); with a high 6-TGN the ``high-tgn`` card is shown instead and names the high
  6-MMP (one card per rule; myelotoxicity is the more urgent).
- Rev 2: in a patient with AIH who is in biochemical remission (latest ALT and IgG of the last
  ``remission_recent_days`` both at or below ULN) a low 6-TGN is not a reason to increase the
  dose: the ``low-tgn-in-remission`` outcome (info, disabled by default) replaces ``low-tgn``.
  Without AIH on the problem list (e.g. IBD) the low-6-TGN advice is unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, fields, validate, validates_schema
from marshmallow.exceptions import ValidationError

from cds_service.patient.readings import Reading, readings_in
from cds_service.patient.record import DraftOrder
from cds_service.patient.units import normalise_unit
from cds_service.rules.base import WHOLE_CHART, Finding, RuleInput, RuleSpec
from cds_service.rules.common import fmt_date, within_days
from cds_service.rules.series import describe, latest, times_uln
from cds_service.rules.thiopurines import THIOPURINE, course_lines, thiopurine_drafts

log = logging.getLogger(__name__)

RULE_ID = "thiopurine-metabolites"

# 6-TGN / 6-MMP thresholds in the reporting unit (235-450 and 5700 pmol/8x10^8 RBC at Mayo);
# above 100000 in any unit in use is a typing error
METABOLITE_LEVEL = validate.Range(0, 100000)


class UnitThresholds(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1))
    spellings = fields.List(
        fields.String(validate=validate.Length(min=1)), required=True, validate=validate.Length(1)
    )
    tgn_low_below = fields.Decimal(load_default=None, allow_none=True, validate=METABOLITE_LEVEL)
    tgn_high_above = fields.Decimal(load_default=None, allow_none=True, validate=METABOLITE_LEVEL)
    mmp_high_above = fields.Decimal(load_default=None, allow_none=True, validate=METABOLITE_LEVEL)

    @validates_schema
    def _order(self, data: dict[str, Any], **_: object) -> None:
        low, high = data.get("tgn_low_below"), data.get("tgn_high_above")
        if low is not None and high is not None and low >= high:
            raise ValidationError("must be below tgn_high_above", "tgn_low_below")


class Parameters(Schema):
    class Meta:
        unknown = RAISE

    lookback_days = fields.Integer(load_default=180, validate=validate.Range(1, 730))
    mmp_pairing_days = fields.Integer(load_default=3, validate=validate.Range(0, 30))
    tgn_valueset = fields.String(load_default="tgn-6")
    mmp_valueset = fields.String(load_default="mmp-6")
    allopurinol_class = fields.String(load_default="allopurinol")
    aih_condition_valueset = fields.String(load_default="autoimmune-hepatitis")
    remission_recent_days = fields.Integer(load_default=120, validate=validate.Range(1, 730))
    units = fields.List(fields.Nested(UnitThresholds), required=True, validate=validate.Length(1))

    @validates_schema
    def _spellings_unique(self, data: dict[str, Any], **_: object) -> None:
        seen: set[str] = set()
        for unit in data.get("units", ()):
            for spelling in unit["spellings"]:
                key = normalise_unit(spelling)
                if key in seen:
                    raise ValidationError(f"unit spelling {spelling!r} listed twice", "units")
                seen.add(key)


def unit_thresholds(reading: Reading, units: list[dict[str, Any]]) -> dict[str, Any] | None:
    spellings = {normalise_unit(reading.unit), normalise_unit(reading.unit_label)}
    for unit in units:
        if spellings & {normalise_unit(s) for s in unit["spellings"]}:
            return unit
    return None


def evaluate(inp: RuleInput) -> Finding | None:
    record, now, params = inp.record, inp.now, dict(inp.params)
    drafts = thiopurine_drafts(inp.drafts)
    active = [c for c in record.courses_in(THIOPURINE) if c.is_active(now)]
    if inp.hook == "patient-view" and not active:
        return None
    if inp.hook != "patient-view" and not drafts:
        return None
    tgn = _latest(readings_in(record, inp.terminology.valueset(params["tgn_valueset"])), inp)
    if tgn is None or tgn.quantity is None or tgn.when is None:
        return None
    units = params["units"]
    thresholds = unit_thresholds(tgn, units)
    if thresholds is None:
        log.warning(
            "6-TGN %s in unit %r has no configured thresholds: not classified",
            tgn.observation_id,
            tgn.unit_label,
        )
        return None
    mmp = _paired_mmp(inp, tgn.when, params)
    mmp_thresholds = unit_thresholds(mmp, units) if mmp else None
    low, high = thresholds["tgn_low_below"], thresholds["tgn_high_above"]
    variables = {
        "tgn": f"{tgn.value_label()} on {fmt_date(tgn.when)}",
        "tgn_value": f"{tgn.quantity.normalize():f}",
        "unit": thresholds["name"],
        "thresholds": _threshold_text(thresholds),
        "mmp": _mmp_text(mmp, mmp_thresholds),
        "mmp_value": f"{mmp.quantity.normalize():f}" if mmp and mmp.quantity else "not measured",
        "therapy": course_lines(active, drafts, now),
        "lookback_days": str(params["lookback_days"]),
        "allopurinol": _allopurinol_text(inp, params),
    }
    mmp_high = _mmp_is_high(mmp, mmp_thresholds)
    remission = _remission(inp, params)
    variables["remission"] = "in-remission" if remission else "not-in-remission"
    variables["remission_results"] = remission or ""
    if low is not None and tgn.quantity < low:
        outcome = "shunting" if mmp_high else "low-tgn"
        if outcome == "low-tgn" and remission:
            outcome = "low-tgn-in-remission"
        variables["tgn_limit"] = f"{low.normalize():f}"
    elif high is not None and tgn.quantity > high:
        outcome = "high-tgn"
        variables["tgn_limit"] = f"{high.normalize():f}"
    elif mmp_high and mmp_thresholds is not None:
        outcome = "high-mmp"
        variables["mmp_limit"] = f"{mmp_thresholds['mmp_high_above'].normalize():f}"
    else:
        return None
    gaps = []
    if mmp is None:
        gaps.append(
            f"No 6-MMP result within {params['mmp_pairing_days']} days of the 6-TGN result."
        )
    elif mmp_thresholds is None or mmp_thresholds["mmp_high_above"] is None:
        gaps.append(f"6-MMP in {mmp.unit_label!r}: no 6-MMP threshold for this unit.")
    return Finding(RULE_ID, outcome, variables, drafts, tuple(gaps))


def _remission(inp: RuleInput, params: Mapping[str, Any]) -> str | None:
    """For a patient with AIH: the latest recent ALT and IgG when both are at or below ULN
    (biochemical remission; the card's "remission" phrase), else None."""
    if not inp.record.active_conditions_in(inp.terminology, str(params["aih_condition_valueset"])):
        return None
    days = int(params["remission_recent_days"])
    found = []
    for name, analyte in (("ALT", "alt"), ("IgG", "igg")):
        series = [r for r in inp.record.lab_series(analyte) if within_days(r.when, inp.now, days)]
        result = latest(series)
        ratio = times_uln(result) if result else None
        if result is None or ratio is None or ratio > 1:
            return None
        found.append(describe(result, name))
    return "; ".join(found)


def _latest(readings: list[Reading], inp: RuleInput) -> Reading | None:
    days = int(inp.params["lookback_days"])
    recent = [r for r in readings if r.quantity is not None and within_days(r.when, inp.now, days)]
    return recent[-1] if recent else None


def _paired_mmp(inp: RuleInput, when: datetime, params: dict[str, Any]) -> Reading | None:
    window = timedelta(days=int(params["mmp_pairing_days"]))
    candidates = [
        r
        for r in readings_in(inp.record, inp.terminology.valueset(params["mmp_valueset"]))
        if r.quantity is not None and r.when is not None and abs(r.when - when) <= window
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda r: abs(r.when - when) if r.when else window)


def _mmp_is_high(mmp: Reading | None, thresholds: dict[str, Any] | None) -> bool:
    if mmp is None or mmp.quantity is None or thresholds is None:
        return False
    limit = thresholds["mmp_high_above"]
    return limit is not None and mmp.quantity > limit


def _mmp_text(mmp: Reading | None, thresholds: dict[str, Any] | None) -> str:
    if mmp is None:
        return "not measured with this 6-TGN result"
    text = f"{mmp.value_label()} on {fmt_date(mmp.when)}"
    limit = thresholds["mmp_high_above"] if thresholds else None
    if limit is None:
        return text + " (no 6-MMP threshold for this unit: not classified)"
    if _mmp_is_high(mmp, thresholds):
        return text + f" (high: above {limit.normalize():f})"
    return text + f" (not high: {limit.normalize():f} or below)"


def _threshold_text(thresholds: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("tgn_low_below", "6-TGN low below"),
        ("tgn_high_above", "6-TGN high above"),
        ("mmp_high_above", "6-MMP high above"),
    ):
        value: Decimal | None = thresholds[key]
        parts.append(f"{label} {value.normalize():f}" if value is not None else f"{label}: none")
    return f"{'; '.join(parts)} ({thresholds['name']})"


def _allopurinol_text(inp: RuleInput, params: dict[str, Any]) -> str:
    allopurinol = inp.record.courses_in(params["allopurinol_class"])
    courses = [c for c in allopurinol if c.is_active(inp.now)]
    if not courses:
        return "no active allopurinol on record"
    return "already on allopurinol: " + "; ".join(
        f"{c.label} since {fmt_date(c.start)}" for c in courses
    )


def triggered(drafts: tuple[DraftOrder, ...], hook: str, _params: Mapping[str, Any]) -> bool:
    if hook == "patient-view":
        return True  # the active course is known only once the record is read
    return hook in SPEC.hooks and bool(thiopurine_drafts(drafts))


_VARS = frozenset(
    {
        "tgn",
        "tgn_value",
        "unit",
        "thresholds",
        "mmp",
        "mmp_value",
        "therapy",
        "remission_results",
        "lookback_days",
        "allopurinol",
        "remission",
    }
)
SPEC = RuleSpec(
    id=RULE_ID,
    hooks=frozenset({"order-sign", "order-select", "patient-view"}),
    needs=WHOLE_CHART,
    outcomes={
        "shunting": _VARS | {"tgn_limit"},
        "low-tgn": _VARS | {"tgn_limit"},
        "high-tgn": _VARS | {"tgn_limit"},
        "high-mmp": _VARS | {"mmp_limit"},
        "low-tgn-in-remission": _VARS | {"tgn_limit"},
    },
    parameters=Parameters,
    triggered=triggered,
    evaluate=evaluate,
    terminology=frozenset({THIOPURINE, "alt", "igg"}),  # ALT, IgG: remission
)
