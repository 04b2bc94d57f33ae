"""Low-severity findings: patientId syntax, service enumeration, echoed value lengths."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests import factories as f
from tests.security.support import SANDBOX_PUBLIC_JWKS

SERVICE = "/cds-services/aih-order-sign"


@pytest.mark.parametrize("patient_id", [".", "..", "Patient/..", "a/b", "x?y=1", "a" * 65, "é"])
def test_patient_id_must_be_a_fhir_id(client: FlaskClient, patient_id: str) -> None:
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    body["context"]["patientId"] = patient_id
    answer = client.post(SERVICE, json=body)
    assert answer.status_code == 400
    assert answer.get_json()["issue"][0]["expression"] == ["context.patientId"]


def test_unknown_and_known_services_answer_alike_without_a_token(
    app_factory: Callable[..., Flask],
) -> None:
    trusted = json.dumps([{"iss": "https://sandbox.cds-hooks.org", "jwks": SANDBOX_PUBLIC_JWKS}])
    client = app_factory(auth=True, trusted_issuers=trusted).test_client()
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    for path in (SERVICE, "/cds-services/no-such-service"):
        assert client.post(path, json=body).status_code == 401
        assert client.post(path + "/feedback", json={"feedback": []}).status_code == 401


def test_an_over_long_unit_is_not_echoed_whole(client: FlaskClient) -> None:
    unit = "u" * 10_000
    observation = f.alt(80, uln=40)
    observation["valueQuantity"]["unit"] = unit
    observation["valueQuantity"].pop("code", None)
    body = f.hook_request(
        drafts=(f.mmf_draft(),), prefetch=f.full_prefetch(observations=(observation,))
    )
    answer = client.post(SERVICE, json=body)
    assert answer.status_code == 200
    assert "u" * 41 not in answer.get_data(as_text=True)
