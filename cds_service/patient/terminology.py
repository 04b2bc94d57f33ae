"""Value sets (FHIR ValueSet JSON, ``expansion.contains``) and code / text matching."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from cds_service.patient.routes import RoutePolicy
from cds_service.patient.units import normalise_unit, normalised_factors, unit_candidates

# Systems are compared after these aliases, because EHRs send both spellings.
SYSTEM_ALIASES = {
    "urn:oid:2.16.840.1.113883.6.88": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "urn:oid:2.16.840.1.113883.6.1": "http://loinc.org",
    "urn:oid:2.16.840.1.113883.6.96": "http://snomed.info/sct",
    "urn:oid:2.16.840.1.113883.6.73": "http://www.whocc.no/atc",
    "http://snomed.info/sct/": "http://snomed.info/sct",
    "urn:oid:2.16.840.1.113883.6.90": "http://hl7.org/fhir/sid/icd-10-cm",
    "urn:oid:2.16.840.1.113883.6.3": "http://hl7.org/fhir/sid/icd-10",
}
ICD10_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10"})
# A value-set entry with this extension (valueBoolean true) also matches every code below it.
# In ICD-10 (both systems) a code's children are the codes that start with it: K74.6 covers
# K74.60 and K74.69, O26 covers O26.8 and O26.891.
DESCENDANTS_EXTENSION = "urn:aih-cds:includes-descendants"
_ICD10_CATEGORY_LENGTH = 3
_MAX_MEMO = 4096  # concepts remembered (Terminology.classes_of, CodedConcept.from_fhir)
_MAX_MEMO_TEXT = 500  # characters of names and text a remembered concept may carry


# CodeableConcepts already read, by what they were made of (CodedConcept.from_fhir). Bounded like
# the other memos: short concepts only, forgotten wholesale when full, so client text cannot
# grow it and nothing lingers for long under varied traffic.
_ConceptKey = tuple[str, tuple[tuple[str, str, str], ...]]  # text, (system, code, display)...
_CONCEPTS: dict[_ConceptKey, CodedConcept] = {}


def _remember_concept(key: _ConceptKey, concept: CodedConcept) -> None:
    text, codings = key
    if len(text) + sum(len(s) + len(c) + len(d) for s, c, d in codings) > _MAX_MEMO_TEXT:
        return
    if len(_CONCEPTS) >= _MAX_MEMO:
        _CONCEPTS.clear()
    _CONCEPTS[key] = concept


def normalise_system(system: str) -> str:
    system = system.strip()
    return SYSTEM_ALIASES.get(system, system)


def normalise_code(system: str, code: str) -> str:
    """ICD-10 codes are sent dotted (K75.4) and undotted (K754), in either case; the other
    systems' codes are compared as sent (stripped)."""
    code = code.strip()
    if system in ICD10_SYSTEMS:
        return code.replace(".", "").upper()
    return code


def code_key(system: str, code: str) -> tuple[str, str]:
    """The (system, code) pair value sets are keyed by."""
    normalised = normalise_system(system)
    return normalised, normalise_code(normalised, code)


@dataclass(frozen=True)
class Code:
    system: str
    code: str
    display: str = ""


@dataclass(frozen=True)
class ValueSet:
    id: str
    url: str
    title: str
    codes: frozenset[tuple[str, str]]
    displays: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # entries that also match their descendants (ICD-10 prefixes), keyed like ``codes``
    ancestors: frozenset[tuple[str, str]] = frozenset()
    # ids of the value sets this one includes (``compose.include.valueSet``), directly
    includes: tuple[str, ...] = ()
    # this file's own entries (``expansion.contains``), before the included value sets
    own_codes: frozenset[tuple[str, str]] = frozenset()

    def with_members(self, members: Sequence[ValueSet]) -> ValueSet:
        """This value set with the (already composed) value sets it includes: their codes,
        ancestors and displays join its own (its own displays win)."""
        displays: dict[tuple[str, str], str] = {}
        for member in members:
            displays.update(member.displays)
        displays.update(self.displays)
        return replace(
            self,
            codes=self.codes.union(*(m.codes for m in members)),
            ancestors=self.ancestors.union(*(m.ancestors for m in members)),
            displays=displays,
            includes=tuple(m.id for m in members),
        )

    def contains(self, system: str, code: str) -> bool:
        return self.matches_keys(frozenset({code_key(system, code)}))

    def matches_keys(self, keys: frozenset[tuple[str, str]]) -> bool:
        if not self.codes.isdisjoint(keys):
            return True
        return bool(self.ancestors) and any(self._below_ancestor(key) for key in keys)

    def _below_ancestor(self, key: tuple[str, str]) -> bool:
        system, code = key
        if system not in ICD10_SYSTEMS:
            return False
        return any(
            (system, code[:length]) in self.ancestors
            for length in range(_ICD10_CATEGORY_LENGTH, len(code))
        )

    def matches_any(self, codes: Iterable[Code]) -> bool:
        return any(self.contains(c.system, c.code) for c in codes)


