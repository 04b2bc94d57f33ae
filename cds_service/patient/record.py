"""PatientRecord: one typed, normalised view of the patient, built once per request. No I/O."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from cds_service.common.fhirdates import parse_fhir_date, parse_fhir_datetime
from cds_service.common.numbers import decimal_or_none as _decimal
from cds_service.fhir.reading import proven_as_sent, read_resource
from cds_service.patient.clinical_sex import ClinicalSex, clinical_sex
from cds_service.patient.dosing import NO_DOSAGE, Dosage, read_dosage
from cds_service.patient.routes import ROUTE_NOT_RECORDED, Route
from cds_service.patient.selection import ObservationSelection
from cds_service.patient.terminology import Analyte, CodedConcept, Terminology, ValueSet
from cds_service.patient.units import comparator_of

log = logging.getLogger(__name__)

_MAX_REMEMBERED = 4096  # codes whose analytes a builder remembers
_MAX_REMEMBERED_LENGTH = 500  # characters of systems and codes a remembered code may carry
MAX_ECHOED_CHARS = 40  # of a client's value quoted in a log line or on a card

LAB_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})
COURSE_STATUSES = frozenset({"active", "completed", "stopped", "on-hold"})
OPEN_COURSE_STATUSES = frozenset({"active", "on-hold"})
# Other sources of exposure and the statuses that count (docs/reading-policy.md)
ADMINISTRATION_STATUSES = frozenset({"completed", "in-progress"})
STATEMENT_STATUSES = frozenset({"active", "completed", "intended"})
SERIES_STATUS = "dose series"  # the status shown for a course chained from single exposures
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
    # valueQuantity.comparator ("<", "<=", ">=", ">") or "" for an exact value; the value is
    # then the bound ("ALT > 400" is read as 400, i.e. at least 400)
    comparator: str = ""

    @property
    def reported_label(self) -> str:
        """The value as on the lab report, comparator included ("< 5 mIU/mL")."""
        value = f"{self.reported_value.normalize():f} {self.reported_unit}".strip()
        return f"{self.comparator} {value}" if self.comparator else value


@dataclass(frozen=True)
class UnreadResult:
    """A result of a known analyte that was not interpreted (e.g. its unit is not known); it is
    named on the card, never taken for "not measured"."""

    id: str
    analyte: str
    when: datetime | None
    value_label: str
    reason: str

    def describe(self) -> str:
        when = self.when.date().isoformat() if self.when else "undated"
        return f"{self.value_label} on {when} ({self.reason})"


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
    # the Observation as read: readers of panels reuse ``code`` instead of parsing it again
    resource: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Exposure:
    """One dated exposure to a drug: a completed or stopped request without an end date (one
    infusion, one dispensed course), a MedicationAdministration or a MedicationStatement."""

    id: str
    source: str  # the resource type it was read from
    concept: CodedConcept
    classes: frozenset[str]
    when: datetime


@dataclass(frozen=True)
class MedicationCourse:
    """A course of a drug: one MedicationRequest with a period or still open, or a series of
    exposures chained by the class's gap (``exposures`` then names them, oldest first; the
    course runs from the first exposure to the last plus the gap)."""

    id: str
    concept: CodedConcept
    classes: frozenset[str]
    status: str
    start: datetime | None
    end: datetime | None
    dosage: Dosage = NO_DOSAGE
    exposures: tuple[Exposure, ...] = ()
    route: Route = ROUTE_NOT_RECORDED
    # classes the medication belongs to but this course does not count for (not systemic)
    not_counted: frozenset[str] = frozenset()
    # why it was ordered: reasonCode concepts and reasonReference references ("Condition/x")
    reasons: tuple[CodedConcept, ...] = ()
    reason_references: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.concept.label()

    def is_active(self, now: datetime) -> bool:
        if self.exposures:  # a dose series covers [first dose, last dose + gap): gap exclusive
            return self.end is not None and self.end > now
        if self.status not in OPEN_COURSE_STATUSES:
            return False
        return self.end is None or self.end >= now

    def ended_within(self, now: datetime, days: int) -> bool:
        """True when the course ended at a known time within ``days`` before now."""
        if self.end is None or self.end > now:
            return False
        return (now - self.end).days <= days


@dataclass(frozen=True)
class _Drug:
    """What a medication resource says about the drug: its classes (those the route counts for),
    dosage, route and the classes it belongs to but does not count for."""

    concept: CodedConcept
    classes: frozenset[str]
    dosage: Dosage
    route: Route
    not_counted: frozenset[str]
    reasons: tuple[CodedConcept, ...] = ()
    reason_references: tuple[str, ...] = ()


def _reasons(resource: Mapping[str, Any]) -> tuple[tuple[CodedConcept, ...], tuple[str, ...]]:
    """Why it was ordered: reasonCode concepts and reasonReference references."""
    codes = tuple(
        CodedConcept.from_fhir(r)
        for r in resource.get("reasonCode") or ()
        if isinstance(r, Mapping)
    )
    references = tuple(
        r["reference"]
        for r in resource.get("reasonReference") or ()
        if isinstance(r, Mapping) and isinstance(r.get("reference"), str)
    )
    return codes, references


def _course(
    course_id: str, drug: _Drug, status: str, start: datetime | None, end: datetime | None
) -> MedicationCourse:
    return MedicationCourse(
        id=course_id,
        concept=drug.concept,
        classes=drug.classes,
        status=status,
        start=start,
        end=end,
        dosage=drug.dosage,
        route=drug.route,
        not_counted=drug.not_counted,
        reasons=drug.reasons,
        reason_references=drug.reason_references,
    )


@dataclass(frozen=True)
class DraftOrder:
    """A draft request from ``context.draftOrders`` (MedicationRequest only for now)."""

    resource_type: str
    id: str
    concept: CodedConcept
    classes: frozenset[str]
    start: datetime | None
    dosage: Dosage = NO_DOSAGE
    # a medicationReference found neither contained nor among the Medications at hand
    unresolved_reference: str | None = None
    # the elements a rule would read that were unusable (named on the unidentified-order card)
    unreadable: tuple[str, ...] = ()
    route: Route = ROUTE_NOT_RECORDED
    not_counted: frozenset[str] = frozenset()

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"

    @property
    def identified(self) -> bool:
        """False when nothing names the drug: no code, no text, no resolvable reference."""
        return bool(self.concept.codes or self.concept.text.strip())

    @property
    def label(self) -> str:
        return self.concept.label()


@dataclass(frozen=True)
class ConditionFact:
    id: str
    concept: CodedConcept
    active: bool
    onset: datetime | None
    # abatement[x] given (a date, a period end, or only a string/true), and its date if any
    abated: bool = False
    abatement: datetime | None = None
    recorded: datetime | None = None


@dataclass(frozen=True)
class ProcedureFact:
    id: str
    concept: CodedConcept
    status: str
    when: datetime | None


@dataclass
class PatientRecord:
    patient_id: str
    gender: str | None = None
    # sex for clinical use (cds_service/patient/clinical_sex.py): sex extensions and gender together
    clinical_sex: ClinicalSex = field(default_factory=lambda: ClinicalSex(None))
    procedures: list[ProcedureFact] = field(default_factory=list)
    birth_date: date | None = None
    labs: dict[str, list[LabResult]] = field(default_factory=dict)
    qualitative: dict[str, list[QualitativeResult]] = field(default_factory=dict)
    coded: list[CodedObservation] = field(default_factory=list)
    observed: list[ObservedCode] = field(default_factory=list)
    courses: list[MedicationCourse] = field(default_factory=list)
    # every dated single exposure (also those chained into ``courses``), oldest first
    exposures: list[Exposure] = field(default_factory=list)
    conditions: list[ConditionFact] = field(default_factory=list)
    skipped: list[SkippedResource] = field(default_factory=list)
    # (resource type, element) of resources read without an element a reader would have used
    unread: list[tuple[str, str]] = field(default_factory=list)
    unknown_units: list[tuple[str, str]] = field(default_factory=list)  # (analyte, unit)
    # results in a unit that could not be interpreted, named on the card
    uninterpreted: list[UnreadResult] = field(default_factory=list)
    patient_known: bool = False
    # every valid Observation as received, for readers of panels, components and coded results
    # (cds_service/patient/readings.py)
    observation_resources: list[Mapping[str, Any]] = field(default_factory=list)
    # values derived once per request by readers of the record (e.g. all readings), by name
    derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # the Observations read for the call's rules (cds_service/patient/selection.py); None: all.
    # Every reader of Observations below asks it first, so a read of terminology no rule
    # declared raises UndeclaredRead instead of answering "no result".
    selection: ObservationSelection | None = None

    def require_valueset(self, valueset_id: str) -> None:
        if self.selection is not None:
            self.selection.require_valueset(valueset_id)

    def require_analyte(self, analyte: str) -> None:
        if self.selection is not None:
            self.selection.require_analyte(analyte)

    def lab_series(self, analyte: str) -> list[LabResult]:
        self.require_analyte(analyte)
        return self.labs.get(analyte, [])

    def qualitative_results(self, analyte: str) -> list[QualitativeResult]:
        self.require_analyte(analyte)
        return self.qualitative.get(analyte, [])

    def unread_results(self, analyte: str, since: datetime | None = None) -> list[UnreadResult]:
        """Results of ``analyte`` that were not interpreted (unknown unit), dated from ``since``
        on when given, oldest first."""
        self.require_analyte(analyte)
        found = [
            r
            for r in self.uninterpreted
            if r.analyte == analyte and (since is None or (r.when is not None and r.when >= since))
        ]
        return sorted(found, key=_sort_key)

    def not_measured_text(self, analyte: str, since: datetime | None, default: str) -> str:
        """``default`` ("not measured since ..."), unless a result exists that could not be
        interpreted: then that result, named with the reason."""
        unread = self.unread_results(analyte, since)
        return unread[-1].describe() if unread else default

    def observed_in(
        self, terminology: Terminology, valueset_ids: Iterable[str]
    ) -> list[ObservedCode]:
        """Resulted Observations coded in any of the value sets, oldest first."""
        valueset_ids = list(valueset_ids)
        for valueset_id in valueset_ids:
            self.require_valueset(valueset_id)
        codes = frozenset().union(*(terminology.valueset(vs).codes for vs in valueset_ids))
        return [o for o in self.observed if not codes.isdisjoint(o.code.keys)]

    def coded_in(self, valueset: ValueSet) -> list[CodedObservation]:
        """Observations with a coded answer whose code is in ``valueset``, oldest first."""
        self.require_valueset(valueset.id)
        return [o for o in self.coded if o.code.in_valueset(valueset)]

    def courses_in(self, drug_class: str) -> list[MedicationCourse]:
        return [c for c in self.courses if drug_class in c.classes]

    def active_conditions_in(
        self, terminology: Terminology, valueset_id: str
    ) -> list[ConditionFact]:
        valueset = terminology.valueset(valueset_id)
        return [c for c in self.conditions if c.active and c.concept.in_valueset(valueset)]

    def completed_procedures_in(
        self, terminology: Terminology, valueset_id: str
    ) -> list[ProcedureFact]:
        valueset = terminology.valueset(valueset_id)
        return [
            p
            for p in self.procedures
            if p.status == "completed" and p.concept.in_valueset(valueset)
        ]

    def skipped_summary(self) -> str:
        if not self.skipped:
            return ""
        counts: dict[str, int] = {}
        for item in self.skipped:
            counts[item.resource_type] = counts.get(item.resource_type, 0) + 1
        parts = [f"{n} {t}" for t, n in sorted(counts.items())]
        reasons = sorted({f"{item.resource_type}: {item.reason}" for item in self.skipped})
        return (
            f"{', '.join(parts)} resource(s) could not be read and were ignored"
            f" ({'; '.join(reasons)})"
        )

    def unread_summary(self) -> str:
        """Elements left out of resources that were otherwise read (empty when none)."""
        counts: dict[str, int] = {}
        for resource_type, element in self.unread:
            key = f"{resource_type}.{element}"
            counts[key] = counts.get(key, 0) + 1
        return ", ".join(f"{key} ({n})" for key, n in sorted(counts.items()))


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
    medication_administrations: Sequence[Mapping[str, Any]] = ()
    medication_statements: Sequence[Mapping[str, Any]] = ()
    procedures: Sequence[Mapping[str, Any]] = ()


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
        # analytes by code, so an Observation is matched by lookups instead of one value-set
        # test per analyte (ICD-10 descendant entries still need the value set's own test)
        self._analytes_by_key: dict[tuple[str, str], set[str]] = {}
        for analyte in analytes.values():
            for key in analyte.valueset.codes:
                self._analytes_by_key.setdefault(key, set()).add(analyte.id)
        self._analytes_with_descendants = tuple(
            a for a in analytes.values() if a.valueset.ancestors
        )
        self._analytes_by_keys: dict[frozenset[tuple[str, str]], tuple[Analyte, ...]] = {}

    # -- public

    def build(
        self, inputs: RecordInputs, selection: ObservationSelection | None = None
    ) -> PatientRecord:
        """The record of ``inputs``; ``selection`` names the Observations they were chosen by
        (their readers refuse anything else), None when they are every Observation."""
        record = PatientRecord(patient_id=inputs.patient_id, selection=selection)
        patient = self._read(inputs.patient, record) if inputs.patient is not None else None
        if patient is not None:
            record.patient_known = True
            gender = patient.get("gender")
            record.gender = gender if isinstance(gender, str) else None
            record.birth_date = parse_fhir_date(patient.get("birthDate"))
            record.clinical_sex = clinical_sex(patient, record.gender)
        medications = self._index_medications(inputs.medications, record)
        for raw_obs in inputs.observations:
            if (obs := self._read(raw_obs, record)) is not None:
                record.observation_resources.append(obs)
                self._add_observation(obs, record)
        for raw_request in inputs.medication_requests:
            if (request := self._read(raw_request, record)) is not None:
                self._add_request(request, medications, record)
        for raw_other in (*inputs.medication_administrations, *inputs.medication_statements):
            if (other := self._read(raw_other, record)) is not None:
                self._add_exposure_source(other, medications, record)
        record.exposures.sort(key=_sort_key)
        record.courses.extend(self._chain(record.exposures))
        for raw_condition in inputs.conditions:
            if (condition := self._read(raw_condition, record)) is not None:
                fact = _condition(condition)
                if fact is not None:
                    record.conditions.append(fact)
        for raw_procedure in inputs.procedures:
            if (procedure := self._read(raw_procedure, record)) is not None:
                record.procedures.append(_procedure(procedure))
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
        for raw in resources:
            if raw.get("resourceType") != "MedicationRequest":
                continue
            # A draft is never left out: what cannot be read of it is named instead.
            read = read_resource(raw, required=False)
            resource = read.resource or {"resourceType": "MedicationRequest"}
            if read.repairs:
                log.info("draft order read leniently: %s", "; ".join(read.repairs))
            concept = self._medication_concept(resource, index)
            dosage = read_dosage(resource)
            classes, route, not_counted = self._classes(concept, dosage)
            drafts.append(
                DraftOrder(
                    resource_type="MedicationRequest",
                    id=str(resource.get("id", "")),
                    concept=concept,
                    classes=classes,
                    start=_course_start(resource),
                    dosage=dosage,
                    route=route,
                    not_counted=not_counted,
                    unresolved_reference=_unresolved_reference(resource, index),
                    unreadable=tuple(read.unread_elements("MedicationRequest")),
                )
            )
        if skipped is not None:
            skipped.extend(sink.skipped)
        return drafts

    # -- helpers

    def _read(self, resource: Mapping[str, Any], record: PatientRecord) -> dict[str, Any] | None:
        """The resource as rules may read it (fhir_reading), or None when left out: then it is
        recorded in ``record.skipped`` and named on the card."""
        if proven_as_sent(resource):
            return resource  # read as sent
        read = read_resource(resource)
        resource_type = str(resource.get("resourceType", "?"))
        if read.repairs:
            log.info("%s read leniently: %s", resource_type, "; ".join(read.repairs))
        if read.resource is None:
            item = SkippedResource(resource_type, str(resource.get("id", "?")), str(read.problem))
            record.skipped.append(item)
            # The id is named on the card, never in logs: a Patient's id is the patient id.
            log.warning("skipped an unusable %s: %s", item.resource_type, item.reason)
            return None
        for element in read.unread_elements(resource_type):
            record.unread.append((resource_type, element))
            log.warning("%s read without its unusable %s", resource_type, element)
        return read.resource

    def _index_medications(
        self, medications: Iterable[Mapping[str, Any]], record: PatientRecord
    ) -> dict[str, CodedConcept]:
        index: dict[str, CodedConcept] = {}
        for raw in medications:
            if raw.get("resourceType") != "Medication":
                continue
            if (med := self._read(raw, record)) is None:
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
        if "medicationReference" not in request:
            return CodedConcept()
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

    def _drug_of(
        self,
        resource: Mapping[str, Any],
        medications: Mapping[str, CodedConcept],
        statuses: frozenset[str],
    ) -> _Drug | None:
        """The drug and its classes, when the status counts and the drug is in a class."""
        if resource.get("status") not in statuses:
            return None
        concept = self._medication_concept(resource, medications)
        dosage = read_dosage(resource)
        classes, route, not_counted = self._classes(concept, dosage)
        if not classes and not not_counted:
            return None
        return _Drug(concept, classes, dosage, route, not_counted, *_reasons(resource))

    def _add_request(
        self,
        request: Mapping[str, Any],
        medications: Mapping[str, CodedConcept],
        record: PatientRecord,
    ) -> None:
        drug = self._drug_of(request, medications, COURSE_STATUSES)
        if drug is None:
            return
        status = request.get("status")
        start, end = _course_start(request), _course_end(request)
        if status not in OPEN_COURSE_STATUSES and end is None and drug.classes:
            # completed or stopped without an end date: one exposure on its start date (how
            # infusions are usually ordered: one completed request per infusion)
            self._add_dated(request, drug.concept, drug.classes, start, record=record)
            return
        record.courses.append(_course(str(request.get("id", "")), drug, str(status), start, end))

    def _add_exposure_source(
        self,
        resource: Mapping[str, Any],
        medications: Mapping[str, CodedConcept],
        record: PatientRecord,
    ) -> None:
        """A MedicationAdministration or MedicationStatement: one exposure on its date; a
        statement with a period, or an active one, is a course like an order with its period."""
        resource_type = resource.get("resourceType")
        status = resource.get("status")
        statuses = (
            ADMINISTRATION_STATUSES
            if resource_type == "MedicationAdministration"
            else STATEMENT_STATUSES
        )
        drug = self._drug_of(resource, medications, statuses)
        if drug is None:
            return
        period = resource.get("effectivePeriod") or {}
        start = (
            parse_fhir_datetime(resource.get("effectiveDateTime"))
            or parse_fhir_datetime(period.get("start"))
            or parse_fhir_datetime(resource.get("dateAsserted"))
        )
        end = parse_fhir_datetime(period.get("end"))
        is_course = resource_type == "MedicationStatement" and (
            status == "active" or end is not None
        )
        if is_course or not drug.classes:
            # taken over a period (or still taken): a course, like an order with its period; a
            # drug given by a route that does not count stays a course, named but not counted
            record.courses.append(
                _course(str(resource.get("id", "")), drug, str(status), start, end)
            )
            return
        self._add_dated(resource, drug.concept, drug.classes, start, record=record)

    def _add_dated(
        self,
        resource: Mapping[str, Any],
        concept: CodedConcept,
        classes: frozenset[str],
        when: datetime | None,
        *,
        record: PatientRecord,
    ) -> None:
        resource_type, resource_id = str(resource.get("resourceType")), str(resource.get("id", ""))
        if when is None:
            # an undated exposure is kept as an undated, ended course: rules name it as a gap
            status = str(resource.get("status"))
            record.courses.append(
                MedicationCourse(resource_id, concept, classes, status, None, None)
            )
            return
        record.exposures.append(Exposure(resource_id, resource_type, concept, classes, when))

    def _chain(self, exposures: Sequence[Exposure]) -> list[MedicationCourse]:
        """Exposures of the same drug classes, oldest first, chained into courses: a gap shorter
        than the classes' configured course gap continues the course."""
        by_classes: dict[frozenset[str], list[Exposure]] = {}
        for exposure in exposures:
            by_classes.setdefault(exposure.classes, []).append(exposure)
        courses: list[MedicationCourse] = []
        for classes, series in by_classes.items():
            gap = timedelta(days=self.terminology.course_gap_days(classes))
            chain: list[Exposure] = []
            for exposure in series:
                if chain and exposure.when - chain[-1].when >= gap:
                    courses.append(_series_course(chain, gap))
                    chain = []
                chain.append(exposure)
            if chain:
                courses.append(_series_course(chain, gap))
        return courses

    def _classes(
        self, concept: CodedConcept, dosage: Dosage
    ) -> tuple[frozenset[str], Route, frozenset[str]]:
        """(the classes the medication counts for, its route, the classes it belongs to but
        does not count for because its route is not systemic)."""
        classes = self.terminology.classes_of(concept)
        policy = self.terminology.routes
        if classes.isdisjoint(policy.classes):
            return classes, ROUTE_NOT_RECORDED, frozenset()
        route = policy.classify(
            [*(c.code for c in concept.codes), *dosage.route_codes],
            [*concept.texts(), *dosage.route_texts],
        )
        counted = policy.counted_classes(classes, route)
        return counted, route, classes - counted

    def _add_observation(self, obs: Mapping[str, Any], record: PatientRecord) -> None:
        if obs.get("status") not in LAB_STATUSES:
            return
        code = CodedConcept.from_fhir(obs.get("code"))
        when = _observation_time(obs)
        obs_id = str(obs.get("id", ""))
        record.observed.append(ObservedCode(obs_id, code, when, obs))
        for analyte in self._analytes_of(code):
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

    def _analytes_of(self, code: CodedConcept) -> tuple[Analyte, ...]:
        """The analytes whose value set holds the code, in configuration order."""
        keys = code.keys
        known = self._analytes_by_keys.get(keys)
        if known is not None:
            return known
        found = {aid for key in keys for aid in self._analytes_by_key.get(key, ())}
        found |= {a.id for a in self._analytes_with_descendants if a.valueset.matches_keys(keys)}
        analytes = tuple(a for a in self.analytes.values() if a.id in found)
        # A function of the keys alone, and a chart repeats few codes. Bounded like the other
        # memos (short codes only, forgotten wholesale when full): client codes cannot grow it.
        if sum(len(system) + len(value) for system, value in keys) <= _MAX_REMEMBERED_LENGTH:
            if len(self._analytes_by_keys) >= _MAX_REMEMBERED:
                self._analytes_by_keys.clear()
            self._analytes_by_keys[keys] = analytes
        return analytes

    def _lab_result(
        self, obs: Mapping[str, Any], analyte: Analyte, when: datetime | None, record: PatientRecord
    ) -> LabResult | None:
        quantity = obs.get("valueQuantity") or {}
        value = _decimal(quantity.get("value"))
        if value is None:
            return None
        unit, factor = analyte.factor_of(quantity)
        comparator = comparator_of(quantity)
        if factor is None:
            # Client text reaches the log and the card: a bounded excerpt only.
            unit = unit if len(unit) <= MAX_ECHOED_CHARS else unit[:MAX_ECHOED_CHARS] + "..."
            record.unknown_units.append((analyte.id, unit))
            label = f"{comparator} {value.normalize():f} {unit}".strip()
            record.uninterpreted.append(
                UnreadResult(
                    str(obs.get("id", "")),
                    analyte.id,
                    when,
                    label,
                    f"in unit {unit!r}, not interpreted" if unit else "no unit, not interpreted",
                )
            )
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
            comparator=comparator,
        )

    def _uln(
        self, obs: Mapping[str, Any], analyte: Analyte, gender: str | None
    ) -> tuple[Decimal | None, str]:
        for reference_range in obs.get("referenceRange") or ():
            high = reference_range.get("high") or {}
            value = _decimal(high.get("value"))
            factor = analyte.factor_of(high)[1] if high else None
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
                return QualitativeResult(obs_id, when, True, _answer_label(value, positive_vs))
            if negative_vs and value.in_valueset(negative_vs):
                return QualitativeResult(obs_id, when, False, _answer_label(value, negative_vs))
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


