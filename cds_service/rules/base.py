"""What a rule is: a pure function over a PatientRecord, and what it may say."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from marshmallow import Schema

if TYPE_CHECKING:
    from cds_service.patient.record import DraftOrder, PatientRecord
    from cds_service.patient.terminology import Terminology


class DataKind(StrEnum):
    """Parts of the record a rule reads; each maps to prefetch keys by resource type."""

    PATIENT = "Patient"
    OBSERVATIONS = "Observation"
    MEDICATION_REQUESTS = "MedicationRequest"
    CONDITIONS = "Condition"
    # supplementary: read when the client sends or allows it, never a 412 when it cannot be had
    PROCEDURES = "Procedure"


# Resource types a missing prefetch of which is named on the card instead of answered with a 412:
# extra sources of exposure, and procedures. A client that sends neither their prefetch nor a
# fhirServer still gets an answer from the core data.
SUPPLEMENTARY = frozenset(
    {DataKind.PROCEDURES.value, "MedicationAdministration", "MedicationStatement"}
)

# Rules that read every part of the chart (the patient, labs, medications and conditions).
WHOLE_CHART = frozenset(
    {DataKind.PATIENT, DataKind.OBSERVATIONS, DataKind.MEDICATION_REQUESTS, DataKind.CONDITIONS}
)


@dataclass(frozen=True)
class Finding:
    """A rule's conclusion: which configured outcome, with the values its card text uses."""

    rule_id: str
    outcome: str
    variables: Mapping[str, str]
    drafts: tuple[DraftOrder, ...] = ()
    # what was missing or assumed; the engine adds it to the card's ${data_gaps}
    gaps: tuple[str, ...] = ()
    # the outcome's configured suggestions that apply to this patient (None: all of them); the
    # rule decides applicability, the configuration decides wording and whether it is offered
    applicable_suggestions: frozenset[str] | None = None


@dataclass(frozen=True)
class RuleInput:
    record: PatientRecord
    drafts: tuple[DraftOrder, ...]
    params: Mapping[str, Any]
    terminology: Terminology
    now: datetime
    hook: str


@dataclass(frozen=True)
class RuleSpec:
    """The contract between a rule module and its YAML file."""

    id: str
    hooks: frozenset[str]
    needs: frozenset[DataKind]
    # outcome name -> template variables the rule provides for it
    outcomes: Mapping[str, frozenset[str]]
    parameters: type[Schema]
    # (drafts, hook, params) -> whether the rule runs; decided before any data is fetched
    triggered: Callable[[tuple[DraftOrder, ...], str, Mapping[str, Any]], bool]
    evaluate: Callable[[RuleInput], Finding | None]
    # drug classes and lab analytes (terminology.yaml ids) the rule reads by name, besides those
    # its parameters name; ``aih-cds valueset where`` lists the rules a code matters to
    terminology: frozenset[str] = frozenset()
    # variables every outcome gets from the engine
    common_variables: frozenset[str] = field(
        default_factory=lambda: frozenset({"evidence", "data_gaps"})
    )

    def variables_for(self, outcome: str) -> frozenset[str]:
        return self.outcomes[outcome] | self.common_variables
