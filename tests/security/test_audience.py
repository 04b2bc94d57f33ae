"""The aud a token must name is CDS_PUBLIC_BASE_URL + path, never what the Host header says."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable

import pytest
from flask import Flask

from cds_service.common.settings import SettingsError
from tests import factories as f
from tests.security.support import SANDBOX_PRIVATE, SANDBOX_PUBLIC_JWKS, mint

ISS = "https://sandbox.cds-hooks.org"
PATH = "/cds-services/aih-order-sign"
TRUSTED = json.dumps([{"iss": ISS, "jwks": SANDBOX_PUBLIC_JWKS}])


def test_auth_on_without_a_public_base_url_stops_start_up(
    app_factory: Callable[..., Flask],
) -> None:
    with pytest.raises(SettingsError, match="CDS_PUBLIC_BASE_URL"):
        app_factory(auth=True, trusted_issuers=TRUSTED, public_base_url="")
    app_factory(auth=False, public_base_url="")  # development mode does not need it


def test_a_token_for_another_service_is_refused_whatever_the_host_header(
    app_factory: Callable[..., Flask],
) -> None:
    app = app_factory(auth=True, trusted_issuers=TRUSTED, public_base_url="https://cds.example.org")
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    client = app.test_client()
    other = mint(SANDBOX_PRIVATE, iss=ISS, aud="https://other-cds.example.net" + PATH)
    answer = client.post(
        PATH,
        json=body,
        headers={
            "Authorization": f"Bearer {other}",
            "Host": "other-cds.example.net",
            "X-Forwarded-Proto": "https",
        },
        base_url="https://other-cds.example.net",
    )
    assert answer.status_code == 401
    mine = mint(SANDBOX_PRIVATE, iss=ISS, aud="https://cds.example.org" + PATH)
    assert (
        client.post(PATH, json=body, headers={"Authorization": f"Bearer {mine}"}).status_code == 200
    )


@pytest.mark.parametrize(
    ("proxies", "expected"), [(None, ""), ("10.0.0.7,10.0.0.8", "10.0.0.7,10.0.0.8")]
)
def test_gunicorn_believes_forwarded_headers_only_from_configured_proxies(
    monkeypatch: pytest.MonkeyPatch, proxies: str | None, expected: str
) -> None:
    if proxies is None:
        monkeypatch.delenv("CDS_TRUSTED_PROXIES", raising=False)
    else:
        monkeypatch.setenv("CDS_TRUSTED_PROXIES", proxies)
    import cds_service.ops.gunicorn_conf as conf

    assert importlib.reload(conf).forwarded_allow_ips == expected


def test_public_base_url_must_be_an_absolute_url(app_factory: Callable[..., Flask]) -> None:
    with pytest.raises(SettingsError, match="CDS_PUBLIC_BASE_URL"):
        app_factory(public_base_url="cds.example.org")
