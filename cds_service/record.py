"""PatientRecord: one typed, normalised view of the patient, built once per request. No I/O."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from cds_service.dosing import NO_DOSAGE, Dosage, read_dosage
from cds_service.fhir_validation import validation_problem
from cds_service.fhirdates import parse_fhir_date, parse_fhir_datetime
from cds_service.numbers import decimal_or_none as _decimal
from cds_service.terminology import Analyte, CodedConcept, Terminology

log = logging.getLogger(__name__)
MAX_ECHOED_CHARS = 40  # of a client's value quoted in a log line or on a card

LAB_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})
COURSE_STATUSES = frozenset({"active", "completed", "stopped", "on-hold"})
OPEN_COURSE_STATUSES = frozenset({"active", "on-hold"})
ACTIVE_CONDITION_STATUSES = frozenset({"active", "recurrence", "relapse"})
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_POSITIVE_TEXT = re.compile(r"^\s*(positive|pos|detected|reactive)\s*\.?\s*$", re.I)
_NEGATIVE_TEXT = re.compile(r"^\s*(negative|neg|not detected|non-?reactive)\s*\.?\s*$", re.I)


@dataclass(frozen=True)
class SkippedResource:
    resource_type: str
    resource_id: str
    reason: str


@dataclass(frozen=True)
class LabResult:
    """A numeric lab result in its analyte's canonical unit."""

    id: str
    analyte: str
    when: datetime | None
    value: Decimal
    unit: str
    reported_value: Decimal
    reported_unit: str
    uln: Decimal | None
    uln_source: str  # "reference range", "configured default" or "none"


@dataclass(frozen=True)
class QualitativeResult:
    """A result read as positive or negative (codes, interpretation or plain text)."""

    id: str
    when: datetime | None
    positive: bool
    label: str


@dataclass(frozen=True)
class CodedObservation:
    """An Observation whose value is a coded answer (e.g. pregnancy status)."""

    id: str
    code: CodedConcept
    when: datetime | None
    value: CodedConcept


@dataclass(frozen=True)
class ObservedCode:
    """That an Observation with this code was resulted, whatever its value (e.g. "a 6-TGN was
    measured on ..."), for rules that ask whether a test was done rather than what it showed."""

    id: str
    code: CodedConcept
    when: datetime | None


@dataclass(frozen=True)
class MedicationCourse:
    id: str
    concept: CodedConcept
    classes: frozenset[str]
    status: str
    start: datetime | None
    end: datetime | None
    dosage: Dosage = NO_DOSAGE

    @property
    def label(self) -> str:
        return self.concept.label()

    def is_active(self, now: datetime) -> bool:
        if self.status not in OPEN_COURSE_STATUSES:
            return False
        return self.end is None or self.end >= now

    def ended_within(self, now: datetime, days: int) -> bool:
        """True when the course ended at a known time within ``days`` before now."""
        if self.end is None or self.end > now:
            return False
        return (now - self.end).days <= days


@dataclass(frozen=True)
class DraftOrder:
    """A draft request from ``context.draftOrders`` (MedicationRequest only for now)."""

    resource_type: str
    id: str
    concept: CodedConcept
    classes: frozenset[str]
    start: datetime | None
    dosage: Dosage = NO_DOSAGE

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"

    @property
    def label(self) -> str:
        return self.concept.label()


@dataclass(frozen=True)
class ConditionFact:
    id: str
    concept: CodedConcept
    active: bool
    onset: datetime | None


