"""A CodeableConcept read through the shared-concept memory (CodedConcept.from_fhir) is the
concept its definition gives, whether it was remembered, sent again or never seen: its codes
normalised one by one, malformed codings left out, and its value-set keys those of its codes."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cds_service.patient.terminology import (
    SYSTEM_ALIASES,
    Code,
    CodedConcept,
    code_key,
    normalise_system,
)

SYSTEMS = [
    *SYSTEM_ALIASES,
    *SYSTEM_ALIASES.values(),
    " http://loinc.org ",
    "http://hl7.org/fhir/sid/icd-10-cm",
    "urn:example:local",
]
CODES = ["1742-6", " 1742-6", "K75.4", "k754 ", "O26.891", "TGN", ""]
DISPLAYS = st.one_of(st.none(), st.sampled_from(["ALT", "", " alt "]), st.integers())

codings = st.one_of(
    st.fixed_dictionaries(
        {"system": st.sampled_from(SYSTEMS), "code": st.sampled_from(CODES)},
        optional={"display": DISPLAYS},
    ),
    # malformed codings a client may send: left out, never an error
    st.fixed_dictionaries({"code": st.sampled_from(CODES)}),
    st.fixed_dictionaries({"system": st.integers(), "code": st.sampled_from(CODES)}),
    st.sampled_from(["1742-6", 7, None]),
)
concepts = st.fixed_dictionaries(
    {},
    optional={
        "coding": st.lists(codings, max_size=4),
        "text": st.one_of(st.sampled_from(["ALT", "", "x" * 600]), st.integers()),
    },
)


def reference_concept(value: dict[str, Any]) -> CodedConcept:
    """The definition: every well-formed coding, normalised; nothing remembered."""
    codes = []
    for coding in value.get("coding") or ():
        if not isinstance(coding, dict):
            continue
        system, code = coding.get("system"), coding.get("code")
        if isinstance(system, str) and isinstance(code, str):
            display = coding.get("display")
            codes.append(
                Code(
                    normalise_system(system),
                    code.strip(),
                    display if isinstance(display, str) else "",
                )
            )
    text = value.get("text")
    return CodedConcept(tuple(codes), text if isinstance(text, str) else "")


@given(st.lists(concepts, min_size=1, max_size=6))
def test_remembered_concepts_equal_their_definition(values: list[dict[str, Any]]) -> None:
    for value in [*values, *values]:  # the second pass reads remembered concepts
        concept = CodedConcept.from_fhir(value)
        expected = reference_concept(value)
        assert concept == expected
        assert concept.keys == frozenset(code_key(c.system, c.code) for c in expected.codes)
