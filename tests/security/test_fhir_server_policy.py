"""fhirServer policy (server-side request forgery): which URLs and addresses may be contacted."""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask

from cds_service.common.settings import SettingsError
from cds_service.fhir.client import FetchError, FetchLimits, FhirFetcher, hook_call
from cds_service.fhir.server_policy import (
    LOOPBACK_SERVERS,
    FhirServerPolicy,
    PolicyRefused,
    parse_entries,
    parse_networks,
)
from tests import factories as f
from tests.security.support import SANDBOX_PRIVATE, SANDBOX_PUBLIC_JWKS, mint
from tests.security.upstreams import healthy_server

ISS = "https://sandbox.cds-hooks.org"
PATH = "/cds-services/aih-order-sign"
BASE = "https://cds.example.org"


def dev_policy(*servers: str, networks: tuple[str, ...] = ()) -> FhirServerPolicy:
    return FhirServerPolicy(
        parse_entries(servers or LOOPBACK_SERVERS), parse_networks(networks), development=True
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",  # metadata, not listed
        "http://10.0.0.5/fhir",  # private, not listed
        "https://ehr.example.org/fhir",  # not listed in development mode
        "http://2130706433/fhir",  # 127.0.0.1 in decimal
        "http://0x7f.1/fhir",  # 127.0.0.1 in hex, short form
        "http://0177.0.0.1/fhir",  # octal
        "http://user@127.0.0.1:8080/fhir",  # user info
        "ftp://127.0.0.1/fhir",
        "http://127.0.0.1:8080/fhir#x",
    ],
)
def test_urls_outside_the_development_allowlist_are_refused(url: str) -> None:
    with pytest.raises(PolicyRefused):
        dev_policy().allowed_entry(url, None)


def test_loopback_is_the_development_default_on_any_port() -> None:
    assert dev_policy().allowed_entry("http://127.0.0.1:5555/fhir", None).host == "127.0.0.1"
    assert dev_policy().allowed_entry("http://localhost:80/r4", None).host == "localhost"


def test_production_uses_the_clients_list_and_https_unless_http_is_named() -> None:
    policy = FhirServerPolicy(parse_entries(LOOPBACK_SERVERS), ())
    mine = parse_entries(["https://ehr.example.org/fhir", "http://legacy.example.org/r4"])
    assert policy.allowed_entry("https://ehr.example.org/fhir/", mine)
    assert policy.allowed_entry("http://legacy.example.org/r4", mine)
    for url in (
        "http://ehr.example.org/fhir",  # the same server in clear: not listed
        "https://ehr.example.org/fhirx",  # not under the listed path
        "https://ehr.example.org/other",
        "https://ehr.example.org/fhir/../admin",
        "http://127.0.0.1:8080/fhir",  # the development list does not apply
    ):
        with pytest.raises(PolicyRefused):
            policy.allowed_entry(url, mine)
    with pytest.raises(PolicyRefused):
        policy.allowed_entry("https://ehr.example.org/fhir", None)  # caller lists nothing


