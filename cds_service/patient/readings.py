"""Observation values as reported, panels included: numbers in their own unit, coded and text
answers, reference ranges and interpretations.

The analytes of ``terminology.yaml`` convert results to one canonical unit. Some results must
never be converted (thiopurine metabolites: pmol/8x10^8 RBC and pmol/0.2 mL have no published
conversion) or are not numbers at all (TPMT/NUDT15 phenotypes). Those are read here, from the
Observation itself, from its ``component`` entries, and from the members a panel names in
``hasMember`` (contained or separate Observations; a member without a date takes the panel's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from cds_service.common.numbers import decimal_or_none
from cds_service.patient.record import (
    LAB_STATUSES,
    PatientRecord,
    _observation_time,
    _sort_key,
    _unit_of,
)
from cds_service.patient.terminology import CodedConcept, ValueSet


@dataclass(frozen=True)
class Reading:
    """One reported value: an Observation's own value, a component's, or a panel member's."""

    observation_id: str
    code: CodedConcept
    when: datetime | None
    origin: str  # "result", "panel component" or "panel member"
    quantity: Decimal | None = None
    unit: str = ""  # as reported (Quantity.code, else Quantity.unit)
    unit_label: str = ""  # Quantity.unit, else the code, for card text
    reference_low: Decimal | None = None
    reference_low_unit: str | None = None  # None: the range gives no unit
    answer: CodedConcept | None = None  # valueCodeableConcept
    text: str = ""  # valueString
    interpretation: CodedConcept = field(default_factory=CodedConcept)

    def value_label(self) -> str:
        """The value as a person would read it on the lab report."""
        if self.quantity is not None:
            return f"{self.quantity.normalize():f} {self.unit_label}".strip()
        if self.answer is not None:
            return self.answer.label()
        return self.text or "no value"

    def answer_texts(self) -> list[str]:
        """Every text that may carry a phenotype or interpretation word."""
        texts = [self.text, *self.interpretation.texts()]
        if self.answer is not None:
            texts += self.answer.texts()
        return [t for t in texts if t]


def readings_in(record: PatientRecord, valueset: ValueSet) -> list[Reading]:
    """Readings whose code is in ``valueset``, oldest first (undated first)."""
    record.require_valueset(valueset.id)
    by_code: _ElementsByCode | None = record.derived.get("coded_elements")
    if by_code is None:  # codes parsed once per record: several rules ask for other value sets
        # the record parsed each Observation's own code already: keyed by the object it read
        parsed = {id(o.resource): o.code for o in record.observed if o.resource is not None}
        by_code = {}
        for position, item in enumerate(_coded_elements(record.observation_resources, parsed)):
            by_code.setdefault(item.code.keys, []).append((position, item))
        record.derived["coded_elements"] = by_code
    # A chart repeats a few codes: each is tested against the value set once, and the elements
    # it selects keep the chart's order before the sort by time.
    selected = sorted(
        (pair for keys, pairs in by_code.items() if valueset.matches_keys(keys) for pair in pairs),
        key=_position,
    )
    found = _readings((item for _position_in_chart, item in selected), None)
    found.sort(key=_sort_key)
    return found


def _position(pair: tuple[int, _CodedElement]) -> int:
    return pair[0]


def all_readings(
    observations: Iterable[Mapping[str, Any]], valueset: ValueSet | None = None
) -> list[Reading]:
    """Every reading, or only those whose code is in ``valueset`` (the others are not built)."""
    return _readings(_coded_elements(observations), valueset)


class _CodedElement(NamedTuple):
    """A value-carrying element (an Observation or one of its components) with its parsed code;
    readings are built only for the elements a value set asks for. A named tuple: one is built
    for every result of the chart, and a tuple is built several times faster than a frozen
    dataclass."""

    element: Mapping[str, Any]
    code: CodedConcept
    element_id: str
    origin: str
    observation: Mapping[str, Any]
    panel: Mapping[str, Any] | None


# Value-carrying elements by their code's value-set keys, each with its position in the chart.
_ElementsByCode = dict[frozenset[tuple[str, str]], list[tuple[int, _CodedElement]]]


