"""Per-resource structural validation with the fhir.resources R4B models.

EHR payloads carry vendor quirks; one bad resource must never hide the valid ones around it,
so each resource is validated on its own and a failure is reported, not raised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from cds_service.fhir.fastcheck import compile_checker, proven_valid

log = logging.getLogger(__name__)

# The resource types the service reads; their models are built at start-up (lazy build ~74 ms each).
VALIDATED_TYPES = (
    "Patient",
    "Observation",
    "MedicationRequest",
    "Medication",
    "Condition",
    "Bundle",
)


@cache
def model_for(resource_type: str) -> Any:
    return get_fhir_model_class(resource_type)


def warm_models(types: Iterable[str] = VALIDATED_TYPES) -> None:
    for resource_type in types:
        model = model_for(resource_type)
        model.model_validate(
            {"resourceType": resource_type, "id": "warm"} | _MINIMAL.get(resource_type, {})
        )
        compile_checker(model)


_MINIMAL: dict[str, dict[str, Any]] = {
    "Observation": {"status": "final", "code": {"text": "x"}},
    "MedicationRequest": {
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/x"},
        "medicationCodeableConcept": {"text": "x"},
    },
    "Condition": {"subject": {"reference": "Patient/x"}},
    "Bundle": {"type": "collection"},
}


def validation_problem(resource: Mapping[str, Any]) -> str | None:
    """None when the resource is structurally valid R4, else a short reason (no patient data)."""
    model, problem = _model_of(resource)
    if model is None:
        return problem
    if proven_valid(model, resource):
        return None  # the common case, ~15x cheaper; anything unproven gets the full models
    return model_problem(model, resource)


def models_verdict(resource: Mapping[str, Any]) -> str | None:
    """``validation_problem`` from the fhir.resources models alone, without the fast proof."""
    model, problem = _model_of(resource)
    return problem if model is None else model_problem(model, resource)


def _model_of(resource: Mapping[str, Any]) -> tuple[Any, str | None]:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        return None, "no resourceType"
    try:
        return model_for(resource_type), None
    except (KeyError, ValueError, AttributeError):
        return None, f"unknown resourceType {resource_type!r}"


def model_problem(model: Any, resource: Mapping[str, Any]) -> str | None:
    """The verdict of the fhir.resources model itself (the judge of ``proven_valid``)."""
    try:
        # Contained resources are validated with their container; bundles are never passed here.
        model.model_validate(dict(resource))
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first.get("loc", ()))
        return f"{first.get('type', 'invalid')} at {location or '(root)'}"
    except (AttributeError, TypeError) as exc:
        # fhir.resources validators crash on some malformed input (e.g. "_status": 1.5); that
        # resource is malformed too, and must be skipped like any other, never answered with 500
        return f"malformed ({type(exc).__name__} in the model validators)"
    return None
