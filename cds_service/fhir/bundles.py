"""Reading FHIR Bundles and OperationOutcomes: shared by prefetch and the FHIR fetch."""

from __future__ import annotations

from collections.abc import Mapping
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
        for i in array(outcome.get("issue"))
        if isinstance(i, Mapping)
    )


def issue_text(outcome: Mapping[str, Any]) -> str:
    for issue in array(outcome.get("issue")):
        if isinstance(issue, Mapping):
            details = issue.get("details")
            text = (
                issue.get("diagnostics")
                or (details.get("text") if isinstance(details, Mapping) else None)
                or issue.get("code")
            )
            return str(text)[:200]
    return "no details"


def issue_summary(outcome: Mapping[str, Any]) -> str:
    """Severity and code of the first issues, for logs and cards: never the server's own text
    (a body from an upstream is not repeated to our callers, and may hold patient data)."""
    parts = []
    for issue in array(outcome.get("issue"))[:3]:
        if isinstance(issue, Mapping):
            parts.append(f"{_token(issue.get('severity'))}/{_token(issue.get('code'))}")
    return ", ".join(parts) or "no issue"


def _token(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    return text if 0 < len(text) <= 32 and text.replace("-", "").isalpha() else "?"


def next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in array(bundle.get("link")):
        if (
            isinstance(link, Mapping)
            and link.get("relation") == "next"
            and isinstance(link.get("url"), str)
        ):
            return str(link["url"])
    return None


def array(value: Any) -> list[Any]:
    """A member that FHIR defines as an array; anything else (hostile input) reads as empty."""
    return value if isinstance(value, list) else []


def _resources(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    # one list, no generator: a prefetch Bundle is walked several times per call
    found = []
    for entry in array(bundle.get("entry")):
        # parsed JSON: a dict, tested before the (slower) Mapping ABC
        if isinstance(entry, dict | Mapping):
            resource = entry.get("resource")
            if isinstance(resource, dict):
                found.append(resource)
    return found
