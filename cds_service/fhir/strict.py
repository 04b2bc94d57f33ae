"""The strict R4B check, for integration testing: findings are reported, never used to drop data.

On with ``CDS_STRICT_FHIR_REPORT=on`` (each hook call: a log line per finding and one note in the
card's "Missing or assumed data") and always available as ``aih-cds fhir check FILE``. The
service itself reads by the reading policy (cds_service/fhir/reading.py), not by this verdict.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from cds_service.fhir.bundles import entry_resources
from cds_service.fhir.reading import strict_problem

log = logging.getLogger(__name__)


def strict_findings(resources: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per resource that is not valid R4B: "<type>/<id>: <first problem>"."""
    findings = []
    for resource in resources:
        problem = strict_problem(resource)
        if problem is not None:
            findings.append(
                f"{resource.get('resourceType', '?')}/{resource.get('id', '?')}: {problem}"
            )
    return findings


def file_resources(document: Any) -> list[Mapping[str, Any]]:
    """The resources of a file for ``aih-cds fhir check``: a resource, a Bundle's entries, or a
    CDS Hooks request (its draft orders and prefetch)."""
    if not isinstance(document, Mapping):
        return []
    if document.get("resourceType") == "Bundle":
        return [document, *entry_resources(document)]
    if isinstance(document.get("resourceType"), str):
        return [document]
    found: list[Mapping[str, Any]] = []
    context = document.get("context")
    for value in (
        *(context.values() if isinstance(context, Mapping) else ()),
        *(document.get("prefetch") or {}).values(),
        *(document.get("draftOrders", ()),),
    ):
        found.extend(file_resources(value))
    return found


def strict_note(resources: Iterable[Mapping[str, Any]]) -> str | None:
    """Log each finding (type and problem only) and sum them up for the card."""
    findings = strict_findings(resources)
    for finding in findings:
        log.warning(
            "strict R4B check: %s", finding.split("/", 1)[0] + ": " + finding.split(": ", 1)[-1]
        )
    if not findings:
        return None
    kinds = sorted({f.split("/", 1)[0] + ": " + f.split(": ", 1)[-1] for f in findings})
    return (
        f"Strict R4B check (reported only; nothing was left out for it): {len(findings)} "
        f"resource(s) are not valid R4B ({'; '.join(kinds)})."
    )
