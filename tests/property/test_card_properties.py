"""The card helpers written for speed agree with their plain definitions on any JSON-like tree:
``prune`` with the recursive "drop None and empty members", ``json_copy`` with ``deepcopy``."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.config.cards import json_copy, prune

_SCALARS = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "x", "0"]),
    st.text(max_size=4),
    st.integers(-2, 2),
    st.floats(allow_nan=False, width=16),
    st.booleans(),
)
_TREES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from("abcde"), children, max_size=4),
    ),
    max_leaves=30,
)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def reference_prune(value: Any) -> Any:
    """The definition: every member pruned first, then the empty ones dropped."""
    if isinstance(value, Mapping):
        pruned = {k: reference_prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if not _empty(v)}
    if isinstance(value, list):
        items = [reference_prune(v) for v in value]
        return [v for v in items if not _empty(v)]
    return value


@settings(max_examples=600)
@given(_TREES)
def test_prune_agrees_with_its_definition(tree: Any) -> None:
    assert prune(tree) == reference_prune(tree)


def test_prune_reads_any_mapping_and_drops_what_becomes_empty() -> None:
    tree = MappingProxyType({"a": {"b": [None, "", {}]}, "c": "kept", "d": [0, False]})
    assert prune(tree) == {"c": "kept", "d": [0, False]}


def _containers(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value, *(c for member in value.values() for c in _containers(member))]
    if isinstance(value, list):
        return [value, *(c for member in value for c in _containers(member))]
    return []


@settings(max_examples=600)
@given(_TREES)
def test_json_copy_equals_deepcopy_and_shares_no_container(tree: Any) -> None:
    copied = json_copy(tree)
    assert copied == copy.deepcopy(tree)
    original_ids = {id(c) for c in _containers(tree)}
    assert not original_ids & {id(c) for c in _containers(copied)}
