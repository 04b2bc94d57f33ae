"""Security settings read from the environment, and optional algorithms switched on by name."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from cds_service.common.settings import Settings, SettingsError
from tests import factories as f
from tests.security.support import CRD_RSA_PRIVATE, PUBLISHED, mint

PATH = "/cds-services/aih-order-sign"
ISS = "https://ehr.example.org"


def test_security_settings_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.load(
        environ={
            "CDS_TRUSTED_CLIENTS_FILE": str(tmp_path / "clients.yaml"),
            "CDS_JWT_ALGORITHMS": "ES384, RS384, PS384",
            "CDS_JWKS_TIMEOUT_S": "1.5",
            "CDS_JWKS_CACHE_TTL_S": "120",
            "CDS_JWT_MAX_LIFETIME_S": "600",
            "CDS_REPLAY_CACHE": "database",
            "CDS_MAX_JSON_DEPTH": "40",
            "CDS_MAX_BUNDLE_ENTRIES": "1000",
            "CDS_CORS_ORIGINS": "",
        }
    )
    assert settings.trusted_clients_source == str(tmp_path / "clients.yaml")
    assert settings.jwt_algorithms == ("ES384", "RS384", "PS384")
    assert (settings.jwks_timeout_s, settings.jwks_cache_ttl_s) == (1.5, 120)
    assert settings.jwt_max_lifetime_s == 600
    assert settings.replay_cache == "database"
    assert (settings.max_json_depth, settings.max_bundle_entries) == (40, 1000)
    assert settings.allowed_origins == ()


@pytest.mark.parametrize(
    ("auth", "origins", "expected"),
    [
        (False, None, ("*",)),
        (True, None, ()),
        (True, ("https://a.example",), ("https://a.example",)),
    ],
)
def test_cors_default_follows_the_mode(
    auth: bool, origins: tuple[str, ...] | None, expected: tuple[str, ...]
) -> None:
    assert Settings(auth=auth, cors_origins=origins).allowed_origins == expected


@pytest.mark.parametrize("algorithm", ["HS256", "none"])
def test_symmetric_or_none_algorithm_stops_start_up(
    app_factory: Callable[..., Flask], algorithm: str
) -> None:
    with pytest.raises(ValueError, match="only asymmetric"):
        app_factory(auth=True, jwt_algorithms=("ES384", algorithm))


def test_ps384_is_accepted_only_when_configured(app_factory: Callable[..., Flask]) -> None:
    # A key published without "alg" may verify any RSA algorithm the service allows.
    key = {k: v for k, v in PUBLISHED[CRD_RSA_PRIVATE["kid"]].items() if k != "alg"}
    trusted = json.dumps([{"iss": ISS, "jwks": {"keys": [key]}}])
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch())
    base = "https://cds.example.org"
    results = []
    for algorithms in (("ES384", "RS384"), ("ES384", "RS384", "PS384")):
        app = app_factory(
            auth=True, trusted_issuers=trusted, public_base_url=base, jwt_algorithms=algorithms
        )
        private = {k: v for k, v in CRD_RSA_PRIVATE.items() if k != "alg"}
        token = mint(private, iss=ISS, aud=base + PATH, alg="PS384")
        answer = app.test_client().post(
            PATH, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        results.append(answer.status_code)
    assert results == [401, 200]


def test_trusted_clients_file_errors_name_the_field(
    app_factory: Callable[..., Flask], tmp_path: Path
) -> None:
    clients = tmp_path / "clients.yaml"
    clients.write_text("- iss: https://ehr.example.org\n  jku: [ftp://keys.example.org]\n")
    with pytest.raises(ValueError, match=r"entry 0: field 'jku'"):
        app_factory(auth=True, trusted_clients_file=str(clients))
    with pytest.raises(SettingsError, match="not both"):
        Settings.load({"trusted_issuers": "[]", "trusted_clients_file": str(clients)})
