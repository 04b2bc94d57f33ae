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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cds_service.patient.terminology import ValueSet, code_key

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


def code_keys(resource: Mapping[str, Any]) -> frozenset[tuple[str, str]] | None:
    """The value-set keys of the resource's ``code``; None when they cannot be known without
    reading the resource under the policy (a shape the reader might repair or refuse)."""
    code = resource.get("code")
    if not isinstance(code, dict):  # parsed JSON: dict, not the (slower to test) Mapping ABC
        return None
    codings = code.get("coding", [])
    if not isinstance(codings, list):
        return None
    keys = []
    for coding in codings:
        if not isinstance(coding, dict):
            return None
        system, value = coding.get("system"), coding.get("code")
        if not isinstance(system, str) or not isinstance(value, str):
            return None
        keys.append(code_key(system, value))
    return frozenset(keys)


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
