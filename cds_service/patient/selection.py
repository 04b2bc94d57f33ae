"""Read only what rules need: the Observations a rule may read, found by their codes alone.

Rules read Observations only through value sets of the configuration (analytes, pregnancy
status, metabolite panels, ...). So an Observation whose codes are in none of them is never read
by any rule, and checking it (``fhir.reading``) and building it into the record would be work
thrown away: in a five-year chart most results are haemoglobin and platelet counts no rule asks
for. This module indexes an Observation by its ``code`` without checking it, and keeps it when:

- one of its codes is in a value set of the configuration (including ICD-10 descendants), or
- its codes cannot be indexed without checking (``code`` or ``coding`` of the wrong shape, a
  coding without a string ``system`` and ``code``): it may be one a rule needs, so it is read
  and, when unusable, named on the card as before, or
- it carries other codes or results a reader may use (``component``, ``hasMember``,
  ``contained``: a panel dates its members).

What is left out is counted for the log, never named on the card: it was not read, and a
problem in a resource no rule reads is not a gap in the decision (docs/reading-policy.md).

A hook call narrows this to the rules it triggers (``ObservationSelection``): a rule declares the
terminology it reads (``RuleSpec.terminology`` and its ``*_valueset``/``*_analyte`` parameters),
and the record refuses a read of a value set or analyte outside the selection
(``UndeclaredRead``), so an undeclared read can never pass as "no result".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cds_service.patient.terminology import Analyte, CodedConcept, ValueSet

# Elements whose content a reader may use beside the Observation's own code (see readings.py).
_NESTED_READINGS = ("component", "hasMember", "contained")


@dataclass(frozen=True)
class CodeIndex:
    """Every code the configuration's value sets select: a set lookup per coding."""

    keys: frozenset[tuple[str, str]]
    with_descendants: tuple[ValueSet, ...]  # value sets whose entries also cover child codes

    @classmethod
    def of(cls, valuesets: Iterable[ValueSet]) -> CodeIndex:
        valuesets = list(valuesets)
        return cls(
            frozenset(key for vs in valuesets for key in vs.codes),
            tuple(vs for vs in valuesets if vs.ancestors),
        )

    def selects(self, keys: frozenset[tuple[str, str]]) -> bool:
        if not self.keys.isdisjoint(keys):
            return True
        return any(vs.matches_keys(keys) for vs in self.with_descendants)


class UndeclaredRead(RuntimeError):
    """A rule read Observations of a value set or analyte its call did not select: a missing
    declaration, never a clinical answer (the engine reads the whole chart again). Not a
    LookupError: no handler of "not found" may take it for an empty result."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} was not selected for reading")
        self.kind = kind
        self.name = name


@dataclass(frozen=True)
class ObservationSelection:
    """The Observations one call reads: those coded in the value sets its rules declare."""

    index: CodeIndex
    valuesets: frozenset[str]  # their ids
    analytes: frozenset[str]  # analytes whose value set is among them

    @classmethod
    def of(cls, valuesets: Iterable[ValueSet], analytes: Iterable[Analyte]) -> ObservationSelection:
        """The caller passes the value sets the rules name together with those they include
        (a member's codes are a subset: a rule may ask for it by its own id)."""
        valuesets = list(valuesets)
        ids = frozenset(vs.id for vs in valuesets)
        return cls(
            CodeIndex.of(valuesets),
            ids,
            frozenset(a.id for a in analytes if a.valueset.id in ids),
        )

    def require_valueset(self, valueset_id: str) -> None:
        if valueset_id not in self.valuesets:
            raise UndeclaredRead("value set", valueset_id)

    def require_analyte(self, analyte_id: str) -> None:
        if analyte_id not in self.analytes:
            raise UndeclaredRead("analyte", analyte_id)


def code_keys(resource: Mapping[str, Any]) -> frozenset[tuple[str, str]] | None:
    """The value-set keys of the resource's ``code``; None when they cannot be known without
    reading the resource under the policy (a shape the reader might repair or refuse)."""
    code = resource.get("code")
    if not isinstance(code, dict):  # parsed JSON: dict, not the (slower to test) Mapping ABC
        return None
    codings = code.get("coding", [])
    if not isinstance(codings, list):
        return None
    for coding in codings:
        if not isinstance(coding, dict):
            return None
        if not isinstance(coding.get("system"), str) or not isinstance(coding.get("code"), str):
            return None
    # Every coding counts: the keys are those the record's concept will have (one shared
    # concept per distinct code, so the record's own reading of it is then a lookup).
    return CodedConcept.from_fhir(code).keys


def observations_rules_may_read(
    observations: Sequence[Mapping[str, Any]], index: CodeIndex
) -> tuple[list[Mapping[str, Any]], int]:
    """(the Observations to read, how many were left unread because no value set selects them)."""
    kept: list[Mapping[str, Any]] = []
    for observation in observations:
        if any(name in observation for name in _NESTED_READINGS):
            kept.append(observation)
            continue
        keys = code_keys(observation)
        if keys is None or index.selects(keys):
            kept.append(observation)
    return kept, len(observations) - len(kept)