@dataclass
class PatientRecord:
    patient_id: str
    gender: str | None = None
    birth_date: date | None = None
    labs: dict[str, list[LabResult]] = field(default_factory=dict)
    qualitative: dict[str, list[QualitativeResult]] = field(default_factory=dict)
    coded: list[CodedObservation] = field(default_factory=list)
    observed: list[ObservedCode] = field(default_factory=list)
    courses: list[MedicationCourse] = field(default_factory=list)
    conditions: list[ConditionFact] = field(default_factory=list)
    skipped: list[SkippedResource] = field(default_factory=list)
    unknown_units: list[tuple[str, str]] = field(default_factory=list)  # (analyte, unit)
    patient_known: bool = False
    # every valid Observation as received, for readers of panels, components and coded results
    # (cds_service/readings.py)
    observation_resources: list[Mapping[str, Any]] = field(default_factory=list)
    # values derived once per request by readers of the record (e.g. all readings), by name
    derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def lab_series(self, analyte: str) -> list[LabResult]:
        return self.labs.get(analyte, [])

    def qualitative_results(self, analyte: str) -> list[QualitativeResult]:
        return self.qualitative.get(analyte, [])

    def observed_in(
        self, terminology: Terminology, valueset_ids: Iterable[str]
    ) -> list[ObservedCode]:
        """Resulted Observations coded in any of the value sets, oldest first."""
        codes = frozenset().union(*(terminology.valueset(vs).codes for vs in valueset_ids))
        return [o for o in self.observed if not codes.isdisjoint(o.code.keys)]

    def courses_in(self, drug_class: str) -> list[MedicationCourse]:
        return [c for c in self.courses if drug_class in c.classes]

    def active_conditions_in(
        self, terminology: Terminology, valueset_id: str
    ) -> list[ConditionFact]:
        valueset = terminology.valueset(valueset_id)
        return [c for c in self.conditions if c.active and c.concept.in_valueset(valueset)]

    def skipped_summary(self) -> str:
        if not self.skipped:
            return ""
        counts: dict[str, int] = {}
        for item in self.skipped:
            counts[item.resource_type] = counts.get(item.resource_type, 0) + 1
        parts = [f"{n} {t}" for t, n in sorted(counts.items())]
        return f"{', '.join(parts)} resource(s) could not be read and were ignored"


# ---------------------------------------------------------------- building


@dataclass(frozen=True)
class RecordInputs:
    """Resources gathered by prefetch resolution, by type (already flattened from Bundles)."""

    patient_id: str
    patient: Mapping[str, Any] | None
    observations: Sequence[Mapping[str, Any]] = ()
    medication_requests: Sequence[Mapping[str, Any]] = ()
    medications: Sequence[Mapping[str, Any]] = ()
    conditions: Sequence[Mapping[str, Any]] = ()


