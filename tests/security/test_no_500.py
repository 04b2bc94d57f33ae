"""Every input that used to answer 500 now answers 4xx (or is skipped with a note), and the
extreme value classes are fuzzed on every POST endpoint."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings

from tests import factories as f
from tests.security.extreme_values import EXTREME_VALUES
from tests.security.support import SANDBOX_PRIVATE, SANDBOX_PUBLIC_JWKS, mint
from tests.security.test_fuzz_record import mutated, paths, realistic_request

SERVICE = "/cds-services/aih-order-sign"
ISS = "https://sandbox.cds-hooks.org"


def with_date(resource: dict[str, Any], field: str, value: str) -> dict[str, Any]:
    return {**resource, field: value}


def aza_with_period(period: float) -> dict[str, Any]:
    return f.azathioprine(dosages=[f.dosage(50, period=period)])


CASES: list[tuple[str, dict[str, Any]]] = [
    (
        "draft authoredOn before year 1 in UTC",
        f.hook_request(
            drafts=(with_date(f.mmf_draft(), "authoredOn", "0001-01-01T00:00:00+01:00"),),
            prefetch=f.full_prefetch(),
        ),
    ),
    (
        "Observation effective before year 1 in UTC",
        f.hook_request(
            drafts=(f.mmf_draft(),),
            prefetch=f.full_prefetch(
                observations=(f.effective(f.alt(50), "0001-01-01T00:00:00+01:00"),)
            ),
        ),
    ),
    (
        "dose 1e30",
        f.hook_request(drafts=(f.azathioprine(mg=1e30),), prefetch=f.full_prefetch()),
    ),
    ("period 1e-30", f.hook_request(drafts=(aza_with_period(1e-30),), prefetch=f.full_prefetch())),
]


@pytest.mark.parametrize(("name", "body"), CASES, ids=[name for name, _ in CASES])
def test_extreme_dates_and_numbers_are_answered(client: FlaskClient, name: str, body: Any) -> None:
    assert client.post(SERVICE, json=body).status_code == 200, name


@pytest.mark.parametrize(
    "where", [("context", "patientId"), ("hookInstance",), ("context", "userId")]
)
@pytest.mark.parametrize("text", ["\ud800", "a\x00b"])
def test_lone_surrogates_and_nul_are_a_400(
    client: FlaskClient, where: tuple[str, ...], text: str
) -> None:
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    target = body
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = text
    assert client.post(SERVICE, json=body).status_code == 400


@pytest.mark.parametrize(
    "item",
    [
        {"outcomeTimestamp": "0001-01-01T00:00:00+01:00"},
        {"overrideReason": {"userComment": "\ud800"}},
        {"overrideReason": {"reason": {"code": "a\x00b"}}},
    ],
)
def test_feedback_with_extreme_values_is_a_400(client: FlaskClient, item: dict[str, Any]) -> None:
    base = {"card": "c-1", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z"}
    answer = client.post(SERVICE + "/feedback", json={"feedback": [{**base, **item}]})
    assert answer.status_code == 400


def test_demo_api_with_a_list_as_an_order_is_a_400(app_factory: Callable[..., Flask]) -> None:
    demo = app_factory(demo="on").test_client()
    answer = demo.post(
        "/demo/api/patients/mmf-male/hook-requests", json={"hook": "order-sign", "orders": [[1]]}
    )
    assert answer.status_code == 400


@pytest.mark.parametrize(
    "claims",
    [{"exp": 10**400}, {"iat": -(10**400)}, {"nbf": 10**400}, {"jti": "\ud800"}, {"jti": "a\x00"}],
)
def test_tokens_with_extreme_claims_get_a_bare_401(
    app_factory: Callable[..., Flask], claims: dict[str, Any]
) -> None:
    trusted = json.dumps([{"iss": ISS, "jwks": SANDBOX_PUBLIC_JWKS}])
    app = app_factory(auth=True, trusted_issuers=trusted)
    token = mint(SANDBOX_PRIVATE, iss=ISS, aud="http://localhost" + SERVICE, **claims)
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    answer = app.test_client().post(
        SERVICE, json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 401


# ---------------------------------------------------------------- fuzzing, every POST endpoint

EXTREME_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FEEDBACK = {
    "feedback": [
        {
            "card": "c-1",
            "outcome": "overridden",
            "outcomeTimestamp": "2026-01-01T00:00:00Z",
            "overrideReason": {
                "reason": {"system": "http://example.org", "code": "x", "display": "X"},
                "userComment": "a comment",
            },
        },
        {
            "card": "c-2",
            "outcome": "accepted",
            "outcomeTimestamp": "2026-01-01T00:00:00Z",
            "acceptedSuggestions": [{"id": "s-1"}],
        },
    ]
}
DEMO_BODY = {"hook": "order-sign", "orders": ["mmf"]}


def extreme_mutation(document: Any) -> Any:
    return mutated(document, count=2, values=EXTREME_VALUES)


def assert_no_server_error(client: FlaskClient, path: str, body: Any) -> None:
    answer = client.post(path, json=body)
    assert answer.status_code < 500, answer.get_data(as_text=True)[:300]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    from cds_service import create_app

    database = tmp_path_factory.mktemp("extremes") / "cards.sqlite"
    app = create_app(
        {
            "auth": False,
            "demo": "on",
            "database_url": f"sqlite:///{database}",
            "patient_hash_key": "fuzz",
            "clock": lambda: f.NOW,
        }
    )
    return app.test_client()


@EXTREME_SETTINGS
@given(body=extreme_mutation(realistic_request()))
def test_extreme_values_in_hook_requests(fuzzed: FlaskClient, body: Any) -> None:
    for service in ("aih-order-sign", "aih-order-select", "aih-patient-view"):
        copy_ = copy.deepcopy(body)
        copy_["hook"] = service.removeprefix("aih-")
        assert_no_server_error(fuzzed, f"/cds-services/{service}", copy_)


@EXTREME_SETTINGS
@given(body=extreme_mutation(FEEDBACK))
def test_extreme_values_in_feedback(fuzzed: FlaskClient, body: Any) -> None:
    for service in ("aih-order-sign", "aih-order-select", "aih-patient-view"):
        assert_no_server_error(fuzzed, f"/cds-services/{service}/feedback", body)


@EXTREME_SETTINGS
@given(body=extreme_mutation(DEMO_BODY))
def test_extreme_values_in_the_demo_api(fuzzed: FlaskClient, body: Any) -> None:
    assert_no_server_error(fuzzed, "/demo/api/patients/mmf-male/hook-requests", body)


def test_mutations_reach_every_member() -> None:
    assert len(paths(FEEDBACK)) > 10
