"""The escapes of FHIR-sourced card values return a value untouched only when it holds nothing
they would change: on any text, the quick path and the full escape agree."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.config.card_template import (
    _escape_lines,
    _plain_text,
    escape_value,
    plain_value,
)

# everything the escapes act on, mixed into ordinary text so the quick path is taken often too
_SPECIAL = [
    *"\x00\x07\t\n\r\x0b\x1f\x7f&<>\\`*_[]{}|~!#@()",
    *("://", "http://", "WWW.", "www.", "](", "- ", "mailto:"),
]
_TEXT = st.lists(st.one_of(st.sampled_from(_SPECIAL), st.text(max_size=6)), max_size=12).map(
    "".join
)


@settings(max_examples=600)
@given(_TEXT)
def test_markdown_escape_quick_path_agrees_with_the_full_escape(value: str) -> None:
    assert escape_value(value) == _escape_lines(value)


@settings(max_examples=600)
@given(_TEXT)
def test_plain_text_quick_path_agrees_with_the_full_escape(value: str) -> None:
    assert plain_value(value) == _plain_text(value)


def test_ordinary_values_take_the_quick_path() -> None:
    for value in ("10.4", "2026-05-01", "Imuran 50 MG Oral Tablet", "ALT 10.4 x ULN"):
        assert escape_value(value) is value
        assert plain_value(value) is value
