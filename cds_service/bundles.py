"""Reading FHIR Bundles and OperationOutcomes: shared by prefetch and the FHIR fetch."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def entry_resources(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entries' resources, without OperationOutcomes (they describe the search)."""
    return [r for r in _resources(bundle) if r.get("resourceType") != "OperationOutcome"]


def error_outcomes(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """OperationOutcome entries of error or fatal severity (warnings are not problems)."""
    return [
        r for r in _resources(bundle) if r.get("resourceType") == "OperationOutcome" and is_error(r)
    ]


def is_error(outcome: Mapping[str, Any]) -> bool:
    return any(
        i.get("severity") in {"error", "fatal"}
        for i in outcome.get("issue") or ()
        if isinstance(i, Mapping)
    )


def issue_text(outcome: Mapping[str, Any]) -> str:
    for issue in outcome.get("issue") or ():
        if isinstance(issue, Mapping):
            text = (
                issue.get("diagnostics")
                or (issue.get("details") or {}).get("text")
                or issue.get("code")
            )
            return str(text)[:200]
    return "no details"


def next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link") or ():
        if (
            isinstance(link, Mapping)
            and link.get("relation") == "next"
            and isinstance(link.get("url"), str)
        ):
            return str(link["url"])
    return None


def _resources(bundle: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if isinstance(resource, dict):
            yield resource