@dataclass(frozen=True)
class NameMatcher:
    """Name fallback: whole-word, case-insensitive match in coding display or text. A name may
    stand for an ingredient (a brand or biosimilar name: "Enbrel" for etanercept); ``find``
    gives the ingredient."""

    names: tuple[str, ...]
    pattern: re.Pattern[str] | None = None
    ingredient_of: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls, names: Sequence[str], ingredient_of: Mapping[str, str] | None = None
    ) -> NameMatcher:
        cleaned = tuple(n.strip().lower() for n in names if n.strip())
        if not cleaned:
            return cls(())
        alternatives = "|".join(re.escape(n) for n in sorted(cleaned, key=len, reverse=True))
        return cls(
            cleaned,
            re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])", re.I),
            {k.strip().lower(): v.strip().lower() for k, v in (ingredient_of or {}).items()},
        )

    def matches(self, texts: Iterable[str]) -> bool:
        return self.find(texts) is not None

    def find(self, texts: Iterable[str]) -> str | None:
        """The ingredient of the first name found, lower-cased (for short names in card
        text): "etanercept" for "Enbrel 50 mg/mL"."""
        if self.pattern is None:
            return None
        for text in texts:
            match = self.pattern.search(text) if text else None
            if match:
                name = match.group(0).lower()
                return self.ingredient_of.get(name, name)
        return None


@dataclass(frozen=True)
class CodedConcept:
    """A CodeableConcept reduced to what matching needs."""

    codes: tuple[Code, ...] = ()
    text: str = ""

    @classmethod
    def from_fhir(cls, value: Any) -> CodedConcept:
        """The concept of a CodeableConcept. Equal codings give one shared (immutable) concept:
        a five-year chart repeats a handful of codes hundreds of times, and a shared concept
        normalises its codes and works out its value-set keys once (``_CONCEPTS``)."""
        # dict first: parsed JSON, and a much cheaper test than the Mapping ABC
        if not isinstance(value, dict | Mapping):
            return cls()
        # What the concept is made of, as sent: normalising is a function of these alone.
        sent: list[tuple[str, str, str]] = []
        for coding in value.get("coding") or ():
            if not isinstance(coding, dict | Mapping):
                continue
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str):
                display = coding.get("display")
                sent.append((system, code, display if isinstance(display, str) else ""))
        text = value.get("text")
        key = (text if isinstance(text, str) else "", tuple(sent))
        concept = _CONCEPTS.get(key)
        if concept is None:
            codes = tuple(Code(normalise_system(s), c.strip(), d) for s, c, d in key[1])
            concept = cls(codes, key[0])
            _remember_concept(key, concept)
        return concept

    def texts(self) -> list[str]:
        return [self.text, *(c.display for c in self.codes)]

    def label(self) -> str:
        """The best human name for the concept, for card text."""
        if self.text:
            return self.text
        for c in self.codes:
            if c.display:
                return c.display
        return self.codes[0].code if self.codes else "unnamed concept"

    @property
    def keys(self) -> frozenset[tuple[str, str]]:
        """The codes as value-set keys, normalised once (matching runs per value set).
        Cached by hand: functools.cached_property takes a lock on every read in 3.11."""
        keys: frozenset[tuple[str, str]] | None = self.__dict__.get("_keys")
        if keys is None:
            keys = frozenset(code_key(c.system, c.code) for c in self.codes)
            object.__setattr__(self, "_keys", keys)  # frozen: only this cache is ever set
        return keys

    def in_valueset(self, valueset: ValueSet) -> bool:
        return valueset.matches_keys(self.keys)  # == valueset.matches_any(self.codes)


@dataclass(frozen=True)
class DrugClass:
    """A drug class: a value set plus optional ingredient names for the text fallback."""

    id: str
    valueset: ValueSet
    names: NameMatcher

    def matches(self, concept: CodedConcept, *, name_fallback: bool) -> bool:
        if concept.in_valueset(self.valueset):
            return True
        return name_fallback and self.names.matches(concept.texts())