class RecordBuilder:
    """Builds PatientRecords and draft orders from FHIR JSON, under one configuration."""

    def __init__(
        self,
        terminology: Terminology,
        analytes: Mapping[str, Analyte],
        qualitative_analytes: Iterable[str] = ("hcg",),
    ) -> None:
        self.terminology = terminology
        self.analytes = analytes
        self.qualitative_analytes = tuple(a for a in qualitative_analytes if a in analytes)

    # -- public

    def build(self, inputs: RecordInputs) -> PatientRecord:
        record = PatientRecord(patient_id=inputs.patient_id)
        if inputs.patient is not None and self._valid(inputs.patient, record):
            record.patient_known = True
            gender = inputs.patient.get("gender")
            record.gender = gender if isinstance(gender, str) else None
            record.birth_date = parse_fhir_date(inputs.patient.get("birthDate"))
        medications = self._index_medications(inputs.medications, record)
        for obs in inputs.observations:
            if self._valid(obs, record):
                record.observation_resources.append(obs)
                self._add_observation(obs, record)
        for request in inputs.medication_requests:
            if self._valid(request, record):
                course = self._course(request, medications)
                if course is not None:
                    record.courses.append(course)
        for condition in inputs.conditions:
            if self._valid(condition, record):
                fact = _condition(condition)
                if fact is not None:
                    record.conditions.append(fact)
        for lab_series in record.labs.values():
            lab_series.sort(key=_sort_key)
        for qualitative_series in record.qualitative.values():
            qualitative_series.sort(key=_sort_key)
        record.coded.sort(key=_sort_key)
        record.observed.sort(key=_sort_key)
        return record

    def draft_orders(
        self,
        resources: Iterable[Mapping[str, Any]],
        medications: Iterable[Mapping[str, Any]] = (),
        skipped: list[SkippedResource] | None = None,
    ) -> list[DraftOrder]:
        sink = PatientRecord(patient_id="")
        resources = list(resources)
        index = self._index_medications(
            [*medications, *(r for r in resources if r.get("resourceType") == "Medication")], sink
        )
        drafts: list[DraftOrder] = []
        for resource in resources:
            if resource.get("resourceType") != "MedicationRequest":
                continue
            if not self._valid(resource, sink):
                continue
            concept = self._medication_concept(resource, index)
            drafts.append(
                DraftOrder(
                    resource_type="MedicationRequest",
                    id=str(resource.get("id", "")),
                    concept=concept,
                    classes=self.terminology.classes_of(concept),
                    start=_course_start(resource),
                    dosage=read_dosage(resource),
                )
            )
        if skipped is not None:
            skipped.extend(sink.skipped)
        return drafts

    # -- helpers

    def _valid(self, resource: Mapping[str, Any], record: PatientRecord) -> bool:
        problem = validation_problem(resource)
        if problem is None:
            return True
        item = SkippedResource(
            str(resource.get("resourceType", "?")), str(resource.get("id", "?")), problem
        )
        record.skipped.append(item)
        # The id is named on the card, never in logs: a Patient's id is the patient id.
        log.warning("skipped a malformed %s: %s", item.resource_type, problem)
        return False

    def _index_medications(
        self, medications: Iterable[Mapping[str, Any]], record: PatientRecord
    ) -> dict[str, CodedConcept]:
        index: dict[str, CodedConcept] = {}
        for med in medications:
            if med.get("resourceType") != "Medication" or not self._valid(med, record):
                continue
            concept = CodedConcept.from_fhir(med.get("code"))
            med_id = med.get("id")
            if isinstance(med_id, str):
                index[f"Medication/{med_id}"] = concept
        return index

    def _medication_concept(
        self, request: Mapping[str, Any], medications: Mapping[str, CodedConcept]
    ) -> CodedConcept:
        if "medicationCodeableConcept" in request:
            return CodedConcept.from_fhir(request["medicationCodeableConcept"])
        reference = (request.get("medicationReference") or {}).get("reference", "")
        display = (request.get("medicationReference") or {}).get("display", "")
        if isinstance(reference, str) and reference.startswith("#"):
            for contained in request.get("contained") or ():
                if (
                    contained.get("resourceType") == "Medication"
                    and contained.get("id") == reference[1:]
                ):
                    return CodedConcept.from_fhir(contained.get("code"))
        if isinstance(reference, str):
            key = "/".join(reference.rstrip("/").split("/")[-2:])
            if key in medications:
                return medications[key]
        # Unresolved reference: the display text still allows the ingredient-name fallback.
        return CodedConcept(text=display if isinstance(display, str) else "")

    def _course(
        self, request: Mapping[str, Any], medications: Mapping[str, CodedConcept]
    ) -> MedicationCourse | None:
        status = request.get("status")
        if status not in COURSE_STATUSES:
            return None
        concept = self._medication_concept(request, medications)
        classes = self.terminology.classes_of(concept)
        if not classes:
            return None
        return MedicationCourse(
            id=str(request.get("id", "")),
            concept=concept,
            classes=classes,
            status=str(status),
            start=_course_start(request),
            end=_course_end(request),
            dosage=read_dosage(request),
        )

    def _add_observation(self, obs: Mapping[str, Any], record: PatientRecord) -> None:
        if obs.get("status") not in LAB_STATUSES:
            return
        code = CodedConcept.from_fhir(obs.get("code"))
        when = _observation_time(obs)
        obs_id = str(obs.get("id", ""))
        record.observed.append(ObservedCode(obs_id, code, when))
        for analyte in self.analytes.values():
            if not code.in_valueset(analyte.valueset):
                continue
            if "valueQuantity" in obs:
                lab = self._lab_result(obs, analyte, when, record)
                if lab is not None:
                    record.labs.setdefault(analyte.id, []).append(lab)
            if analyte.id in self.qualitative_analytes:
                qual = self._qualitative(obs, obs_id, when)
                if qual is not None:
                    record.qualitative.setdefault(analyte.id, []).append(qual)
        if "valueCodeableConcept" in obs:
            record.coded.append(
                CodedObservation(
                    obs_id, code, when, CodedConcept.from_fhir(obs["valueCodeableConcept"])
                )
            )

    def _lab_result(
        self, obs: Mapping[str, Any], analyte: Analyte, when: datetime | None, record: PatientRecord
    ) -> LabResult | None:
        quantity = obs.get("valueQuantity") or {}
        value = _decimal(quantity.get("value"))
        if value is None:
            return None
        unit = _unit_of(quantity)
        factor = analyte.factors.get(unit)
        if factor is None:
            # Client text reaches the log and the card: a bounded excerpt only.
            unit = unit if len(unit) <= MAX_ECHOED_CHARS else unit[:MAX_ECHOED_CHARS] + "..."
            record.unknown_units.append((analyte.id, unit))
            log.warning(
                "result for %s in unknown unit %r not compared with any threshold", analyte.id, unit
            )
            return None
        uln, source = self._uln(obs, analyte, record.gender)
        return LabResult(
            id=str(obs.get("id", "")),
            analyte=analyte.id,
            when=when,
            value=value * factor,
            unit=analyte.unit,
            reported_value=value,
            reported_unit=unit,
            uln=uln,
            uln_source=source,
        )

    def _uln(
        self, obs: Mapping[str, Any], analyte: Analyte, gender: str | None
    ) -> tuple[Decimal | None, str]:
        for reference_range in obs.get("referenceRange") or ():
            high = reference_range.get("high") or {}
            value = _decimal(high.get("value"))
            factor = analyte.factors.get(_unit_of(high)) if high else None
            if value is not None and factor is not None:
                return value * factor, "reference range"
        if gender is not None and gender in analyte.default_uln_by_sex:
            return analyte.default_uln_by_sex[gender], "configured default"
        if analyte.default_uln is not None:
            return analyte.default_uln, "configured default"
        return None, "none"

    def _qualitative(
        self, obs: Mapping[str, Any], obs_id: str, when: datetime | None
    ) -> QualitativeResult | None:
        positive_vs = self.terminology.valuesets.get("result-positive")
        negative_vs = self.terminology.valuesets.get("result-negative")
        if "valueCodeableConcept" in obs:
            value = CodedConcept.from_fhir(obs["valueCodeableConcept"])
            if positive_vs and value.in_valueset(positive_vs):
                return QualitativeResult(obs_id, when, True, value.label())
            if negative_vs and value.in_valueset(negative_vs):
                return QualitativeResult(obs_id, when, False, value.label())
            text = value.label()
        else:
            raw_text = obs.get("valueString")
            text = raw_text if isinstance(raw_text, str) else ""
        if text and _POSITIVE_TEXT.match(text):
            return QualitativeResult(obs_id, when, True, text.strip())
        if text and _NEGATIVE_TEXT.match(text):
            return QualitativeResult(obs_id, when, False, text.strip())
        if "valueQuantity" in obs:
            return None  # a number is judged by the rule against its thresholds
        for interpretation in obs.get("interpretation") or ():
            for coding in interpretation.get("coding") or ():
                if coding.get("system") == INTERPRETATION_SYSTEM and coding.get("code") in {
                    "POS",
                    "NEG",
                }:
                    positive = coding["code"] == "POS"
                    return QualitativeResult(
                        obs_id, when, positive, "positive" if positive else "negative"
                    )
        return None


