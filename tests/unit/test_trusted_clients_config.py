"""Loading the trusted-client allowlist: the shapes it accepts and the exact errors it names.

Written for the survivors of a mutation run over cds_service.security.client_auth
(docs/testing.md): each test fails on a changed field name, a dropped message, or a form of
the configuration that was accepted by the code but loaded by no test.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from cds_service.security.client_auth import (
    ClientAuthenticator,
    TrustedClient,
    load_trusted_clients,
)
from tests.unit.test_security import (
    CRD_ISS,
    CRD_JWKS_ALL,
    CRD_PUBLIC_JWKS,
    SANDBOX_ISS,
    SANDBOX_JKU,
    SANDBOX_JWKS,
)

EHR = "https://ehr.example.org/fhir"
EHR_2 = "https://ehr-2.example.org/fhir"


def load_one(**entry: Any) -> TrustedClient:
    """The single client of a configuration holding only ``{iss, jku, **entry}``."""
    (client,) = load_trusted_clients(
        json.dumps([{"iss": SANDBOX_ISS, "jku": [SANDBOX_JKU], **entry}])
    )
    return client


def refused(match: str, **entry: Any) -> None:
    with pytest.raises(ValueError, match=match):
        load_one(**entry)


# ------------------------------------------------------------------------------------------
# fhirServers
# ------------------------------------------------------------------------------------------


def test_fhir_servers_as_a_list_apply_to_every_tenant() -> None:
    client = load_one(fhirServers=[EHR])
    assert client.fhir_servers == {"": (EHR,)}
    assert client.fhir_servers_for("any-tenant") == (EHR,)
    assert client.fhir_servers_for(None) == (EHR,)


def test_fhir_servers_by_tenant_with_a_star_for_every_tenant() -> None:
    client = load_one(tenants=["a", "b"], fhirServers={"*": [EHR], "a": [EHR_2]})
    assert client.fhir_servers == {"": (EHR,), "a": (EHR_2,)}
    assert client.fhir_servers_for("a") == (EHR, EHR_2)
    assert client.fhir_servers_for("b") == (EHR,)


def test_fhir_servers_of_one_tenant_only() -> None:
    client = load_one(tenants=["a"], fhirServers={"a": [EHR_2]})
    assert client.fhir_servers_for("a") == (EHR_2,)
    assert client.fhir_servers_for("b") == ()
    assert client.fhir_servers_for(None) == ()


def test_an_empty_or_non_string_tenant_gets_the_client_wide_list_once() -> None:
    client = load_one(fhirServers={"*": [EHR], "a": [EHR_2]})
    assert client.fhir_servers_for("") == (EHR,)
    assert client.fhir_servers_for(7) == (EHR,)


def test_the_authenticator_answers_with_the_servers_of_the_verified_issuer_and_tenant() -> None:
    servers = {"": (EHR,), "a": (EHR_2,)}
    auth = ClientAuthenticator(
        [
            TrustedClient(iss=SANDBOX_ISS, jwks=SANDBOX_JWKS, fhir_servers=servers),
            TrustedClient(iss=CRD_ISS, jwks=CRD_PUBLIC_JWKS),
        ]
    )
    assert auth.fhir_servers({"iss": SANDBOX_ISS, "tenant": "a"}) == (EHR, EHR_2)
    assert auth.fhir_servers({"iss": SANDBOX_ISS}) == (EHR,)
    assert auth.fhir_servers({"iss": CRD_ISS, "tenant": "a"}) == ()
    assert auth.fhir_servers({"iss": "https://unknown.example.org", "tenant": "a"}) == ()


@pytest.mark.parametrize(
    ("fhir_servers", "field"),
    [
        (["ftp://ehr.example.org"], "fhirServers"),
        ({"*": ["ftp://ehr.example.org"]}, "fhirServers"),
        ({"a": ["ftp://ehr.example.org"]}, "fhirServers.a"),
    ],
)
def test_a_refused_fhir_server_names_its_field_and_the_reason(
    fhir_servers: object, field: str
) -> None:
    refused(
        rf"entry 0: field '{field}': only http and https URLs are allowed$",
        fhirServers=fhir_servers,
    )


@pytest.mark.parametrize(
    ("fhir_servers", "field"),
    [("not-a-list", "fhirServers"), ({"a": [""]}, "fhirServers.a"), ([7], "fhirServers")],
)
def test_fhir_servers_must_be_lists_of_non_empty_strings(fhir_servers: object, field: str) -> None:
    refused(
        rf"entry 0: field '{field}': must be a list of non-empty strings$", fhirServers=fhir_servers
    )


# ------------------------------------------------------------------------------------------
# lists and field errors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tenants", [["a", ""], ["a", 3]])
def test_every_tenant_must_be_a_non_empty_string(tenants: list[object]) -> None:
    refused(r"entry 0: field 'tenants': must be a list of non-empty strings$", tenants=tenants)


# ------------------------------------------------------------------------------------------
# jwks_file
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", 5])
def test_jwks_file_must_be_a_non_empty_path(name: object) -> None:
    refused(r"entry 0: field 'jwks_file': must be a non-empty path string$", jwks_file=name)


def write_jwks_file(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", " is not valid JSON: "),
        (json.dumps([SANDBOX_JWKS]), " must contain a JSON object$"),
        (json.dumps(CRD_JWKS_ALL), r": keys\[1\] contains private key material$"),
        (json.dumps({"keys": []}), ": JWKS contains no keys$"),
    ],
)
def test_an_unusable_jwks_file_is_named_with_its_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = write_jwks_file(tmp_path, content)
    field = r"^trusted clients \(inline JSON\): entry 0: field 'jwks_file': "
    refused(field + re.escape(str(path)) + problem, jwks_file=str(path))


# ------------------------------------------------------------------------------------------
# the document
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("  ", "trusted clients: empty source"),
        ('{"iss": "x"}', "trusted clients (inline JSON): must be a list of client entries"),
    ],
)
def test_document_errors_are_named_whole(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        load_trusted_clients(source)


def test_a_file_that_cannot_be_read_or_parsed_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(
        ValueError, match=rf"^trusted clients \({re.escape(str(missing))}\): cannot read file: "
    ):
        load_trusted_clients(str(missing))
    broken = tmp_path / "clients.yaml"
    broken.write_text("- iss: [unclosed", encoding="utf-8")
    with pytest.raises(
        ValueError, match=rf"^trusted clients \({re.escape(str(broken))}\): cannot parse file: "
    ):
        load_trusted_clients(str(broken))


def test_a_json_file_is_parsed_as_json_not_yaml(tmp_path: Path) -> None:
    """YAML reads this document; a ``.json`` file must be JSON (any case of the suffix)."""
    yaml_document = f"- iss: {SANDBOX_ISS}\n  jku: [{SANDBOX_JKU}]\n"
    for name in ("clients.json", "clients.JSON"):
        path = tmp_path / name
        path.write_text(yaml_document, encoding="utf-8")
        with pytest.raises(ValueError, match=r"cannot parse file: Expecting value"):
            load_trusted_clients(str(path))
    as_yaml = tmp_path / "clients.yml"
    as_yaml.write_text(yaml_document, encoding="utf-8")
    assert load_trusted_clients(str(as_yaml))[0].jku == (SANDBOX_JKU,)


def test_a_relative_path_is_a_file_whatever_its_first_letter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("X-clients.yaml", "clients.yaml"):
        (tmp_path / name).write_text(
            f"- iss: {SANDBOX_ISS}\n  jku: [{SANDBOX_JKU}]\n", encoding="utf-8"
        )
        assert load_trusted_clients(name)[0].iss == SANDBOX_ISS


def test_only_an_empty_list_warns_that_every_token_will_be_rejected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="cds_service.security.client_auth")
    assert load_trusted_clients(json.dumps([{"iss": SANDBOX_ISS, "jku": [SANDBOX_JKU]}]))
    assert caplog.messages == []
    assert load_trusted_clients("[]") == ()
    assert caplog.messages == [
        "trusted clients (inline JSON): no trusted clients configured; every token will be rejected"
    ]


# ------------------------------------------------------------------------------------------
# inline JWKS
# ------------------------------------------------------------------------------------------


def test_a_jwks_without_a_keys_array_is_named() -> None:
    refused(
        r"entry 0: field 'jwks': JWKS must be a JSON object with a 'keys' array$",
        jwks={"keys": SANDBOX_JWKS["keys"][0]},
    )


def test_a_duplicate_kid_is_named() -> None:
    key = SANDBOX_JWKS["keys"][0]
    refused(
        rf"entry 0: field 'jwks': keys\[1\] duplicates kid {re.escape(repr(key['kid']))}$",
        jwks={"keys": [key, key]},
    )


def test_an_rsa_key_with_a_stray_crv_member_is_usable() -> None:
    rsa_key = next(k for k in CRD_PUBLIC_JWKS["keys"] if k["kty"] == "RSA")
    client = load_one(jwks={"keys": [{**rsa_key, "crv": "P-256"}]})
    assert client.jwks is not None


# ------------------------------------------------------------------------------------------
# jku URLs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["", " https://ehr.example.org/jwks.json", 5])
def test_a_jku_must_be_a_url_string_without_surrounding_spaces(url: object) -> None:
    client = TrustedClient(iss=SANDBOX_ISS, jku=(url,))  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"^trusted client 0: field 'jku': \[0\] must be a non-empty URL string$"
    ):
        ClientAuthenticator([client])


@pytest.mark.parametrize(
    "url",
    [
        "ftp://ehr.example.org/jwks.json",
        "https://ehr.example.org/jwks.json#keys",
        "https:///jwks.json",
    ],
)
def test_a_jku_must_be_an_absolute_http_url_without_fragment(url: str) -> None:
    refused(
        rf"^trusted clients \(inline JSON\): entry 0: field 'jku': \[1\] {re.escape(repr(url))} "
        r"is not an absolute http\(s\) URL without fragment$",
        jku=[SANDBOX_JKU, url],
    )


# ------------------------------------------------------------------------------------------
# a TrustedClient built in code is checked like a loaded one
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "message"),
    [
        (
            TrustedClient(iss=SANDBOX_ISS, jku=[SANDBOX_JKU]),  # type: ignore[arg-type]
            "field 'jku': must be a tuple of URLs",
        ),
        (
            TrustedClient(iss=SANDBOX_ISS, jku=(SANDBOX_JKU, SANDBOX_JKU)),
            "field 'jku': contains duplicates",
        ),
        (
            TrustedClient(iss=SANDBOX_ISS, jku=(SANDBOX_JKU,), tenants=["a"]),  # type: ignore[arg-type]
            "field 'tenants': must be a list of non-empty strings",
        ),
        (
            TrustedClient(iss=SANDBOX_ISS, jku=(SANDBOX_JKU,), tenants=("a", "")),
            "field 'tenants': must be a list of non-empty strings",
        ),
    ],
)
def test_a_client_built_in_code_is_checked(client: TrustedClient, message: str) -> None:
    with pytest.raises(ValueError, match=rf"^trusted client 0: {re.escape(message)}$"):
        ClientAuthenticator([client])
