"""Typed settings from ``CDS_*`` environment variables: the only module that reads os.environ."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parent
# The configuration lives beside the package in the repository (editable install); a
# deployment mounts its own copy and points CDS_CARDS_DIR at it.
DEFAULT_CARDS_DIR = PACKAGE_ROOT.parent / "cards"
ENV_PREFIX = "CDS_"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    """Every knob of the service. Field ``x`` is read from ``CDS_X``."""

    cards_dir: Path = DEFAULT_CARDS_DIR
    database_url: str = "sqlite:///aih-cds.sqlite"
    auth: bool = True
    anonymous_discovery: bool = False
    trusted_issuers: str = ""
    jwt_leeway_s: int = 60
    public_base_url: str = ""
    fhir_timeout_s: float = 2.0
    fhir_max_pages: int = 10
    fhir_max_response_bytes: int = 20_000_000
    max_request_bytes: int = 5_000_000
    patient_hash_key: str = ""
    cors_origins: tuple[str, ...] = ("*",)
    log_level: str = "INFO"
    bench_echo: bool = False  # POST /bench/echo for the load benchmark's ceiling (bench/ only)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Environment first, then explicit overrides (keys with or without the CDS_ prefix)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _coerce(f.name, f.type, raw)
        extra: dict[str, Any] = {}
        for key, value in (overrides or {}).items():
            name = key[len(ENV_PREFIX) :].lower() if key.startswith(ENV_PREFIX) else key.lower()
            if name in {f.name for f in fields(cls)} and name != "extra":
                ftype = next(f.type for f in fields(cls) if f.name == name)
                values[name] = _coerce(name, ftype, value) if isinstance(value, str) else value
            else:
                extra[key] = value
        values["extra"] = extra
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.fhir_timeout_s <= 0:
            raise SettingsError("CDS_FHIR_TIMEOUT_S must be > 0")
        if self.fhir_max_pages < 1:
            raise SettingsError("CDS_FHIR_MAX_PAGES must be >= 1")
        if self.max_request_bytes < 1024:
            raise SettingsError("CDS_MAX_REQUEST_BYTES must be >= 1024")


def _coerce(name: str, ftype: Any, raw: str) -> Any:
    kind = str(ftype)
    try:
        if "bool" in kind:
            return _parse_bool(name, raw)
        if "int" in kind:
            return int(raw)
        if "float" in kind:
            return float(raw)
        if "Path" in kind:
            return Path(raw)
        if "tuple" in kind:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}: cannot read {raw!r}") from exc
    return raw


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{ENV_PREFIX}{name.upper()}: expected on/off, got {raw!r}")