def _condition(resource: Mapping[str, Any]) -> ConditionFact | None:
    verification = CodedConcept.from_fhir(resource.get("verificationStatus"))
    if any(c.code in {"entered-in-error", "refuted"} for c in verification.codes):
        return None
    clinical = CodedConcept.from_fhir(resource.get("clinicalStatus"))
    active = not clinical.codes or any(c.code in ACTIVE_CONDITION_STATUSES for c in clinical.codes)
    return ConditionFact(
        id=str(resource.get("id", "")),
        concept=CodedConcept.from_fhir(resource.get("code")),
        active=active,
        onset=parse_fhir_datetime(resource.get("onsetDateTime")),
    )


def _observation_time(obs: Mapping[str, Any]) -> datetime | None:
    return (
        parse_fhir_datetime(obs.get("effectiveDateTime"))
        or parse_fhir_datetime((obs.get("effectivePeriod") or {}).get("start"))
        or parse_fhir_datetime(obs.get("effectiveInstant"))
        or parse_fhir_datetime(obs.get("issued"))
    )


def _bounds_periods(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    periods = []
    for dosage in request.get("dosageInstruction") or ():
        period = ((dosage.get("timing") or {}).get("repeat") or {}).get("boundsPeriod")
        if isinstance(period, Mapping):
            periods.append(period)
    return periods


def _course_start(request: Mapping[str, Any]) -> datetime | None:
    starts = [s for p in _bounds_periods(request) if (s := parse_fhir_datetime(p.get("start")))]
    return min(starts) if starts else parse_fhir_datetime(request.get("authoredOn"))


def _course_end(request: Mapping[str, Any]) -> datetime | None:
    ends = [e for p in _bounds_periods(request) if (e := parse_fhir_datetime(p.get("end")))]
    return max(ends) if ends else None


def _unit_of(quantity: Mapping[str, Any]) -> str:
    unit = quantity.get("code") or quantity.get("unit") or ""
    return str(unit).strip()


_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


def _sort_key(item: Any) -> tuple[int, datetime]:
    """Undated items sort first so 'latest' never means an undated result."""
    when: datetime | None = item.when
    return (0, _EPOCH) if when is None else (1, when)
