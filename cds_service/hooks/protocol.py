"""Marshmallow schemas for hook requests and feedback: the shapes the CDS Hooks 2.0 spec defines."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from cds_service.common.errors import BadRequest, PayloadTooLarge
from cds_service.common.validation_errors import first_error


class _Lenient(Schema):
    """Unknown members are ignored: clients add extensions and vendor fields."""

    class Meta:
        unknown = EXCLUDE


class FhirAuthorizationSchema(_Lenient):
    access_token = fields.String(required=True, validate=validate.Length(min=1))
    token_type = fields.String(required=True, validate=validate.OneOf(["Bearer", "bearer"]))
    expires_in = fields.Integer(required=True, strict=True)
    scope = fields.String(required=True)
    subject = fields.String(required=True)
    patient = fields.String()


class HookRequestSchema(_Lenient):
    hook = fields.String(required=True, validate=validate.Length(min=1))
    hookInstance = fields.String(required=True, validate=validate.Length(min=1, max=256))  # noqa: N815
    fhirServer = fields.Url(  # noqa: N815
        require_tld=False,
        schemes={"http", "https"},
        metadata={"description": "Required when fhirAuthorization is present."},
    )
    fhirAuthorization = fields.Nested(FhirAuthorizationSchema)  # noqa: N815
    context = fields.Dict(required=True)
    # Each value is checked in prefetch.py (a resource or Bundle, else 400); published as an object.
    prefetch = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(
            allow_none=True,
            metadata={"type": "object", "description": "A FHIR resource or Bundle; null: no data"},
        ),
    )
    extension = fields.Dict()

    @validates_schema
    def _server_with_token(self, data: Mapping[str, Any], **_: Any) -> None:
        if "fhirAuthorization" in data and "fhirServer" not in data:
            raise ValidationError(
                "fhirServer is required when fhirAuthorization is present", "fhirServer"
            )


class _Context(_Lenient):
    userId = fields.String(required=True, validate=validate.Length(min=1))  # noqa: N815
    patientId = fields.String(required=True, validate=validate.Length(min=1))  # noqa: N815
    encounterId = fields.String()  # noqa: N815


class BundleSchema(_Lenient):
    resourceType = fields.String(required=True, validate=validate.Equal("Bundle"))  # noqa: N815
    entry = fields.List(
        fields.Dict(),
        load_default=list,
        metadata={"description": "Each entry holds a resource with a resourceType (else 400)."},
    )


class PatientViewContext(_Context):
    pass


class OrderSignContext(_Context):
    draftOrders = fields.Nested(BundleSchema, required=True)  # noqa: N815


class OrderSelectContext(OrderSignContext):
    selections = fields.List(
        fields.String(validate=validate.Length(min=1)),
        required=True,
        validate=validate.Length(min=1),
        metadata={"description": "References (Type/id) of resources in draftOrders; others: 400."},
    )


CONTEXT_SCHEMAS: dict[str, type[Schema]] = {
    "patient-view": PatientViewContext,
    "order-sign": OrderSignContext,
    "order-select": OrderSelectContext,
}

# One instance of each, built at import: a schema's fields are bound when it is instantiated,
# which cost more than loading a small request. Loading does not change an instance, so the
# threads of a worker share them.
_HOOK_REQUEST = HookRequestSchema()
_CONTEXTS = {hook: schema() for hook, schema in CONTEXT_SCHEMAS.items()}


@dataclass(frozen=True)
class HookRequest:
    hook: str
    hook_instance: str
    context: Mapping[str, Any]
    patient_id: str
    fhir_server: str | None
    access_token: str | None
    prefetch: Mapping[str, Any] | None
    draft_resources: tuple[Mapping[str, Any], ...]
    selected_resources: tuple[Mapping[str, Any], ...]


def parse_hook_request(body: Any, expected_hook: str) -> HookRequest:
    data = _load(_HOOK_REQUEST, body, "")
    if data["hook"] != expected_hook:
        raise BadRequest(
            f"hook {data['hook']!r} does not match this service, which answers {expected_hook!r}",
            expression="hook",
        )
    context = _load(_CONTEXTS[expected_hook], data["context"], "context.")
    drafts = _bundle_resources(context.get("draftOrders"))
    selected = drafts
    if expected_hook == "order-select":
        selected = _selected(drafts, context["selections"])
    authorization = data.get("fhirAuthorization") or {}
    patient_id = context["patientId"].removeprefix("Patient/")
    if not _FHIR_ID.match(patient_id) or patient_id in {".", ".."}:
        # It goes into FHIR URLs (Patient/{{context.patientId}}): "..", "/" or "?" would
        # change the path or the query.
        raise BadRequest(
            "patientId must be a FHIR id (letters, digits, '-' and '.', 1 to 64)",
            expression="context.patientId",
        )
    return HookRequest(
        hook=data["hook"],
        hook_instance=data["hookInstance"],
        context=data["context"],
        # Some clients send "Patient/123" although the spec says a bare id.
        patient_id=patient_id,
        fhir_server=data.get("fhirServer"),
        access_token=authorization.get("access_token"),
        prefetch=data.get("prefetch"),
        draft_resources=drafts,
        selected_resources=selected,
    )


def _bundle_resources(bundle: Mapping[str, Any] | None) -> tuple[Mapping[str, Any], ...]:
    if not bundle:
        return ()
    resources = []
    for index, entry in enumerate(bundle.get("entry") or ()):
        resource = entry.get("resource")
        if not isinstance(resource, Mapping) or not isinstance(resource.get("resourceType"), str):
            raise BadRequest(
                "entry has no resource with a resourceType",
                expression=f"context.draftOrders.entry[{index}]",
            )
        resources.append(resource)
    return tuple(resources)


def _selected(
    drafts: tuple[Mapping[str, Any], ...], selections: list[str]
) -> tuple[Mapping[str, Any], ...]:
    by_reference = {f"{r['resourceType']}/{r.get('id')}": r for r in drafts}
    chosen = []
    for index, reference in enumerate(selections):
        if reference not in by_reference:
            raise BadRequest(
                f"selection {reference!r} is not among context.draftOrders",
                expression=f"context.selections[{index}]",
            )
        chosen.append(by_reference[reference])
    return tuple(chosen)


# ---------------------------------------------------------------- feedback


_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# Feedback limits: the card log's column widths, and enough for any real comment.
MAX_FEEDBACK_ITEMS = 100
MAX_COMMENT_CHARS = 2000
# RFC 3339 date-time: full date, time and a zone (Python's ISO reader accepts much more).
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"
)


class CodingInSchema(_Lenient):
    system = fields.String(validate=validate.Length(max=256))
    code = fields.String(required=True, validate=validate.Length(min=1, max=128))
    # real clients (the CDS Hooks Sandbox) omit it
    display = fields.String(validate=validate.Length(max=512))


class OverrideReasonSchema(_Lenient):
    reason = fields.Nested(CodingInSchema)
    userComment = fields.String(validate=validate.Length(max=MAX_COMMENT_CHARS))  # noqa: N815


class AcceptedSuggestionSchema(_Lenient):
    id = fields.String(required=True, validate=validate.Length(min=1, max=64))


class FeedbackItemSchema(_Lenient):
    card = fields.String(required=True, validate=validate.Length(min=1, max=64))
    outcome = fields.String(required=True, validate=validate.OneOf(["accepted", "overridden"]))
    acceptedSuggestions = fields.List(  # noqa: N815
        fields.Nested(AcceptedSuggestionSchema),
        metadata={"description": "Required (at least one) when outcome is accepted."},
    )
    overrideReason = fields.Raw(  # noqa: N815 - normalised below (two historic shapes)
        metadata={
            "type": "object",
            "description": "{reason: Coding, userComment}, or the older {code, system}",
        }
    )
    outcomeTimestamp = fields.String(required=True, metadata={"format": "date-time"})  # noqa: N815

    @validates_schema
    def _conditional(self, data: Mapping[str, Any], **_: Any) -> None:
        if data.get("outcome") == "accepted" and not data.get("acceptedSuggestions"):
            raise ValidationError("required when outcome is accepted", "acceptedSuggestions")
        stamp = data.get("outcomeTimestamp", "")
        if not _RFC3339.match(stamp) or parse_timestamp(stamp) is None:
            raise ValidationError(
                "must be an RFC 3339 date-time, e.g. 2021-12-11T10:05:31Z", "outcomeTimestamp"
            )


class FeedbackSchema(_Lenient):
    feedback = fields.List(
        fields.Nested(FeedbackItemSchema), required=True, validate=validate.Length(min=1)
    )


@dataclass(frozen=True)
class FeedbackItem:
    card: str
    outcome: str
    outcome_timestamp: datetime
    accepted_suggestions: tuple[str, ...]
    reason_system: str | None
    reason_code: str | None
    reason_display: str | None
    user_comment: str | None


def parse_feedback(body: Any) -> list[FeedbackItem]:
    listed = body.get("feedback") if isinstance(body, Mapping) else None
    if isinstance(listed, list) and len(listed) > MAX_FEEDBACK_ITEMS:
        raise PayloadTooLarge(
            f"at most {MAX_FEEDBACK_ITEMS} feedback items per request", expression="feedback"
        )
    data = _load(FeedbackSchema(), body, "")
    items = []
    for index, raw in enumerate(data["feedback"]):
        reason, comment = _override_reason(raw.get("overrideReason"), index)
        timestamp = parse_timestamp(raw["outcomeTimestamp"])
        if timestamp is None:  # the schema has checked it; this keeps the type checker honest
            raise BadRequest(
                "unreadable timestamp", expression=f"feedback[{index}].outcomeTimestamp"
            )
        items.append(
            FeedbackItem(
                card=raw["card"],
                outcome=raw["outcome"],
                outcome_timestamp=timestamp,
                accepted_suggestions=tuple(s["id"] for s in raw.get("acceptedSuggestions") or ()),
                reason_system=reason.get("system"),
                reason_code=reason.get("code"),
                reason_display=reason.get("display"),
                user_comment=comment,
            )
        )
    return items


def _override_reason(raw: Any, index: int) -> tuple[dict[str, Any], str | None]:
    """Accept ``{reason: Coding, userComment}`` and the older sandbox shape ``{code, system}``."""
    if raw is None:
        return {}, None
    where = f"feedback[{index}].overrideReason"
    if not isinstance(raw, Mapping):
        raise BadRequest("must be an object", expression=where)
    if "reason" not in raw and "code" in raw:
        raw = {"reason": {k: raw[k] for k in ("system", "code", "display") if k in raw}}
    loaded = _load(OverrideReasonSchema(), raw, where + ".")
    return dict(loaded.get("reason") or {}), loaded.get("userComment")


def parse_timestamp(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, AttributeError, OverflowError):
        return None


# ---------------------------------------------------------------- helpers


def _load(schema: Schema, data: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise BadRequest("must be a JSON object", expression=prefix.rstrip(".") or "(body)")
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        path, message = first_error(exc.messages, brackets=True, fallback="(body)")
        raise BadRequest(f"{prefix}{path}: {message}", expression=f"{prefix}{path}") from exc
    return loaded
