"""What the drug-class and unit lookups remember stays bounded, whatever clients send, and never
changes an answer (cds_service/patient/terminology.py, units.py)."""

from __future__ import annotations

from cds_service.common.settings import DEFAULT_CARDS_DIR
from cds_service.config.configuration import load_configuration
from cds_service.patient import terminology as terms
from cds_service.patient.terminology import Code, CodedConcept
from cds_service.patient.units import normalise_unit
from cds_service.rules.registry import REGISTRY

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


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
