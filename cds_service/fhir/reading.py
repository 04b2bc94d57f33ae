"""The reading policy: read what rules need, check what you read (docs/reading-policy.md).

Whole-resource R4B validation is not the gate. A resource is read like this:

1. the common case, a resource proven valid R4B by ``fhir_fastcheck``, is used as it is;
2. anything else is walked element by element with the R4B models' own metadata:
   - a single object where R4B wants an array is read as a one-element array (a known client
     quirk: the CDS Hooks Sandbox writes ``category`` and ``reasonCode`` that way);
   - a primitive with stray whitespace (``"active "``) is trimmed, and a date or time R4B would
     refuse but the service can read (``2026-05-01T10:30Z``, no seconds) is written out in full;
   - an element R4B does not define (vendor elements), ``_x`` primitive extensions and
     ``fhir_comments`` are left out: no rule reads them;
   - an element of the wrong type or shape is left out, and nothing else with it;
3. the resource itself is left out only when an element the decision needs is unusable
   (``REQUIRED`` below, or a malformed ``subject``), and the caller names it on the card.

So every element a reader sees has the R4B type and shape, and readers stay simple; problems in
elements that no rule reads never cost a resource. ``strict_problem`` keeps the full R4B verdict
for reports (``CDS_STRICT_FHIR_REPORT``, ``aih-cds fhir check``); it never drops data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from cds_service.common.fhirdates import parse_fhir_datetime
from cds_service.fhir.fastcheck import ElementRule, element_rules, proven_valid
from cds_service.fhir.validation import model_for, models_verdict

# Elements without which a resource says nothing a rule can use: each tuple is one requirement,
# met by any of its (choice) elements. Drafts are never left out (see RecordBuilder.draft_orders).
_MEDICATION = ("medicationCodeableConcept", "medicationReference")
REQUIRED: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "Observation": (("status",), ("code",)),
    "MedicationRequest": (("status",), _MEDICATION),
    "MedicationAdministration": (("status",), _MEDICATION),
    "MedicationStatement": (("status",), _MEDICATION),
    "Condition": (("code",),),
    "Medication": (("code",),),
}
# Elements that, when sent but unusable, make the resource unusable: a malformed subject could
# hide that the resource belongs to another patient.
_FATAL_WHEN_UNUSABLE = frozenset({"subject", "patient"})

# The elements the service's readers use, by resource type: one of these left out as unusable is
# named on the card (the decision was made without it); any other is only logged.
READ_ELEMENTS: Mapping[str, frozenset[str]] = {
    "Patient": frozenset({"gender", "birthDate", "extension", "deceasedBoolean"}),
    "Observation": frozenset(
        {
            "status",
            "code",
            "effectiveDateTime",
            "effectivePeriod",
            "effectiveInstant",
            "issued",
            "valueQuantity",
            "valueCodeableConcept",
            "valueString",
            "referenceRange",
            "interpretation",
            "component",
            "hasMember",
            "contained",
        }
    ),
    "MedicationRequest": frozenset(
        {"status", *_MEDICATION, "authoredOn", "dosageInstruction", "contained"}
    ),
    "MedicationAdministration": frozenset(
        {"status", *_MEDICATION, "effectiveDateTime", "effectivePeriod", "contained"}
    ),
    "MedicationStatement": frozenset(
        {
            "status",
            *_MEDICATION,
            "effectiveDateTime",
            "effectivePeriod",
            "dateAsserted",
            "contained",
        }
    ),
    "Medication": frozenset({"code"}),
    "Condition": frozenset(
        {"code", "clinicalStatus", "verificationStatus", "onsetDateTime", "onsetPeriod"}
    ),
}


@dataclass(frozen=True)
class ReadResult:
    """A resource as the rules may read it, or why it was left out."""

    resource: dict[str, Any] | None
    problem: str | None = None  # why the resource was left out (safe to show: no values)
    # elements read differently from what was sent: "category (one object read as an array)",
    # "status (whitespace trimmed)", "vendorFlag (not an R4B element, not read)", ...
    repairs: tuple[str, ...] = ()
    unusable: tuple[str, ...] = field(default=())  # elements left out because unusable

    @property
    def usable(self) -> bool:
        return self.resource is not None

    def unread_elements(self, resource_type: str) -> list[str]:
        """Unusable elements the readers of this resource type would have used."""
        if not self.unusable:
            return []  # the common case, asked for every resource read
        read = READ_ELEMENTS.get(resource_type, frozenset())
        return sorted({path.split(".")[0] for path in self.unusable} & read)


def proven_as_sent(resource: Any) -> TypeGuard[dict[str, Any]]:
    """Whether the resource is valid R4B as sent, so that reading it changes nothing: the common
    case, answered without building a ReadResult (read_resource for the rest)."""
    if type(resource) is not dict:
        return False
    resource_type = resource.get("resourceType")
    model = _model(resource_type) if isinstance(resource_type, str) else None
    return model is not None and proven_valid(model, resource)


def read_resource(resource: Any, *, required: bool = True) -> ReadResult:
    """Read one resource under the policy; ``required=False`` keeps it whatever is unusable."""
    if not isinstance(resource, Mapping):
        return ReadResult(None, "not a JSON object")
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        return ReadResult(None, "no resourceType")
    model = _model(resource_type)
    if model is None:
        return ReadResult(None, f"unknown resourceType {resource_type!r}")
    if isinstance(resource, dict) and proven_valid(model, resource):
        return ReadResult(resource)
    walk = _Walk()
    cleaned = walk.object(model, resource, "", root=True)
    unusable = tuple(walk.unusable)
    if required:
        problem = _missing_requirement(resource_type, resource, cleaned)
        if problem is not None:
            return ReadResult(None, problem, tuple(walk.repairs), unusable)
    return ReadResult(
        {"resourceType": resource_type, **cleaned}, None, tuple(walk.repairs), unusable
    )


def _model(resource_type: str) -> Any:
    """The fhir.resources model of the type; None for a type R4B does not define."""
    try:
        return model_for(resource_type)
    except (KeyError, ValueError, AttributeError):
        return None


def strict_problem(resource: Mapping[str, Any]) -> str | None:
    """The full R4B verdict (fhir.resources models), for reports only."""
    return models_verdict(resource)


def _missing_requirement(
    resource_type: str,
    original: Mapping[str, Any],
    cleaned: Mapping[str, Any],
) -> str | None:
    for key in _FATAL_WHEN_UNUSABLE:
        if key in original and key not in cleaned:
            return f"unusable {key}"
    for choices in REQUIRED.get(resource_type, ()):
        if not any(name in cleaned for name in choices):
            sent = [name for name in choices if name in original]
            label = " or ".join(choices).replace(
                "medicationCodeableConcept or medicationReference", "medication[x]"
            )
            return f"unusable {label}" if sent else f"no {label}"
    return None


class _Walk:
    """One resource's element-by-element reading; collects what was repaired or dropped."""

    def __init__(self) -> None:
        self.repairs: list[str] = []
        self.unusable: list[str] = []

    def object(
        self, model: Any, data: Mapping[str, Any], path: str, *, root: bool = False
    ) -> dict[str, Any]:
        rules = element_rules(model)
        cleaned: dict[str, Any] = {}
        for key, value in data.items():
            where = f"{path}.{key}" if path else key
            if root and key == "resourceType":
                continue
            if key == "contained" and root:
                contained = self._contained(value, where)
                if contained:
                    cleaned[key] = contained
                continue
            rule = rules.get(key)
            if rule is None:
                self.repairs.append(f"{where} (not read)")
                continue
            kept = self._element(rule, value, where)
            if kept is not None:
                cleaned[key] = kept
        return cleaned

    def _contained(self, value: Any, where: str) -> list[dict[str, Any]]:
        items = value if isinstance(value, list) else [value]
        kept = []
        for item in items:
            result = read_resource(item, required=False)
            if result.resource is None:
                self.unusable.append(where)
            else:
                kept.append(result.resource)
        return kept

    def _element(self, rule: ElementRule, value: Any, where: str) -> Any:
        if rule.many and not isinstance(value, list):
            self.repairs.append(f"{where} (one value read as an array)")
            value = [value]
        if not rule.many:
            return self._item(rule, value, where)
        items = [kept for item in value if (kept := self._item(rule, item, where)) is not None]
        return items or None

    def _item(self, rule: ElementRule, value: Any, where: str) -> Any:
        if rule.model is not None:
            if isinstance(value, Mapping):
                cleaned = self.object(rule.model, value, where)
                if cleaned:
                    return cleaned
            self.unusable.append(where)
            return None
        if rule.accepts(value):
            return value
        for candidate, how in _readable_forms(value):
            if rule.accepts(candidate):
                self.repairs.append(f"{where} ({how})")
                return candidate
        self.unusable.append(where)
        return None


def _readable_forms(value: Any) -> list[tuple[str, str]]:
    """What a primitive R4B refused may mean: trimmed text, or a date written out in full
    (with how it was read; never the value itself, which may be patient data)."""
    if not isinstance(value, str):
        return []
    trimmed = value.strip()
    forms = [(trimmed, "whitespace trimmed")] if trimmed and trimmed != value else []
    parsed = parse_fhir_datetime(trimmed)
    if parsed is not None:
        forms += [
            (parsed.isoformat(), "date and time written out in full"),
            (parsed.date().isoformat(), "read as a date"),
        ]
    return forms
