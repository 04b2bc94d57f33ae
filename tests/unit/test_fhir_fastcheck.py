"""The fast validity proof never contradicts the fhir.resources models.

Judged on every resource of the golden scenarios, the benchmark patients and the shared CDS Hooks
material, and on seeded mutations of them (removed, unknown, null, mistyped, malformed, doubled
choice and primitive-extension elements at any depth): ``validation_problem`` must give exactly
the models' own answer, and the fast path must actually carry the well-formed resources.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from bench.patients import large_patient, small_patient
from cds_service.fhir.fastcheck import _checker, proven_valid
from cds_service.fhir.validation import (
    VALIDATED_TYPES,
    model_for,
    model_problem,
    models_verdict,
    validation_problem,
)
from tests.conftest import MATERIAL, REPO
from tests.factories import json_objects

TYPES = set(VALIDATED_TYPES) - {"Bundle"}
ODD_VALUES: tuple[Any, ...] = (
    None,
    "",
    " ",
    "two  spaces",
    " padded ",
    0,
    -1,
    1.5,
    10**20,
    True,
    False,
    [],
    {},
    [None],
    ["x"],
    {"bogus": 1},
    {"text": "x"},
    "2024-13-40",
    "2024-02-30T10:00:00Z",
    "2024-01-10T08:00:00",
    "2024",
    "not a date",
    "12:00",
    "urn:uuid:0",
    "NaN",
    float("nan"),
)


def _resources(value: Any) -> Iterator[dict[str, Any]]:
    return (o for o in json_objects(value) if o.get("resourceType") in TYPES)


def corpus() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted((REPO / "fixtures" / "fhir").glob("*/*.json")):
        found.extend(_resources(json.loads(path.read_text(encoding="utf-8"))))
    for path in sorted(MATERIAL.rglob("*.json")):
        try:
            found.extend(_resources(json.loads(path.read_text(encoding="utf-8"))))
        except (ValueError, UnicodeDecodeError):
            continue
    for patient in (large_patient(date(2026, 6, 1)), small_patient(date(2026, 6, 1))):
        found.extend([*patient.resources, patient.draft])
    unique = {json.dumps(r, sort_keys=True): r for r in found}
    return list(unique.values())


CORPUS = corpus()


def mutate(resource: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    mutant = copy.deepcopy(resource)
    for _ in range(rng.randint(1, 3)):
        target = rng.choice(list(json_objects(mutant)))
        keys = [k for k in target if k != "resourceType"] or ["id"]
        key = rng.choice(keys)
        operation = rng.randrange(8)
        if operation == 0:
            target.pop(key, None)
        elif operation == 1:
            target[rng.choice(("bogus", "resource_type", "fhir_comments"))] = "x"
        elif operation == 2:
            target[key] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif operation == 3 and key in target:
            value = target[key]
            target[key] = value[0] if isinstance(value, list) and value else [value]
        elif operation == 4:
            target["valueString" if "value" in key else "effectiveDateTime"] = "2024-01-01"
        elif operation == 5:
            target[f"_{key}"] = {"extension": [{"url": "http://x", "valueString": "y"}]}
        elif operation == 6:
            target["resourceType"] = rng.choice(("Coding", "Observation"))
        else:
            target[key] = copy.deepcopy(rng.choice(ODD_VALUES))
            target.pop(rng.choice(keys), None)
    return mutant


def test_the_corpus_is_broad() -> None:
    kinds = {r["resourceType"] for r in CORPUS}
    assert kinds == TYPES
    assert len(CORPUS) > 500


def test_the_fast_path_carries_the_well_formed_resources() -> None:
    valid = [r for r in CORPUS if model_problem(model_for(r["resourceType"]), r) is None]
    proven = [r for r in valid if proven_valid(model_for(r["resourceType"]), r)]
    assert len(proven) >= 0.9 * len(valid)


def test_every_verdict_on_the_corpus_is_the_models_verdict() -> None:
    for resource in CORPUS:
        assert validation_problem(resource) == models_verdict(resource), resource.get("id")


@pytest.mark.parametrize("seed", range(4))
def test_every_verdict_on_mutations_is_the_models_verdict(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    invalid = 0
    for resource in CORPUS:
        mutant = mutate(resource, rng)
        expected = models_verdict(mutant)
        assert validation_problem(mutant) == expected, json.dumps(mutant)[:2000]
        invalid += expected is not None
    assert invalid > len(CORPUS) // 3  # the mutations really produce malformed resources


@pytest.mark.parametrize(
    ("element", "wrap"),
    [
        ("valueInteger", lambda v: v),
        ("valueBoolean", lambda v: v),
        ("valueQuantity", lambda v: {"value": v}),
        ("valueString", lambda v: v),
    ],
)
def test_remembered_values_are_remembered_with_their_type(element: str, wrap: Any) -> None:
    """1, 1.0 and True are equal in Python; each must still get the models' own verdict."""
    for value in (1, True, 1.0, 0, False, 0.0, "1", 1.5):
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            element: wrap(value),
        }
        assert validation_problem(observation) == models_verdict(observation), value


def test_values_the_models_reject_are_never_proven() -> None:
    model = model_for("Patient")
    for birth_date in ("1990-02-30", "1990-13-01", "19900101", "", 19900101):
        patient = {"resourceType": "Patient", "birthDate": birth_date}
        assert not proven_valid(model, patient)
        assert validation_problem(patient) is not None


def test_a_resource_that_crashes_the_model_validators_is_reported_not_raised() -> None:
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    assert validation_problem(observation | {"_status": 1.5}) is not None


def test_remembered_values_stay_bounded() -> None:
    model = model_for("Observation")
    for n in range(10_000):
        text = f"note {n}"
        observation = {"resourceType": "Observation", "status": "final", "code": {"text": text}}
        assert proven_valid(model, observation)
    primitive = _checker(model_for("CodeableConcept")).elements["text"].primitive
    assert primitive is not None
    assert 0 < len(primitive.strings) <= 4096
