"""Everything one application instance holds: configuration, engine, store, authenticator."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Request

from cds_service.common.settings import Settings
from cds_service.config.configuration import Configuration
from cds_service.fhir.client import allow_servers
from cds_service.fhir.server_policy import parse_entries
from cds_service.hooks.engine import Engine, Evaluation
from cds_service.security.client_auth import AuthError, ClientAuthenticator
from cds_service.storage.card_log import CardLogWriter
from cds_service.storage.scope import NO_CLIENT, ClientScope, ScopeRefused
from cds_service.storage.store import LoggedCard, Store
from cds_service.web.json_limits import JsonLimits

log = logging.getLogger(__name__)


class Unauthorized(Exception):
    """Answered as a bare 401: no detail is given to the caller."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def random_uuid() -> str:
    return str(uuid.uuid4())


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    store: Store
    authenticator: ClientAuthenticator | None
    # the card log: the database, or the local spool when the database cannot take an entry
    card_log: CardLogWriter
    clock: Callable[[], datetime] = utc_now
    # pages of this service per patient that cards may link to (name -> path); the demo sets it
    patient_pages: Callable[[str], Mapping[str, str]] | None = None

    @property
    def config(self) -> Configuration:
        return self.engine.config

    @property
    def json_limits(self) -> JsonLimits:
        return JsonLimits(self.settings.max_json_depth, self.settings.max_bundle_entries)

    def authenticate(self, request: Request, *, discovery: bool = False) -> ClientScope:
        """The verified caller's client and tenant; ``NO_CLIENT`` when nothing was verified
        (development mode, or anonymous discovery)."""
        if self.authenticator is None:
            return NO_CLIENT
        if discovery and self.settings.anonymous_discovery:
            return NO_CLIENT
        audience = self.audience(request)
        try:
            claims = self.authenticator.verify(request.headers.get("Authorization"), audience)
            scope = ClientScope.from_claims(claims)
        except (AuthError, ScopeRefused) as exc:
            log.warning("client authentication failed: %s", exc)
            raise Unauthorized from exc
        allow_servers(parse_entries(self.authenticator.fhir_servers(claims)))
        # iss, tenant and jti identify the call for audit without revealing anything (BP).
        log.info(
            "client authenticated: iss=%r tenant=%r jti=%r",
            claims.get("iss"),
            claims.get("tenant"),
            claims.get("jti"),
        )
        return scope

    def audience(self, request: Request) -> str:
        """The exact URL the client called, as the client sees it: under CDS_PUBLIC_BASE_URL,
        which is required with auth on (never the Host header)."""
        return self.public_base(request) + request.path

    def public_base(self, request: Request) -> str:
        return self.settings.public_base_url.rstrip("/") or request.host_url.rstrip("/")

    def evidence_base(self, request: Request) -> str:
        """Absolute URL of the evidence pages (``GET /evidence/<rule-id>``)."""
        return self.public_base(request) + "/evidence"

    def link_targets(self, request: Request) -> Callable[[str], Mapping[str, str]] | None:
        """Absolute URLs of the patient's pages (cards link only to pages that exist)."""
        pages = self.patient_pages
        if pages is None:
            return None
        base = self.public_base(request)
        return lambda patient_id: {name: base + path for name, path in pages(patient_id).items()}

    def log_cards(self, evaluation: Evaluation, scope: ClientScope = NO_CLIENT) -> None:
        keep_text = self.settings.silent_card_text
        logged = [
            LoggedCard(
                uuid=str(issued.card["uuid"]),
                rule_id=issued.rule_id,
                rule_outcome=issued.outcome,
                indicator=str(issued.card["indicator"]),
                suggestion_uuids=tuple(str(s["uuid"]) for s in issued.card.get("suggestions", ())),
                suggestion_labels=tuple(
                    str(s["label"]) for s in issued.card.get("suggestions", ())
                ),
                mode=issued.mode,
                text=rendered_text(issued.card) if keep_text and issued.silent else None,
            )
            for issued in evaluation.cards
        ]
        now = self.clock()
        text_days = timedelta(days=self.settings.silent_card_text_days)
        entry = self.store.card_log_entry(
            evaluation.service.id,
            evaluation.request.hook_instance,
            evaluation.request.patient_id,
            logged,
            now,
            scope=scope,
            text_expires_at=now + text_days if keep_text else None,
        )
        if entry is not None:
            self.card_log.record(entry)  # never raises: the answer does not depend on it
        # The patient appears in logs only as the card log's keyed hash, so both can be joined.
        log.info(
            "%s answered hookInstance=%r patient=%s with %d card(s)",
            evaluation.service.id,
            evaluation.request.hook_instance,
            self.store.patient_hash(evaluation.request.patient_id),
            len(logged),
        )


def rendered_text(card: Mapping[str, Any]) -> str:
    """What the clinician would have read: summary, detail and the suggestions' labels."""
    parts = [str(card.get("summary", "")), str(card.get("detail", "") or "")]
    parts += [f"Suggestion: {s.get('label', '')}" for s in card.get("suggestions", ())]
    return "\n\n".join(part for part in parts if part)


def patient_hash_key(settings: Settings) -> bytes:
    if settings.patient_hash_key:
        return settings.patient_hash_key.encode("utf-8")
    log.warning(
        "CDS_PATIENT_HASH_KEY is not set: a random key is used, so patient hashes in the card log "
        "cannot be linked across restarts or replicas"
    )
    return secrets.token_bytes(32)
