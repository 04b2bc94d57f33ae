"""Hypothesis fuzzing of hook requests and of the FHIR resources that become the PatientRecord.

Starting from realistic resources (the ones the mycophenolate rule reads: Patient, hCG and
pregnancy Observations, MedicationRequests, Conditions), one to three members anywhere in the
tree are replaced by hostile values (wrong JSON types, impossible dates, huge or negative
numbers, odd units, strings with control characters) or removed. Whatever arrives, the answer
is a 200 with well-formed cards, or a 4xx OperationOutcome: never a 500, never a crash.
Bounded: a fixed number of examples, derandomised so CI runs are reproducible.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import factories as f
from tests.conformance.support import card_violations

SERVICE = "/cds-services/aih-order-sign"
EXAMPLES = 60

HOSTILE_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "2026-02-30",
            "0000-01-01",
            "9999-12-31T23:59:59Z",
            "2026-05-31T10:00:00+14:00",
            "2026",
            "2026-05",
            "not a date",
            "Patient/someone-else",
            "Patient/pt-1",
            "m[IU]/mL",
            "IU/L",
            "%",
            "1e309",
            "-0",
            "\u0000\n\r\t",
            "http://loinc.org",
            "19080-1",
            "82810-3",
            "LA15173-0",
            "68149",
        ]
    ),
)
HOSTILE_VALUES = st.recursive(
    HOSTILE_SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
DELETE = object()


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every member and list item of a JSON tree, as key paths."""
    found: list[tuple[Any, ...]] = []
    children: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    for key, child in children:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


def mutate(document: Any, path: tuple[Any, ...], replacement: Any) -> None:
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if replacement is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement


@st.composite
def mutated(
    draw: st.DrawFn, document: Any, count: int = 3, values: st.SearchStrategy[Any] | None = None
) -> Any:
    result = copy.deepcopy(document)
    for _ in range(draw(st.integers(min_value=1, max_value=count))):
        candidates = paths(result)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        mutate(
            result,
            path,
            draw(st.one_of(st.just(DELETE), HOSTILE_VALUES if values is None else values)),
        )
    return result


def realistic_prefetch() -> dict[str, Any]:
    return f.full_prefetch(
        observations=(
            f.hcg_quantitative(3.0, days_ago=2),
            f.hcg_qualitative(positive=False, days_ago=5),
            f.pregnancy_status(pregnant=False, days_ago=3),
            f.alt(80, uln=40),
        ),
        medication_requests=(f.medication_request(),),
        conditions=(f.condition("77386006"),),
    )


def realistic_request() -> dict[str, Any]:
    return f.hook_request(drafts=(f.mmf_draft(),), prefetch=realistic_prefetch())


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    from cds_service import create_app
    from tests.conftest import deterministic_uuids

    database = tmp_path_factory.mktemp("fuzz") / "cards.sqlite"
    app: Flask = create_app(
        {
            "auth": False,
            "database_url": f"sqlite:///{database}",
            "patient_hash_key": "fuzz",
            "clock": lambda: f.NOW,
            "uuid_factory": deterministic_uuids(),
        }
    )
    return app.test_client()


def assert_handled(client: FlaskClient, body: Any) -> None:
    response = client.post(SERVICE, json=body)
    assert response.status_code in {200, 400, 412, 413}, response.get_data(as_text=True)[:500]
    answer = response.get_json()
    if response.status_code == 200:
        for card in answer["cards"]:
            assert card_violations(card) == []
    else:
        assert answer["resourceType"] == "OperationOutcome"
        assert answer["issue"][0]["diagnostics"]


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ_SETTINGS
@given(prefetch=mutated(realistic_prefetch()))
def test_hostile_fhir_resources_in_prefetch(fuzz_client: FlaskClient, prefetch: Any) -> None:
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=prefetch)
    assert_handled(fuzz_client, body)


@FUZZ_SETTINGS
@given(draft=mutated(f.mmf_draft()))
def test_hostile_draft_orders(fuzz_client: FlaskClient, draft: Any) -> None:
    body = f.hook_request(drafts=(draft,), prefetch=realistic_prefetch())
    assert_handled(fuzz_client, body)


@FUZZ_SETTINGS
@given(body=mutated(realistic_request(), count=2))
def test_hostile_hook_requests(fuzz_client: FlaskClient, body: Any) -> None:
    assert_handled(fuzz_client, body)


def test_unmutated_request_gets_cards(fuzz_client: FlaskClient) -> None:
    """The starting point reaches the rule: mutations explore around a card, not a 400."""
    response = fuzz_client.post(SERVICE, json=realistic_request())
    assert response.status_code == 200
    assert [essentials(card) for card in response.get_json()["cards"]] == [BASELINE_CARD]


#: The one card of the unmutated request: the pregnancy Condition makes it critical.
BASELINE_CARD = (
    "mmf-teratogenicity",
    "critical",
    "Evidence of pregnancy: mycophenolate is contraindicated in pregnancy "
    "(mycophenolate mofetil ordered)",
)


def essentials(card: dict[str, Any]) -> tuple[str, str, str]:
    return card["source"]["topic"]["code"], card["indicator"], card["summary"]


# Regressions found by the fuzzing above (each was a 500 before its fix).


def test_condition_with_a_list_as_subject_is_skipped(fuzz_client: FlaskClient) -> None:
    broken = dict(f.condition("77386006"), subject=[{"reference": "Patient/pt-1"}])
    prefetch = f.full_prefetch(conditions=(broken,))
    response = fuzz_client.post(
        SERVICE, json=f.hook_request(drafts=(f.mmf_draft(),), prefetch=prefetch)
    )
    assert response.status_code == 200
    assert "Condition" in response.get_json()["cards"][0]["detail"]


@pytest.mark.parametrize("entry", [True, 1.5, {"resource": {}}])
def test_bundle_entry_that_is_not_an_array_is_a_400(fuzz_client: FlaskClient, entry: Any) -> None:
    prefetch = realistic_prefetch()
    prefetch["observations"]["entry"] = entry
    response = fuzz_client.post(
        SERVICE, json=f.hook_request(drafts=(f.mmf_draft(),), prefetch=prefetch)
    )
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["prefetch.observations.entry"]


@pytest.mark.parametrize("entry", ["x", None, {"resource": "Observation/1"}])
def test_bundle_entry_that_is_not_an_object_is_a_400(fuzz_client: FlaskClient, entry: Any) -> None:
    prefetch = realistic_prefetch()
    prefetch["observations"]["entry"].append(entry)
    response = fuzz_client.post(
        SERVICE, json=f.hook_request(drafts=(f.mmf_draft(),), prefetch=prefetch)
    )
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["prefetch.observations.entry[4]"]


def test_outcome_with_malformed_issues_in_a_bundle_is_not_an_error(
    fuzz_client: FlaskClient,
) -> None:
    prefetch = realistic_prefetch()
    outcome = {"resourceType": "OperationOutcome", "issue": True}
    prefetch["observations"]["entry"].append({"resource": outcome})
    response = fuzz_client.post(
        SERVICE, json=f.hook_request(drafts=(f.mmf_draft(),), prefetch=prefetch)
    )
    assert response.status_code == 200
    # the resources around it are read as without it: the same card, word for word
    baseline = fuzz_client.post(SERVICE, json=realistic_request()).get_json()["cards"]
    [card] = response.get_json()["cards"]
    assert essentials(card) == BASELINE_CARD
    assert card["detail"] == baseline[0]["detail"]
    assert "none: all data the rule reads was available" in card["detail"]