@dataclass(frozen=True)
class Analyte:
    """A lab analyte: its value set, canonical unit, accepted units and default ULN."""

    id: str
    valueset: ValueSet
    unit: str
    factors: Mapping[str, Decimal]
    default_uln: Decimal | None
    default_uln_by_sex: Mapping[str, Decimal]
    # factors by normalised spelling (cds_service/patient/units.py), built once
    by_spelling: Mapping[str, Decimal] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.by_spelling:
            object.__setattr__(self, "by_spelling", normalised_factors(self.factors))

    def factor_of(self, quantity: Mapping[str, Any]) -> tuple[str, Decimal | None]:
        """(the unit as reported, its factor to the canonical unit or None when unknown).
        The UCUM ``code`` is tried first, then the ``unit`` text."""
        candidates = unit_candidates(quantity)
        for spelling in candidates:
            factor = self.by_spelling.get(normalise_unit(spelling))
            if factor is not None:
                return spelling, factor
        return (candidates[0] if candidates else ""), None


@dataclass(frozen=True)
class Terminology:
    """All value sets and drug classes of one configuration."""

    valuesets: Mapping[str, ValueSet]
    drug_classes: Mapping[str, DrugClass]
    name_fallback: bool = True
    # exposures of a drug chain into one course while the gaps are shorter than this (days)
    default_course_gap_days: int = 30
    course_gap_days_by_class: Mapping[str, int] = field(default_factory=dict)
    routes: RoutePolicy = field(default_factory=RoutePolicy)
    _classes_memo: dict[CodedConcept, frozenset[str]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def valueset(self, vs_id: str) -> ValueSet:
        return self.valuesets[vs_id]

    def course_gap_days(self, classes: Iterable[str]) -> int:
        """The longest configured gap among the classes, else the default."""
        gaps = [
            self.course_gap_days_by_class[c] for c in classes if c in self.course_gap_days_by_class
        ]
        return max(gaps, default=self.default_course_gap_days)

    def classes_of(self, concept: CodedConcept) -> frozenset[str]:
        # A chart names few drugs many times (30 orders, a handful of products): each concept
        # is matched against every class once. Bounded: short concepts only, at most _MAX_MEMO,
        # forgotten wholesale when full.
        memo = self._classes_memo
        found = memo.get(concept)
        if found is None:
            found = frozenset(
                cid
                for cid, drug_class in self.drug_classes.items()
                if drug_class.matches(concept, name_fallback=self.name_fallback)
            )
            if sum(map(len, concept.texts())) <= _MAX_MEMO_TEXT:
                if len(memo) >= _MAX_MEMO:
                    memo.clear()
                memo[concept] = found
        return found

    def short_name(self, concept: CodedConcept, drug_class: str) -> str:
        """A short drug name for summaries: "azathioprine" rather than "Imuran 50 MG Oral
        Tablet"; the ingredient name found in the text, else the value set's display of a
        matching ingredient-level code, else the concept's own label."""
        cls = self.drug_classes.get(drug_class)
        if cls is not None:
            displays = [
                cls.valueset.displays.get(code_key(c.system, c.code), "")
                for c in concept.codes
                if cls.valueset.contains(c.system, c.code)
            ]
            name = cls.names.find([*concept.texts(), *displays])
            if name:
                return name
            shortest = min((d for d in displays if d), key=len, default="")
            if shortest:
                return shortest
        return concept.label()


def valueset_from_fhir(resource: Mapping[str, Any]) -> ValueSet:
    """Build a ValueSet from validated FHIR JSON (validation happens in configuration): its own
    entries only; ``compose.include.valueSet`` is resolved by the loader (``with_members``)."""
    codes: set[tuple[str, str]] = set()
    ancestors: set[tuple[str, str]] = set()
    displays: dict[tuple[str, str], str] = {}
    for entry in resource["expansion"]["contains"]:
        key = code_key(entry["system"], entry["code"])
        codes.add(key)
        displays[key] = entry.get("display", "")
        if includes_descendants(entry):
            ancestors.add(key)
    return ValueSet(
        id=resource["id"],
        url=resource.get("url", ""),
        title=resource.get("title") or resource.get("name") or resource["id"],
        codes=frozenset(codes),
        displays=displays,
        ancestors=frozenset(ancestors),
        own_codes=frozenset(codes),
    )


def includes_descendants(entry: Mapping[str, Any]) -> bool:
    return any(
        isinstance(x, Mapping)
        and x.get("url") == DESCENDANTS_EXTENSION
        and x.get("valueBoolean") is True
        for x in entry.get("extension") or ()
    )