def _series_course(chain: Sequence[Exposure], gap: timedelta) -> MedicationCourse:
    first, last = chain[0], chain[-1]
    return MedicationCourse(
        id=first.id,
        concept=last.concept,
        classes=first.classes,
        status=SERIES_STATUS,
        start=first.when,
        end=last.when + gap,
        exposures=tuple(chain),
    )


def _unresolved_reference(
    request: Mapping[str, Any], medications: Mapping[str, CodedConcept]
) -> str | None:
    """``Medication/<id>`` when the draft's medicationReference is relative, not contained and
    not among the Medications at hand (so it may be read from fhirServer)."""
    if "medicationCodeableConcept" in request:
        return None
    reference = (request.get("medicationReference") or {}).get("reference")
    if not isinstance(reference, str) or reference.startswith("#"):
        return None
    parts = reference.strip().split("/")
    if len(parts) != 2 or parts[0] != "Medication" or not _FHIR_ID.match(parts[1]):
        return None  # absolute or odd references are never fetched (another server)
    key = "/".join(parts)
    return None if key in medications else key


_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def _answer_label(value: CodedConcept, valueset: ValueSet) -> str:
    """The answer's own text or display; for a bare code (LA6576-8), the value set's display."""
    if value.text or any(c.display for c in value.codes):
        return value.label()
    for key in sorted(value.keys):
        display = valueset.displays.get(key)
        if display:
            return display
    return value.label()


