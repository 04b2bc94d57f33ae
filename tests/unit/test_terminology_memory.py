"""What the drug-class and unit lookups remember stays bounded, whatever clients send, and never
changes an answer (cds_service/patient/terminology.py, units.py)."""

from __future__ import annotations

import json

from cds_service.common.settings import DEFAULT_CARDS_DIR
from cds_service.config.configuration import load_configuration
from cds_service.patient import record as record_module
from cds_service.patient import terminology as terms
from cds_service.patient.record import RecordBuilder
from cds_service.patient.terminology import Code, CodedConcept
from cds_service.patient.units import normalise_unit
from cds_service.rules.registry import REGISTRY

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"


def _terminology() -> terms.Terminology:
    return load_configuration(DEFAULT_CARDS_DIR, REGISTRY).terminology


def test_a_remembered_concept_gets_the_same_classes_as_a_fresh_lookup() -> None:
    terminology = _terminology()
    concept = CodedConcept(text="CellCept 500 mg tablet")
    first = terminology.classes_of(concept)
    assert first  # a brand name of a configured class: something to remember
    assert terminology.classes_of(CodedConcept(text="CellCept 500 mg tablet")) == first
    assert terminology.classes_of(concept) == _terminology().classes_of(concept)


def test_distinct_concepts_beyond_the_bound_do_not_grow_the_memory() -> None:
    terminology = _terminology()
    for n in range(terms._MAX_MEMO + 50):
        terminology.classes_of(CodedConcept((Code(RXNORM, f"9{n:07d}"),)))
    assert len(terminology._classes_memo) <= terms._MAX_MEMO


def test_a_concept_with_long_text_is_answered_but_not_remembered() -> None:
    terminology = _terminology()
    long_text = "azathioprine " + "x" * terms._MAX_MEMO_TEXT
    assert terminology.classes_of(CodedConcept(text=long_text))  # the name still matches
    assert CodedConcept(text=long_text) not in terminology._classes_memo


def test_long_unit_spellings_normalise_as_short_ones() -> None:
    assert normalise_unit("  mg/dL ") == "mg/dl"
    assert normalise_unit("\u00b5kat/L" + " " * 100) == "ukat/l"


def test_equal_codeable_concepts_share_one_concept() -> None:
    sent = {"coding": [{"system": " urn:oid:2.16.840.1.113883.6.1", "code": "1742-6 "}]}
    first = CodedConcept.from_fhir(sent)
    assert CodedConcept.from_fhir(json.loads(json.dumps(sent))) is first
    assert first == CodedConcept((Code("http://loinc.org", "1742-6"),))
    assert first.keys == frozenset({("http://loinc.org", "1742-6")})


def test_concepts_that_differ_in_any_part_are_not_shared() -> None:
    base = {"coding": [{"system": LOINC, "code": "1742-6", "display": "ALT"}], "text": "ALT"}
    variants = [
        {**base, "text": "SGPT"},
        {**base, "coding": [{"system": LOINC, "code": "1742-6", "display": "SGPT"}]},
        {**base, "coding": [{"system": LOINC, "code": "1920-8", "display": "ALT"}]},
        {**base, "coding": [*base["coding"], {"system": LOINC, "code": "1920-8"}]},
    ]
    concept = CodedConcept.from_fhir(base)
    for variant in variants:
        other = CodedConcept.from_fhir(variant)
        assert other != concept
        assert other is CodedConcept.from_fhir(variant)  # each is remembered on its own


def test_distinct_codeable_concepts_beyond_the_bound_do_not_grow_the_memory() -> None:
    for n in range(terms._MAX_MEMO + 50):
        CodedConcept.from_fhir({"coding": [{"system": RXNORM, "code": f"8{n:07d}"}]})
    assert len(terms._CONCEPTS) <= terms._MAX_MEMO


def test_a_codeable_concept_with_long_text_is_read_but_not_remembered() -> None:
    long_text = "x" * (terms._MAX_MEMO_TEXT + 1)
    concept = CodedConcept.from_fhir({"text": long_text})
    assert concept.text == long_text
    assert CodedConcept.from_fhir({"text": long_text}) is not concept


def test_a_builder_remembers_the_analytes_of_short_codes_only_and_a_bounded_number() -> None:
    config = load_configuration(DEFAULT_CARDS_DIR, REGISTRY)
    builder = RecordBuilder(config.terminology, config.analytes)
    alt = CodedConcept((Code(LOINC, "1742-6"),))
    assert [a.id for a in builder._analytes_of(alt)] == ["alt"]
    assert builder._analytes_by_keys[alt.keys] == builder._analytes_of(alt)
    long_code = CodedConcept((Code(LOINC, "1742-6"), Code("urn:x", "y" * 600)))
    assert [a.id for a in builder._analytes_of(long_code)] == ["alt"]
    assert long_code.keys not in builder._analytes_by_keys
    for n in range(record_module._MAX_REMEMBERED + 10):
        builder._analytes_of(CodedConcept((Code(LOINC, f"{n}-0"),)))
    assert len(builder._analytes_by_keys) <= record_module._MAX_REMEMBERED
