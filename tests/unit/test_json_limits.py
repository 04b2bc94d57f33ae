"""The JSON limits read from the body's bytes give the same verdicts as the walk of every node."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.common.errors import BadRequest, PayloadTooLarge
from cds_service.web.json_limits import JsonLimits, _depth_within, _within_limits, check_limits

# Strings full of what could fool a byte scan: brackets, quotes, backslashes, escapes, non-ASCII.
TRICKY = st.text(alphabet=list('[]{}"\\\\/ aé€\n\u2028𝄞\x00'))
DOCUMENTS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY, inner, max_size=4),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(document=DOCUMENTS, ascii_only=st.booleans(), indent=st.sampled_from([None, 1]))
def test_depth_from_bytes_agrees_with_the_walk(
    document: Any, ascii_only: bool, indent: int | None
) -> None:
    raw = json.dumps(document, ensure_ascii=ascii_only, indent=indent).encode()
    for max_depth in range(1, depth(document) + 2):
        walked = _within_limits(document, JsonLimits(max_depth, 10**9))
        assert _depth_within(raw, max_depth) is walked, (raw, max_depth)


@pytest.mark.parametrize("text", ['[[["]]]]]]"]]]', '{"a": "\\\\"}', '["\\\\\\"[[[[", [[]]]'])
def test_brackets_and_escapes_inside_strings_do_not_count(text: str) -> None:
    document = json.loads(text)
    for max_depth in range(1, 6):
        assert _depth_within(text.encode(), max_depth) is (depth(document) <= max_depth)


def hook_body(entries: int, draft_entries: int = 1, elsewhere: int = 0) -> dict[str, Any]:
    def bundle(n: int) -> dict[str, Any]:
        return {"resourceType": "Bundle", "entry": [{"resource": {"id": str(i)}} for i in range(n)]}

    return {
        "context": {"draftOrders": bundle(draft_entries)},
        "prefetch": {"observations": bundle(entries), "patient": {"resourceType": "Patient"}},
        "extension": {"kept": bundle(elsewhere)},
    }


def check(document: Any, limits: JsonLimits) -> None:
    check_limits(document, limits, json.dumps(document).encode())


def test_a_read_bundle_over_the_limit_is_a_413_naming_it() -> None:
    limits = JsonLimits(max_depth=64, max_bundle_entries=3)
    check(hook_body(3, draft_entries=3), limits)
    with pytest.raises(PayloadTooLarge) as prefetch:
        check(hook_body(4), limits)
    assert prefetch.value.expression == "prefetch.observations.entry"
    with pytest.raises(PayloadTooLarge) as drafts:
        check(hook_body(1, draft_entries=4), limits)
    assert drafts.value.expression == "context.draftOrders.entry"


def test_a_bundle_the_service_never_reads_is_bounded_by_the_body_size_only() -> None:
    limits = JsonLimits(max_depth=64, max_bundle_entries=3)
    check(hook_body(1, elsewhere=10), limits)  # not iterated: no work to bound
    with pytest.raises(PayloadTooLarge):  # the walk (no raw body) still counts every Bundle
        check_limits(hook_body(1, elsewhere=10), limits)


def test_too_deep_is_a_400_with_or_without_the_body() -> None:
    document = {"a": json.loads("[" * 10 + "]" * 10)}
    check(document, JsonLimits(max_depth=11, max_bundle_entries=10))
    with pytest.raises(BadRequest, match="deeper than 10"):
        check(document, JsonLimits(max_depth=10, max_bundle_entries=10))
    with pytest.raises(BadRequest, match="deeper than 10"):
        check_limits(document, JsonLimits(max_depth=10, max_bundle_entries=10))


def test_a_utf16_body_is_walked() -> None:
    document = {"a": [[["x"]]]}
    raw = json.dumps(document).encode("utf-16")
    check_limits(document, JsonLimits(max_depth=4, max_bundle_entries=10), raw)
    with pytest.raises(BadRequest):
        check_limits(document, JsonLimits(max_depth=3, max_bundle_entries=10), raw)
