"""Properties of the reading policy (docs/reading-policy.md) over golden client requests.

1. Adding an element R4B does not define, anywhere in any resource of the request, never
   removes a card and never raises.
2. Turning any one-element array of any resource into its single element (the CDS Hooks
   Sandbox's quirk, generalised) never removes a card and never raises.
3. A draft order whose medication is malformed or missing never yields an empty answer: the
   unidentified-order card names it.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.common.fhirdates import parse_fhir_datetime
from cds_service.hooks.engine import Engine
from tests.factories import json_objects
from tests.rule_harness import configuration, rule_of

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"
# scenarios with cards, covering every hook, drafts, panels, contained and included Medications
SCENARIOS = (
    "client-sandbox-mmf-pregnant",
    "client-infliximab-administrations",
    "client-single-object-arrays",
    "mmf-contained-medication",
    "mmf-pregnant-status",
    "tpmt-poor-activity",
    "thio-panel-hasmember-high",
    "bud-cirrhosis-oral",
    "allo-draft-full-dose",
    "aih-insufficient-order-select",
    "tnf-alt-bilirubin-umol",
)
ORDER_SCENARIOS = (
    "client-sandbox-mmf-pregnant",
    "mmf-contained-medication",
    "tpmt-poor-activity",
    "bud-cirrhosis-oral",
    "aih-insufficient-order-select",
)
FEWER = settings(max_examples=40)


class NoServer:
    def fetch_many(self, *_: Any, **__: Any) -> dict[str, Any]:
        raise AssertionError("golden requests carry all their data")


@cache
def scenario(name: str) -> tuple[str, dict[str, Any], Any]:
    meta = json.loads((GOLDEN / name / "scenario.json").read_text())
    body = json.loads((GOLDEN / name / "request.json").read_text())
    return meta["service"], body, parse_fhir_datetime(meta["now"])


@cache
def baseline(name: str) -> set[tuple[str, str]]:
    found = cards(name, scenario(name)[1])
    assert found, f"{name}: pick scenarios with cards"
    return found


def cards(name: str, body: dict[str, Any]) -> set[tuple[str, str]]:
    service, _, now = scenario(name)
    engine = Engine(configuration(), NoServer(), lambda: now, lambda: str(uuid.uuid4()))  # type: ignore[arg-type]
    response = engine.call(service, body).response()
    return {(rule_of(c), c["indicator"]) for c in response["cards"]}


def resources(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every resource of the request: drafts and prefetch (Bundle entries and lone resources)."""
    holders = [body["context"].get("draftOrders"), *body.get("prefetch", {}).values()]
    for holder in holders:
        if not isinstance(holder, dict):
            continue
        if holder.get("resourceType") == "Bundle":
            yield from (e["resource"] for e in holder.get("entry", []))
        else:
            yield holder


def singleton_arrays(resource: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    return [
        (obj, key)
        for obj in json_objects(resource)
        for key, value in obj.items()
        if isinstance(value, list) and len(value) == 1
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
vendor_names = st.from_regex(r"\Avendor[A-Z][a-zA-Z]{0,10}\Z")


@FEWER
@given(st.sampled_from(SCENARIOS), st.data(), vendor_names, json_values)
def test_unknown_elements_never_remove_a_card(name: str, data: Any, key: str, value: Any) -> None:
    _, body, _ = scenario(name)
    mutated = copy.deepcopy(body)
    targets = [obj for resource in resources(mutated) for obj in json_objects(resource)]
    data.draw(st.sampled_from(targets))[key] = value
    assert baseline(name) <= cards(name, mutated)


@FEWER
@given(st.sampled_from(SCENARIOS), st.data())
def test_single_object_for_an_array_never_removes_a_card(name: str, data: Any) -> None:
    _, body, _ = scenario(name)
    mutated = copy.deepcopy(body)
    candidates = [pair for resource in resources(mutated) for pair in singleton_arrays(resource)]
    obj, key = data.draw(st.sampled_from(candidates))
    obj[key] = obj[key][0]
    assert baseline(name) <= cards(name, mutated)


garbage_medication = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=20),
    st.lists(st.text(max_size=5), max_size=2),
    st.just({}),
    st.fixed_dictionaries({"coding": st.text(max_size=5) | st.integers()}),
    st.fixed_dictionaries({"text": st.integers() | st.just("") | st.just("  ")}),
)
garbage_reference = st.one_of(
    st.fixed_dictionaries({"reference": st.from_regex(r"\AMedication/[a-z0-9]{1,8}\Z")}),
    st.fixed_dictionaries({"reference": st.text(max_size=12)}),
    st.just({"display": ""}),
    st.text(max_size=10),
)


@FEWER
@given(
    st.sampled_from(ORDER_SCENARIOS),
    st.sampled_from(["medicationCodeableConcept", "medicationReference", "none"]),
    garbage_medication,
    garbage_reference,
)
def test_malformed_draft_medication_never_gives_an_empty_answer(
    name: str, shape: str, concept: Any, reference: Any
) -> None:
    _, body, _ = scenario(name)
    mutated = copy.deepcopy(body)
    drafts = [e["resource"] for e in mutated["context"]["draftOrders"]["entry"]]
    for draft in drafts:
        draft.pop("medicationCodeableConcept", None)
        draft.pop("medicationReference", None)
        draft.pop("contained", None)
        if shape == "medicationCodeableConcept":
            draft[shape] = concept
        elif shape == "medicationReference":
            draft[shape] = reference
    issued = cards(name, mutated)
    assert ("unidentified-draft-order", "info") in issued
