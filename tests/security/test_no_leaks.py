"""A realistic run leaves no token and no patient identifier in the logs or the database.

The application runs as a real HTTP server (werkzeug, 127.0.0.1, free port) with client JWTs
required, beside a FHIR server stub on 127.0.0.1 that records the bearer token it receives.
Everything is logged at DEBUG, third-party loggers included. The run covers discovery, the
API description, all three services with prefetch, the FHIR fallback with an access token, a
failing FHIR server (412), feedback, bad bodies, rejected and replayed JWTs, a malformed
Patient resource, another patient's data, and an internal error whose message quotes the
patient id and the access token. Then the captured log text and the database file are
scanned for every secret that went in.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from cds_service.storage.store import Store
from tests import factories as f
from tests.security.served import free_port
from tests.security.support import (
    SANDBOX_PRIVATE,
    SANDBOX_PUBLIC_JWKS,
    LocalServer,
    local_server,
    mint,
)

PATIENT_ID = "aih-7c1e9f04-zq"
FAMILY = "Quaglietti"
MRN = "MRN-99117733"
ACCESS_TOKEN = "fhir-at-" + secrets.token_urlsafe(24)
SANDBOX_ISS = "https://sandbox.cds-hooks.org"


def patient_resource(pid: str = PATIENT_ID) -> dict[str, Any]:
    resource = f.patient(pid=pid)
    resource["name"] = [{"family": FAMILY, "given": ["Ada"]}]
    resource["identifier"] = [{"system": "urn:oid:1.2.3.4", "value": MRN}]
    return resource


@dataclass
class Run:
    base: str
    fhir: LocalServer
    tokens: list[str] = field(default_factory=list)

    def jwt(self, path: str, iss: str = SANDBOX_ISS, **claims: Any) -> str:
        token = mint(SANDBOX_PRIVATE, iss=iss, aud=self.base + path, **claims)
        self.tokens.append(token)
        return token

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, self.base + path, headers=headers, timeout=10, **kwargs)

    def service(self, sid: str, body: Any, **kwargs: Any) -> Any:
        path = f"/cds-services/{sid}"
        return self.call("POST", path, self.jwt(path), json=body, **kwargs)


@pytest.fixture
def live(
    app_factory: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> Iterator[tuple[Run, Flask]]:
    caplog.set_level(logging.DEBUG)  # before the app exists: its own logging setup must hold
    trusted = json.dumps(
        [{"iss": SANDBOX_ISS, "jwks": SANDBOX_PUBLIC_JWKS, "fhirServers": ["http://127.0.0.1:*"]}]
    )
    port = free_port()
    app = app_factory(
        auth=True,
        trusted_issuers=trusted,
        log_level="DEBUG",
        public_base_url=f"http://127.0.0.1:{port}",
    )
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        with local_server() as fhir:
            fhir.serve_json(f"/fhir/Patient/{PATIENT_ID}", patient_resource())
            for resource_type in ("Observation", "MedicationRequest", "Condition"):
                fhir.serve_json(f"/fhir/{resource_type}", f.bundle())
            fhir.serve_json(f"/broken/Patient/{PATIENT_ID}", {"resourceType": "x"}, 500)
            yield Run(f"http://127.0.0.1:{server.server_port}", fhir), app
    finally:
        server.shutdown()
        thread.join(timeout=5)


def hook_body(hook: str, **kwargs: Any) -> dict[str, Any]:
    drafts = () if hook == "patient-view" else (f.mmf_draft(),)
    return f.hook_request(hook, drafts=drafts, pid=PATIENT_ID, **kwargs)


def prefetch(**kwargs: Any) -> dict[str, Any]:
    return f.full_prefetch(patient_resource=patient_resource(), **kwargs)


def fhir_context(server: str) -> dict[str, Any]:
    return {
        "fhirServer": server,
        "fhirAuthorization": {
            "access_token": ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "aih-cds",
        },
    }


def realistic_run(run: Run, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run.call("GET", "/cds-services", run.jwt("/cds-services")).status_code == 200
    assert run.call("GET", "/openapi.json", run.jwt("/openapi.json")).status_code == 200
    signed = run.service("aih-order-sign", hook_body("order-sign", prefetch=prefetch()))
    assert signed.status_code == 200
    card = signed.json()["cards"][0]
    for hook in ("order-select", "patient-view"):
        answer = run.service(f"aih-{hook}", hook_body(hook, prefetch=prefetch()))
        assert answer.status_code == 200

    fetched = run.service(
        "aih-order-sign", hook_body("order-sign", **fhir_context(run.fhir.base_url + "/fhir"))
    )
    assert fetched.status_code == 200
    sent = [h.get("Authorization") for _, p, h in run.fhir.requests if p.startswith("/fhir/")]
    assert sent
    assert set(sent) == {f"Bearer {ACCESS_TOKEN}"}
    broken = run.service(
        "aih-order-sign", hook_body("order-sign", **fhir_context(run.fhir.base_url + "/broken"))
    )
    assert broken.status_code == 412

    malformed = dict(patient_resource(), gender=["not", "a", "code"])
    other = f.condition("77386006")
    other["subject"] = {"reference": "Patient/someone-else"}
    odd = run.service(
        "aih-order-sign",
        hook_body("order-sign", prefetch=prefetch(conditions=(other,)) | {"patient": malformed}),
    )
    assert odd.status_code == 200

    feedback_path = "/cds-services/aih-order-sign/feedback"
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": f.when(0),
        "overrideReason": {"reason": {"code": "patient-declined"}, "userComment": "n/a"},
    }
    stored = run.call("POST", feedback_path, run.jwt(feedback_path), json={"feedback": [item]})
    assert stored.status_code == 200

    assert run.service("aih-order-sign", {"hook": "order-sign"}).status_code == 400
    bad_patient = hook_body("order-sign", prefetch=prefetch())
    bad_patient["context"]["patientId"] = ["not", PATIENT_ID]
    assert run.service("aih-order-sign", bad_patient).status_code == 400

    path = "/cds-services/aih-order-sign"
    replayed = run.jwt(path)
    body = hook_body("order-sign", prefetch=prefetch())
    assert run.call("POST", path, replayed, json=body).status_code == 200
    assert run.call("POST", path, replayed, json=body).status_code == 401
    for rejected in (
        run.jwt("/cds-services/aih-order-select"),
        run.jwt(path, exp=1),
        run.jwt(path, iss="https://evil.example"),
    ):
        assert run.call("POST", path, rejected, json=body).status_code == 401

    def failing(*args: Any, **kwargs: Any) -> None:
        raise KeyError(f"{PATIENT_ID} with {ACCESS_TOKEN}")

    monkeypatch.setattr(app.extensions["aih_cds"].engine, "call", failing)
    assert (
        run.service("aih-order-sign", hook_body("order-sign", prefetch=prefetch())).status_code
        == 500
    )


def secrets_of(run: Run) -> dict[str, str]:
    found = {
        "patient id": PATIENT_ID,
        "patient name": FAMILY,
        "MRN": MRN,
        "access token": ACCESS_TOKEN,
    }
    for index, token in enumerate(run.tokens):
        found[f"JWT {index}"] = token
        _, payload, signature = token.split(".")
        found[f"JWT {index} payload"] = payload[:40]
        found[f"JWT {index} signature"] = signature[:40]
    return found


def test_logs_and_database_hold_no_token_and_no_patient_identifier(
    live: tuple[Run, Flask],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    run, app = live
    realistic_run(run, app, monkeypatch)

    log_text = "\n".join([caplog.text, *(record.getMessage() for record in caplog.records)])
    # The run was real and was logged: successes, auth failures, fetches, and the Patient read
    # without its malformed gender.
    store: Store = app.extensions["aih_cds"].store
    patient_hash = store.patient_hash(PATIENT_ID)
    assert f"patient={patient_hash}" in log_text
    assert "client authentication failed: replayed jti" in log_text
    assert "Patient read without its unusable gender" in log_text
    assert "unexpected KeyError answering POST" in log_text
    assert '"POST /cds-services/aih-order-sign HTTP/1.1" 200' in log_text  # werkzeug access log

    leaks = {name for name, value in secrets_of(run).items() if value in log_text}
    assert leaks == set()

    # the database and its write-ahead log (WAL mode: recent rows live in cards.sqlite-wal)
    database = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("cards.sqlite*")))
    assert patient_hash.encode() in database
    stored = {name for name, value in secrets_of(run).items() if value.encode() in database}
    assert stored == set()
