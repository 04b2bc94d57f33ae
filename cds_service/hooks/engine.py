"""One hook call: validated request -> triggered rules -> data -> PatientRecord -> cards."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cds_service.common.errors import NotFound
from cds_service.config.cards import render_card
from cds_service.config.configuration import Configuration, RuleConfig, ServiceConfig
from cds_service.fhir.client import FhirFetcher
from cds_service.fhir.strict import strict_note
from cds_service.hooks.prefetch import ResolvedData, prefetched_medications, resolve
from cds_service.hooks.protocol import HookRequest, parse_hook_request
from cds_service.patient.record import (
    DraftOrder,
    PatientRecord,
    RecordBuilder,
    RecordInputs,
    SkippedResource,
)
from cds_service.patient.selection import (
    CodeIndex,
    ObservationSelection,
    UndeclaredRead,
    observations_rules_may_read,
)
from cds_service.patient.terminology import ValueSet
from cds_service.rules.base import Finding, RuleInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedCard:
    card: Mapping[str, Any]
    rule_id: str
    outcome: str
    mode: str = "active"  # "silent": logged and counted, never returned to the EHR

    @property
    def silent(self) -> bool:
        return self.mode == "silent"


@dataclass
class Evaluation:
    request: HookRequest
    service: ServiceConfig
    cards: list[IssuedCard] = field(default_factory=list)

    def response(self) -> dict[str, Any]:
        return {"cards": [dict(issued.card) for issued in self.cards if not issued.silent]}


class Engine:
    def __init__(
        self,
        config: Configuration,
        fetcher: FhirFetcher,
        clock: Callable[[], datetime],
        new_uuid: Callable[[], str],
        *,
        strict_report: bool = False,
    ) -> None:
        self.config = config
        self.strict_report = strict_report  # CDS_STRICT_FHIR_REPORT (cds_service/fhir/strict.py)
        self.fetcher = fetcher
        self.clock = clock
        self.new_uuid = new_uuid
        self.builder = RecordBuilder(config.terminology, config.analytes)
        # the codes any rule may read Observations by (cds_service/patient/selection.py): every
        # value set of the configuration (the analytes' among them); a call reads only those of
        # the rules it triggers (selection_for), this is its fallback
        self.codes_read = CodeIndex.of(config.terminology.valuesets.values())
        self._selections: dict[frozenset[str], ObservationSelection] = {}

    def service(self, service_id: str) -> ServiceConfig:
        service = self.config.services.get(service_id)
        if service is None:
            raise NotFound(f"no CDS service {service_id!r}; see GET /cds-services", expression="id")
        return service

    def call(
        self,
        service_id: str,
        body: Any,
        link_targets: Callable[[str], Mapping[str, str]] | None = None,
        evidence_base: str | None = None,
    ) -> Evaluation:
        """Evaluate one hook request. ``link_targets`` gives, for a patient id, the URLs of this
        service's pages cards may link to (e.g. the demo lab-trend view); none by default.
        ``evidence_base`` is the absolute URL of ``/evidence`` (each card links its rule's page)."""
        service = self.service(service_id)
        request = parse_hook_request(body, service.hook)
        evaluation = Evaluation(request, service)
        skipped: list[SkippedResource] = []
        at_hand = [
            *(r for r in request.draft_resources if r.get("resourceType") == "Medication"),
            *prefetched_medications(request.prefetch),
        ]
        drafts = tuple(self.builder.draft_orders(request.selected_resources, at_hand, skipped))
        enabled = [
            rule for rule in (self.config.rules[rid] for rid in service.rules) if rule.enabled
        ]
        # A draft's Medication not at hand is read in the same fetch as everything else; until
        # it is known, every rule a draft could trigger is a candidate (their data is fetched).
        unresolved = {d.unresolved_reference for d in drafts if d.unresolved_reference}
        extra = {f"draft {ref}": ref for ref in sorted(unresolved)} if request.fhir_server else {}
        rules = [
            rule
            for rule in enabled
            if rule.spec.triggered(drafts, request.hook, rule.params)
            or (extra and request.hook in rule.spec.hooks)
        ]
        if not rules:
            return evaluation
        needed = _needed(rules)
        data = resolve(service, request, needed, self.fetcher, extra)
        if extra:
            drafts = tuple(
                self.builder.draft_orders(
                    request.selected_resources, [*at_hand, *data.of_type("Medication")]
                )
            )
            rules = [r for r in rules if r.spec.triggered(drafts, request.hook, r.params)]
        charts = _Charts(
            builder=self.builder,
            everything=self.codes_read,
            request=request,
            data=data,
            needed=needed,
            draft_skipped=skipped,
            strict_note=self._strict_note(request, data),
        )
        selection = self.selection_for(rules)
        now = self.clock()
        targets = link_targets(request.patient_id) if link_targets else {}
        for rule in rules:
            chart = charts.read(selection)
            try:
                finding = self._evaluate(rule, chart.record, drafts, request, now)
            except UndeclaredRead as undeclared:
                # A missing declaration must cost time, never a card: the rule is answered
                # from every Observation, and the error names what to declare.
                log.exception(
                    "rule %s read the %s %r without declaring it (RuleSpec.terminology or a "
                    "*_valueset/*_analyte parameter); evaluated again on the whole chart",
                    rule.id,
                    undeclared.kind,
                    undeclared.name,
                    extra={"undeclared_read": rule.id},
                )
                chart = charts.read(None)
                finding = self._evaluate(rule, chart.record, drafts, request, now)
            if finding is None:
                continue
            card = render_card(
                finding,
                rule,
                patient_id=request.patient_id,
                data_gaps=chart.gaps,
                new_uuid=self.new_uuid,
                link_targets=targets,
                sources=self.config.sources,
                evidence_url=f"{evidence_base}/{rule.id}" if evidence_base else None,
            )
            if card is not None:
                evaluation.cards.append(IssuedCard(card, rule.id, finding.outcome, rule.mode))
        evaluation.cards = _apply_precedence(evaluation.cards, self.config.rules)
        return evaluation

    def selection_for(self, rules: list[RuleConfig]) -> ObservationSelection:
        """The Observations the rules declare they read (remembered per set of rules)."""
        key = frozenset(rule.id for rule in rules)
        selection = self._selections.get(key)
        if selection is None:
            selection = self._selections[key] = _declared_selection(self.config, rules)
        return selection

    def _strict_note(self, request: HookRequest, data: ResolvedData) -> str | None:
        if not self.strict_report:
            return None
        resources = [*request.selected_resources, *(r for v in data.resources.values() for r in v)]
        return strict_note(resources) or None

    def _evaluate(
        self,
        rule: RuleConfig,
        record: PatientRecord,
        drafts: tuple[DraftOrder, ...],
        request: HookRequest,
        now: datetime,
    ) -> Finding | None:
        return rule.spec.evaluate(
            RuleInput(
                record=record,
                drafts=drafts,
                params=rule.params,
                terminology=self.config.terminology,
                now=now,
                hook=request.hook,
            )
        )


def _apply_precedence(cards: list[IssuedCard], rules: Mapping[str, RuleConfig]) -> list[IssuedCard]:
    """Drop the cards of rules superseded by a rule that issued a card (e.g. only one
    treatment-response card: refractory > insufficient response > non-response). A silent
    rule's card supersedes nothing: clinicians must keep seeing what they saw before it."""
    issued = {card.rule_id for card in cards if not card.silent}
    superseded = {lower for rid in issued for lower in rules[rid].supersedes}
    return [card for card in cards if card.rule_id not in superseded]


def _needed(rules: list[RuleConfig]) -> set[str]:
    needed = {kind.value for rule in rules for kind in rule.spec.needs}
    if "MedicationRequest" in needed:
        # the Medications they reference, and the other records of exposure
        needed |= {"Medication", "MedicationAdministration", "MedicationStatement"}
    return needed


@dataclass(frozen=True)
class _Chart:
    record: PatientRecord
    gaps: list[str]  # what every card of the call names as missing or unread


class _Charts:
    """The call's record, built once per selection: the one its rules declare, and the whole
    chart only if a rule reads beyond its declaration."""

    def __init__(
        self,
        *,
        builder: RecordBuilder,
        everything: CodeIndex,
        request: HookRequest,
        data: ResolvedData,
        needed: set[str],
        draft_skipped: list[SkippedResource],
        strict_note: str | None,
    ) -> None:
        self.builder, self.everything = builder, everything
        self.request, self.data, self.needed = request, data, needed
        self.draft_skipped, self.strict_note = draft_skipped, strict_note
        self._built: dict[frozenset[str] | None, _Chart] = {}

    def read(self, selection: ObservationSelection | None) -> _Chart:
        key = selection.valuesets if selection is not None else None
        chart = self._built.get(key)
        if chart is None:
            index = selection.index if selection is not None else self.everything
            record = self.builder.build(_inputs(self.request, self.data, index), selection)
            # (a prefetched Medication left out is met twice: by the drafts and by the record)
            record.skipped[:0] = [i for i in self.draft_skipped if i not in record.skipped]
            gaps = _record_gaps(record, self.data, self.needed)
            if self.strict_note:
                gaps.append(self.strict_note)
            chart = self._built[key] = _Chart(record, gaps)
        return chart


def _declared_selection(config: Configuration, rules: list[RuleConfig]) -> ObservationSelection:
    """The value sets the rules name (an analyte by its value set), with those they include."""
    valuesets = config.terminology.valuesets
    names: set[str] = set().union(*(rule.terminology_read() for rule in rules))
    pending = [
        config.analytes[name].valueset.id if name in config.analytes else name for name in names
    ]
    chosen: dict[str, ValueSet] = {}
    while pending:
        valueset = valuesets.get(pending.pop())
        if valueset is not None and valueset.id not in chosen:  # drug classes are not
            chosen[valueset.id] = valueset
            pending.extend(valueset.includes)
    return ObservationSelection.of(chosen.values(), config.analytes.values())


def _inputs(request: HookRequest, data: ResolvedData, codes_read: CodeIndex) -> RecordInputs:
    patients = [p for p in data.of_type("Patient") if p.get("id") == request.patient_id]
    # Only Observations the index selects are checked and built (read what rules need).
    observations, unread = observations_rules_may_read(
        _for_patient(data.of_type("Observation"), request.patient_id), codes_read
    )
    if unread:
        log.debug("%d Observation(s) no rule reads were not read", unread)
    return RecordInputs(
        patient_id=request.patient_id,
        patient=patients[0] if patients else None,
        observations=observations,
        medication_requests=_for_patient(data.of_type("MedicationRequest"), request.patient_id),
        medications=data.of_type("Medication"),
        conditions=_for_patient(data.of_type("Condition"), request.patient_id),
        medication_administrations=_for_patient(
            data.of_type("MedicationAdministration"), request.patient_id
        ),
        medication_statements=_for_patient(data.of_type("MedicationStatement"), request.patient_id),
        procedures=_for_patient(data.of_type("Procedure"), request.patient_id),
    )


def _for_patient(resources: list[dict[str, Any]], patient_id: str) -> list[dict[str, Any]]:
    """Drop resources that name another patient: a misbehaving client or server must never mix
    two patients' data. Resources without a subject are kept (they cannot be attributed)."""
    kept = []
    for resource in resources:
        subject = resource.get("subject")
        # A malformed subject is left for resource validation to skip and name on the card.
        reference = subject.get("reference") if isinstance(subject, dict | Mapping) else None
        if isinstance(reference, str) and reference.split("/")[-1] != patient_id:
            log.warning(
                "dropped a %s that belongs to another patient", resource.get("resourceType")
            )
            continue
        kept.append(resource)
    return kept


def _record_gaps(record: PatientRecord, data: ResolvedData, needed: set[str]) -> list[str]:
    gaps = list(data.notes)
    if not record.patient_known and "Patient" in needed:
        gaps.append("No Patient resource was available: sex and age are unknown.")
    if record.skipped:
        gaps.append(record.skipped_summary() + ".")
    if record.unread:
        gaps.append(
            "Read without an element that could not be read: " + record.unread_summary() + "."
        )
    if record.unknown_units:
        units = sorted({f"{analyte} in {unit!r}" for analyte, unit in record.unknown_units})
        gaps.append(
            "Results in units the service does not know were not used: " + ", ".join(units) + "."
        )
    return gaps
