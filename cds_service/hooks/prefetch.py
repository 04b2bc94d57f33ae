"""Prefetch: render templates, read the three prefetch states, fetch what is missing.

- key absent, or an OperationOutcome -> fetch from ``fhirServer`` (all such keys in parallel)
- key ``null``                       -> the client looked and found nothing; never refetched
- Bundle / resource                  -> used; a Bundle's next link is followed when possible
Needed data that can be had neither way -> 412 (PreconditionFailed), except supplementary
kinds (``rules.base.SUPPLEMENTARY``) and extra reads (a draft's Medication): their absence is a note
the card states, never a 412.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from cds_service.common.errors import BadRequest, PreconditionFailed
from cds_service.config.configuration import ServiceConfig, prefetch_resource_type
from cds_service.fhir.bundles import entry_resources, error_outcomes, next_link
from cds_service.fhir.client import FetchError, FetchResult, FhirFetcher
from cds_service.hooks.protocol import HookRequest
from cds_service.rules.base import SUPPLEMENTARY

_TOKEN = re.compile(r"\{\{\s*([A-Za-z.]+)\s*\}\}")
_USER_TOKENS = {
    "Practitioner": "userPractitionerId",
    "PractitionerRole": "userPractitionerRoleId",
    "Patient": "userPatientId",
    "RelatedPerson": "userRelatedPersonId",
}


@dataclass
class ResolvedData:
    """Resources by type, gathered from prefetch and fetches, with the gaps met on the way."""

    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fetched_keys: list[str] = field(default_factory=list)

    def add(self, resources: list[dict[str, Any]]) -> None:
        for resource in resources:
            self.resources.setdefault(str(resource.get("resourceType")), []).append(resource)

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        return self.resources.get(resource_type, [])


def prefetched_medications(prefetch: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Medication resources anywhere in the prefetch (e.g. ``_include``d by a search)."""
    found: list[dict[str, Any]] = []
    for value in (prefetch or {}).values():
        if not isinstance(value, dict):
            continue
        resources = entry_resources(value) if value.get("resourceType") == "Bundle" else [value]
        found.extend(r for r in resources if r.get("resourceType") == "Medication")
    return found


def render_template(template: str, request: HookRequest) -> str | None:
    """Fill a prefetch template; None when a token has no value in this request."""
    values = token_values(request)
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        value = values.get(match.group(1))
        if value is None:
            missing = True
            return ""
        return quote(value, safe="")  # an id must never add query parameters

    rendered = _TOKEN.sub(substitute, template)
    return None if missing else rendered


def token_values(request: HookRequest) -> dict[str, str]:
    values = {f"context.{k}": v for k, v in request.context.items() if isinstance(v, str) and v}
    values["context.patientId"] = request.patient_id
    user = request.context.get("userId")
    if isinstance(user, str) and "/" in user:
        resource_type, _, user_id = user.partition("/")
        token = _USER_TOKENS.get(resource_type)
        if token and user_id:
            values[token] = user_id
    return values