def _readings(elements: Iterable[_CodedElement], valueset: ValueSet | None) -> list[Reading]:
    readings = []
    for item in elements:
        if valueset is not None and not item.code.in_valueset(valueset):
            continue
        when = _observation_time(item.observation) or (
            _observation_time(item.panel) if item.panel else None
        )
        reading = _reading(item.element, item.code, item.element_id, when, item.origin)
        if reading is not None:
            readings.append(reading)
    return readings


def _coded_elements(
    observations: Iterable[Mapping[str, Any]], parsed: Mapping[int, CodedConcept] | None = None
) -> list[_CodedElement]:
    observations = list(observations)
    panel_of: dict[str, Mapping[str, Any]] = {}
    elements: list[_CodedElement] = []
    for panel in observations:
        for reference in _member_references(panel):
            if reference.startswith("#"):
                member = _contained(panel, reference[1:])
                if member is not None:
                    member_id = f"{panel.get('id', '')}{reference}"
                    elements += _elements_of(member, panel, member_id)
            else:
                panel_of.setdefault("/".join(reference.rstrip("/").split("/")[-2:]), panel)
    for observation in observations:
        parent = panel_of.get(f"Observation/{observation.get('id', '')}")
        own_code = parsed.get(id(observation)) if parsed else None
        elements += _elements_of(observation, parent, str(observation.get("id", "")), own_code)
    return elements


def _member_references(observation: Mapping[str, Any]) -> list[str]:
    references = []
    for member in observation.get("hasMember") or ():
        reference = member.get("reference") if isinstance(member, Mapping) else None
        if isinstance(reference, str) and reference:
            references.append(reference)
    return references


def _contained(panel: Mapping[str, Any], member_id: str) -> Mapping[str, Any] | None:
    for resource in panel.get("contained") or ():
        if resource.get("resourceType") == "Observation" and resource.get("id") == member_id:
            contained: Mapping[str, Any] = resource
            return contained
    return None


def _elements_of(
    observation: Mapping[str, Any],
    panel: Mapping[str, Any] | None,
    observation_id: str,
    own_code: CodedConcept | None = None,
) -> list[_CodedElement]:
    if observation.get("status") not in LAB_STATUSES:
        return []
    origin = "panel member" if panel else "result"
    elements = [(observation, observation_id, origin)]
    elements += [
        (component, f"{observation_id}#component{index}", "panel component")
        for index, component in enumerate(observation.get("component") or ())
    ]
    return [
        _CodedElement(
            element,
            own_code
            if own_code is not None and element is observation
            else CodedConcept.from_fhir(element.get("code")),
            element_id,
            kind,
            observation,
            panel,
        )
        for element, element_id, kind in elements
    ]


def _reading(
    element: Mapping[str, Any],
    code: CodedConcept,
    observation_id: str,
    when: datetime | None,
    origin: str,
) -> Reading | None:
    """A value-carrying element (an Observation or one of its components) as a Reading."""
    interpretation = _first_concept(element.get("interpretation"))
    if "valueQuantity" in element:
        quantity = element["valueQuantity"] or {}
        value = decimal_or_none(quantity.get("value"))
        if value is None:
            return None
        low, low_unit = _reference_low(element)
        unit = _unit_of(quantity)
        return Reading(
            observation_id,
            code,
            when,
            origin,
            quantity=value,
            unit=unit,
            unit_label=str(quantity.get("unit") or unit).strip(),
            reference_low=low,
            reference_low_unit=low_unit,
            interpretation=interpretation,
        )
    if "valueCodeableConcept" in element:
        answer = CodedConcept.from_fhir(element["valueCodeableConcept"])
        return Reading(
            observation_id, code, when, origin, answer=answer, interpretation=interpretation
        )
    if isinstance(element.get("valueString"), str):
        return Reading(
            observation_id,
            code,
            when,
            origin,
            text=element["valueString"].strip(),
            interpretation=interpretation,
        )
    if interpretation.codes or interpretation.text:
        return Reading(observation_id, code, when, origin, interpretation=interpretation)
    return None


def _reference_low(element: Mapping[str, Any]) -> tuple[Decimal | None, str | None]:
    for reference_range in element.get("referenceRange") or ():
        low = reference_range.get("low") or {}
        value = decimal_or_none(low.get("value"))
        if value is not None:
            unit = _unit_of(low)
            return value, unit or None
    return None, None


def _first_concept(value: Any) -> CodedConcept:
    if isinstance(value, list) and value:
        return CodedConcept.from_fhir(value[0])
    return CodedConcept()
