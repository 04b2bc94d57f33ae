"""Hostile-input limits on request JSON: strict parsing, nesting depth and Bundle entry counts.

Body size is bounded before parsing (``CDS_MAX_REQUEST_BYTES``). These checks bound the work
that a small body can still cause: deep nesting (recursion in every later walker) and huge
Bundles (each entry is validated and indexed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cds_service.common.errors import BadRequest, PayloadTooLarge


@dataclass(frozen=True)
class JsonLimits:
    max_depth: int
    max_bundle_entries: int


def parse_json(raw: bytes, loads: Callable[..., Any] = json.loads) -> Any:
    """Parse strict JSON: NaN and Infinity are not JSON and would poison later arithmetic.
    ``loads`` is json.loads or an equivalent taking ``parse_constant`` (see jsonparse)."""
    try:
        document = loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise BadRequest("body is not valid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {_clip(str(exc))}") from exc
    if _ESCAPED_SURROGATE_OR_NUL.search(raw):
        _refuse_unstorable_text(document)
    return document


# Only an escape can put a lone surrogate or a NUL into a parsed string (raw ones are invalid).
_ESCAPED_SURROGATE_OR_NUL = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")


def _refuse_unstorable_text(document: Any) -> None:
    """Lone surrogates cannot be encoded (logs, hashes, the database) and PostgreSQL text
    cannot hold NUL: refuse them anywhere in the body, as FHIR strings forbid them anyway."""
    stack = [document]
    while stack:
        value = stack.pop()
        texts: list[Any] = []
        if isinstance(value, dict):
            texts = list(value)
            stack += value.values()
        elif isinstance(value, list):
            stack += value
        else:
            texts = [value]
        for text in texts:
            if isinstance(text, str) and not _storable(text):
                raise BadRequest("a string holds a lone surrogate or a NUL character")


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clip(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[:limit] + "..."


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def check_limits(document: Any, limits: JsonLimits, raw: bytes | None = None) -> None:
    """Raise 400 when ``document`` nests deeper than allowed, 413 when a Bundle is too large.

    With the body ``raw`` it was parsed from, no Python walk of every node: the depth is read
    from the bytes (``_depth_within``, a few C-level passes) and the Bundles are those the
    service reads (``_known_bundles``: each prefetch value and ``context.draftOrders``); a
    Bundle anywhere else is never iterated, so its size costs nothing but its bytes, which
    ``CDS_MAX_REQUEST_BYTES`` bounds. Without ``raw``, every node is walked, iteratively (an
    explicit stack cannot hit the recursion limit). Either way only a violation is walked again
    to name where it is.
    """
    if raw is not None and b"\x00" not in raw[:4]:  # UTF-8 (json.loads reads UTF-16/32 too)
        within = _depth_within(raw, limits.max_depth) and not any(
            _oversized_bundle(bundle, limits) for bundle in _known_bundles(document)
        )
    else:
        within = _within_limits(document, limits)
    if not within:
        _raise_first_violation(document, limits)


# Only " { } [ ] are kept (after escapes are gone), and [ ] are read as { }: nesting is all
# that matters once the parser has accepted the body.
_STRUCTURE = bytes.maketrans(b"[]", b"{}")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"{}[]')


def _depth_within(raw: bytes, max_depth: int) -> bool:
    """Whether no container of the (valid JSON) body nests deeper than ``max_depth``.

    Escaped backslashes, then escaped quotes, are removed, so every quote left delimits a
    string; everything but quotes and brackets is dropped; strings are dropped with what they
    hold; then each pass removes the innermost pairs: the body nests ``max_depth`` levels at
    most exactly when ``max_depth`` passes leave nothing. Every step is one C-level pass over
    bytes (~1 ms for 1.7 MB), where a walk of the parsed nodes takes ~20-30 ms.
    """
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Quotes alternate open, close: removing two adjacent ones drops an empty string or joins
    # two strings, so the strings left are those holding brackets (rare), dropped one by one.
    quoted = raw.translate(_STRUCTURE, _NOT_STRUCTURE).replace(b'""', b"")
    nesting = b"".join(quoted.split(b'"')[::2]) if b'"' in quoted else quoted
    for _ in range(max_depth):
        if not nesting:
            return True
        nesting = nesting.replace(b"{}", b"")
    return not nesting


def _known_bundles(document: Any) -> list[dict[str, Any]]:
    """The Bundles the service iterates: prefetch values and the draft orders."""
    if not isinstance(document, dict):
        return []
    found: list[Any] = []
    prefetch = document.get("prefetch")
    if isinstance(prefetch, dict):
        found += prefetch.values()
    context = document.get("context")
    if isinstance(context, dict):
        found.append(context.get("draftOrders"))
    return [bundle for bundle in found if isinstance(bundle, dict)]


_CONTAINERS = (dict, list)


def _within_limits(document: Any, limits: JsonLimits) -> bool:
    """Level by level: one list per depth and comprehensions instead of a tuple per node (a
    large hook request is ~100k nodes, and this runs on every call)."""
    level = [document] if isinstance(document, _CONTAINERS) else []
    depth = 1
    while level:
        if depth > limits.max_depth:
            return False
        below: list[Any] = []
        for value in level:
            if isinstance(value, dict):
                if _oversized_bundle(value, limits):
                    return False
                below += [child for child in value.values() if isinstance(child, _CONTAINERS)]
            else:
                below += [child for child in value if isinstance(child, _CONTAINERS)]
        level = below
        depth += 1
    return True


def _raise_first_violation(document: Any, limits: JsonLimits) -> None:
    stack: list[tuple[Any, int, str]] = [(document, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if depth > limits.max_depth:
            raise BadRequest(
                f"JSON nested deeper than {limits.max_depth} levels", expression=where or "(body)"
            )
        if isinstance(value, dict):
            if _oversized_bundle(value, limits):
                raise PayloadTooLarge(
                    f"Bundle has {len(value['entry'])} entries; "
                    f"at most {limits.max_bundle_entries} are accepted",
                    expression=f"{where}.entry" if where else "entry",
                )
            for key, child in value.items():
                if isinstance(child, dict | list):
                    stack.append((child, depth + 1, f"{where}.{key}" if where else str(key)))
        elif isinstance(value, list):
            stack.extend(
                (child, depth + 1, f"{where}[{index}]")
                for index, child in enumerate(value)
                if isinstance(child, dict | list)
            )


def _oversized_bundle(value: dict[str, Any], limits: JsonLimits) -> bool:
    entries = value.get("entry")
    return (
        value.get("resourceType") == "Bundle"
        and isinstance(entries, list)
        and len(entries) > limits.max_bundle_entries
    )