def _condition(resource: Mapping[str, Any]) -> ConditionFact | None:
    verification = CodedConcept.from_fhir(resource.get("verificationStatus"))
    if any(c.code in {"entered-in-error", "refuted"} for c in verification.codes):
        return None
    clinical = CodedConcept.from_fhir(resource.get("clinicalStatus"))
    active = not clinical.codes or any(c.code in ACTIVE_CONDITION_STATUSES for c in clinical.codes)
    abatement = parse_fhir_datetime(resource.get("abatementDateTime")) or parse_fhir_datetime(
        (resource.get("abatementPeriod") or {}).get("end")
        or (resource.get("abatementPeriod") or {}).get("start")
    )
    abated = abatement is not None or bool(
        resource.get("abatementString") or resource.get("abatementBoolean")
    )
    return ConditionFact(
        id=str(resource.get("id", "")),
        concept=CodedConcept.from_fhir(resource.get("code")),
        active=active,
        onset=parse_fhir_datetime(resource.get("onsetDateTime"))
        or parse_fhir_datetime((resource.get("onsetPeriod") or {}).get("start")),
        abated=abated,
        abatement=abatement,
        recorded=parse_fhir_datetime(resource.get("recordedDate")),
    )


def _procedure(resource: Mapping[str, Any]) -> ProcedureFact:
    status = resource.get("status")
    return ProcedureFact(
        id=str(resource.get("id", "")),
        concept=CodedConcept.from_fhir(resource.get("code")),
        status=status.strip() if isinstance(status, str) else "",
        when=parse_fhir_datetime(resource.get("performedDateTime"))
        or parse_fhir_datetime(_field(resource.get("performedPeriod"), "start")),
    )


def _field(value: Any, name: str) -> Any:
    """``value[name]`` when ``value`` is an object, else None (a malformed element is unread)."""
    return value.get(name) if isinstance(value, Mapping) else None


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
