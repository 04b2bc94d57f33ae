"""Hostile-input limits on request JSON: strict parsing, nesting depth and Bundle entry counts.

Body size is bounded before parsing (``CDS_MAX_REQUEST_BYTES``). These checks bound the work
that a small body can still cause: deep nesting (recursion in every later walker) and huge
Bundles (each entry is validated and indexed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cds_service.errors import BadRequest, PayloadTooLarge


@dataclass(frozen=True)
class JsonLimits:
    max_depth: int
    max_bundle_entries: int


def parse_json(raw: bytes) -> Any:
    """Parse strict JSON: NaN and Infinity are not JSON and would poison later arithmetic."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise BadRequest("body is not valid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def check_limits(document: Any, limits: JsonLimits) -> None:
    """Raise 400 when ``document`` nests deeper than allowed, 413 when a Bundle is too large.

    Iterative (an explicit stack), so it cannot itself hit the recursion limit.
    """
    stack: list[tuple[Any, int, str]] = [(document, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if depth > limits.max_depth:
            raise BadRequest(
                f"JSON nested deeper than {limits.max_depth} levels", expression=where or "(body)"
            )
        if isinstance(value, Mapping):
            _check_bundle(value, limits, where)
            for key, child in value.items():
                if isinstance(child, Mapping | list):
                    stack.append((child, depth + 1, f"{where}.{key}" if where else str(key)))
        elif isinstance(value, list):
            stack.extend(
                (child, depth + 1, f"{where}[{index}]")
                for index, child in enumerate(value)
                if isinstance(child, Mapping | list)
            )


def _check_bundle(value: Mapping[str, Any], limits: JsonLimits, where: str) -> None:
    entries = value.get("entry")
    if (
        value.get("resourceType") == "Bundle"
        and isinstance(entries, list)
        and len(entries) > limits.max_bundle_entries
    ):
        raise PayloadTooLarge(
            f"Bundle has {len(entries)} entries; at most {limits.max_bundle_entries} are accepted",
            expression=f"{where}.entry" if where else "entry",
        )