@pytest.mark.parametrize(
    ("entry", "host", "allowed"),
    [
        ("http://localhost:*", "127.0.0.1", True),
        ("http://10.1.2.3:*", "10.1.2.3", True),  # the private address is listed literally
        ("http://10.1.2.3:*", "10.1.2.4", False),
        ("http://169.254.169.254:*", "169.254.169.254", False),  # never, even when listed
        ("http://[fe80::1]:*", "fe80::1", False),
        ("http://0.0.0.0:*", "0.0.0.0", False),  # noqa: S104 - the address refused
        ("https://ehr.example.org", "192.168.1.9", False),  # a name resolving to private
        ("https://ehr.example.org", "::ffff:169.254.169.254", False),
    ],
)
def test_addresses_are_checked_after_resolution(
    entry: str, host: str, allowed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    def resolve(name: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (host, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    check = dev_policy(entry).address_check(parse_entries([entry])[0])
    if allowed:
        assert check("whatever", 80)
    else:
        with pytest.raises(PolicyRefused):
            check("whatever", 80)


def test_private_networks_setting_admits_a_name_that_resolves_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *_a, **_k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.20.0.7", 443))],
    )
    entry = "https://fhir.hospital.internal"
    policy = dev_policy(entry, networks=("10.20.0.0/16",))
    assert policy.address_check(parse_entries([entry])[0])("fhir.hospital.internal", 443)


def test_refused_server_is_never_contacted_and_nothing_it_says_is_quoted() -> None:
    """The fetcher refuses before any connection; a redirect is not followed."""
    contacted: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            contacted.append(self.path)
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/secret")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    import threading

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    try:
        strict = FhirFetcher(FetchLimits(budget_s=2.0), policy=dev_policy("http://10.9.9.9:*"))
        refused = strict.fetch_many(url, "tok", {"p": "Patient/1"})["p"]
        assert isinstance(refused, FetchError)
        assert refused.reason == "policy"
        assert contacted == []
        open_policy = FhirFetcher(FetchLimits(budget_s=2.0), policy=dev_policy())
        redirected = open_policy.fetch_many(url, "tok", {"p": "Patient/1"})["p"]
        assert isinstance(redirected, FetchError)
        assert redirected.reason == "redirect"
        assert contacted == ["/fhir/Patient/1"]  # the Location was not followed
    finally:
        server.shutdown()
        server.server_close()


def test_upstream_operation_outcome_text_is_not_quoted_to_the_client(
    app_factory: Callable[..., Flask],
) -> None:
    class Chatty(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(
                {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "processing", "diagnostics": "SECRET"}],
                }
            ).encode()
            self.send_response(400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    import threading

    server = ThreadingHTTPServer(("127.0.0.1", 0), Chatty)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        app = app_factory()
        body = f.hook_request(
            drafts=(f.mmf_draft(),), fhirServer=f"http://127.0.0.1:{server.server_address[1]}"
        )
        answer = app.test_client().post(PATH, json=body)
        assert answer.status_code == 412
        assert "SECRET" not in answer.get_data(as_text=True)
    finally:
        server.shutdown()
        server.server_close()


def test_a_client_may_send_only_its_own_fhir_servers_per_tenant(
    app_factory: Callable[..., Flask],
) -> None:
    with healthy_server() as healthy:
        trusted = [
            {
                "iss": ISS,
                "jwks": SANDBOX_PUBLIC_JWKS,
                "tenants": ["a", "b"],
                "fhirServers": {"a": [healthy]},
            }
        ]
        app = app_factory(auth=True, trusted_issuers=json.dumps(trusted), public_base_url=BASE)
        client = app.test_client()

        def call(tenant: str) -> int:
            token = mint(SANDBOX_PRIVATE, iss=ISS, aud=BASE + PATH, tenant=tenant)
            body = f.hook_request(drafts=(f.mmf_draft(),), fhirServer=healthy)
            return client.post(
                PATH, json=body, headers={"Authorization": f"Bearer {token}"}
            ).status_code

        assert call("a") == 200
        assert call("b") == 412  # tenant b lists no FHIR server


def test_development_list_comes_from_the_setting(app_factory: Callable[..., Flask]) -> None:
    with pytest.raises(SettingsError):
        app_factory(fhir_servers=("http://2130706433:*",))
    with healthy_server() as healthy:
        listed = app_factory(fhir_servers=(healthy,)).test_client()
        other = app_factory(fhir_servers=("https://ehr.example.org",)).test_client()
        body = f.hook_request(drafts=(f.mmf_draft(),), fhirServer=healthy)
        assert listed.post(PATH, json=body).status_code == 200
        answer = other.post(PATH, json=body)
        assert answer.status_code == 412
        assert "fhirServer policy" in answer.get_data(as_text=True)


def test_fetches_share_the_callers_list_only_inside_its_hook_call() -> None:
    fetcher = FhirFetcher(FetchLimits(), policy=FhirServerPolicy(parse_entries(LOOPBACK_SERVERS)))
    with healthy_server() as healthy, hook_call():
        refused = fetcher.fetch_many(healthy, None, {"p": "Patient/1"})["p"]
    assert isinstance(refused, FetchError)
    assert refused.reason == "policy"