def resolve(
    service: ServiceConfig,
    request: HookRequest,
    needed_types: Collection[str],
    fetcher: FhirFetcher,
    extra_queries: Mapping[str, str] | None = None,
) -> ResolvedData:
    """``extra_queries`` (key -> relative URL, e.g. a draft's ``Medication/{id}``) are read in
    the same parallel fetch as the prefetch gaps, when there is a fhirServer."""
    data = ResolvedData()
    to_fetch: dict[str, str] = {}
    optional = set(extra_queries or {})
    continuations: dict[str, dict[str, Any]] = {}
    unobtainable: list[str] = []
    prefetch = request.prefetch or {}
    for key, template in service.prefetch.items():
        resource_type = prefetch_resource_type(template)
        if resource_type not in needed_types:
            continue
        if key in prefetch and prefetch[key] is None:
            continue  # satisfied, and there is nothing
        value = prefetch.get(key)
        if value is not None and not _is_error_outcome(value):
            _check_shape(key, value, resource_type)
            if value.get("resourceType") == "Bundle":
                if next_link(value) is not None and request.fhir_server:
                    continuations[key] = (
                        value  # the fetch re-reads nothing: it starts from this page
                    )
                else:
                    data.add(entry_resources(value))
                    if next_link(value) is not None:
                        data.notes.append(
                            f"prefetch {key} has more pages that could not be read (no fhirServer)"
                        )
            else:
                data.add([value])
            continue
        query = render_template(template, request)
        if resource_type in SUPPLEMENTARY:
            optional.add(key)
        if query is None:
            unobtainable.append(f"{key} (a prefetch token has no value in this request)")
        else:
            to_fetch[key] = query
    if request.fhir_server:
        to_fetch.update(extra_queries or {})
    if to_fetch and not request.fhir_server:
        unobtainable.extend(f"{k} (absent from prefetch and no fhirServer given)" for k in to_fetch)
    elif to_fetch or continuations:
        server = request.fhir_server or ""  # set: continuations are planned only with a server
        results = fetcher.fetch_many(server, request.access_token, to_fetch, continuations)
        for key, result in results.items():
            _take(key, result, continuations.get(key), data, unobtainable)
    missing_optional = [u for u in unobtainable if any(u.startswith(f"{k} (") for k in optional)]
    if missing_optional:
        data.notes.append(
            "Not read (the decision was made without them): " + "; ".join(missing_optional)
        )
    unobtainable = [u for u in unobtainable if u not in missing_optional]
    if unobtainable:
        raise PreconditionFailed("Required data could not be obtained: " + "; ".join(unobtainable))
    return data


def _take(
    key: str,
    result: FetchResult | FetchError,
    first_page: dict[str, Any] | None,
    data: ResolvedData,
    unobtainable: list[str],
) -> None:
    if isinstance(result, FetchError):
        if first_page is not None:
            # The prefetched first page still counts; the card states what is missing.
            data.add(entry_resources(first_page))
            data.notes.append(f"later pages of prefetch {key} could not be read: {result}")
        else:
            unobtainable.append(f"{key} ({result})")
        return
    data.add(result.resources)
    data.fetched_keys.append(key)
    data.notes.extend(f"{key}: {note}" for note in result.notes)


def _check_shape(key: str, value: Any, resource_type: str) -> None:
    if not isinstance(value, Mapping) or not isinstance(value.get("resourceType"), str):
        raise BadRequest(
            "prefetch value must be a FHIR resource, a Bundle or null", expression=f"prefetch.{key}"
        )
    if value["resourceType"] not in {"Bundle", resource_type}:
        raise BadRequest(
            f"expected a {resource_type} or a Bundle, got {value['resourceType']}",
            expression=f"prefetch.{key}",
        )
    if value["resourceType"] == "Bundle":
        _check_entries(key, value)


def _check_entries(key: str, bundle: Mapping[str, Any]) -> None:
    """Entries that are not objects would be dropped without trace: refuse them instead."""
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise BadRequest("Bundle.entry must be an array", expression=f"prefetch.{key}.entry")
    for index, entry in enumerate(entries):
        where = f"prefetch.{key}.entry[{index}]"
        if not isinstance(entry, Mapping):
            raise BadRequest("Bundle entry must be an object", expression=where)
        if "resource" in entry and not isinstance(entry["resource"], Mapping):
            raise BadRequest("Bundle entry resource must be an object", expression=where)


def _is_error_outcome(value: Any) -> bool:
    """The client hit an error: a bare OperationOutcome, or a Bundle carrying one of error
    severity (spec: services SHOULD check prefetched data for OperationOutcomes)."""
    if not isinstance(value, Mapping):
        return False
    if value.get("resourceType") == "OperationOutcome":
        return True
    return value.get("resourceType") == "Bundle" and bool(error_outcomes(value))
