"""Route of a medication order or record: systemic, not systemic, or not recorded.

Some drug classes (corticosteroids, budesonide) also have products that act locally: inhaled,
nasal, topical, ophthalmic, otic, rectal foam or enema. Such a course is not systemic treatment
and never counts as, say, AIH treatment. The route is read, in this order, from
1. a product coding listed as systemic (e.g. ATC A07EA06, oral budesonide) -> systemic;
2. a product or route coding listed as not systemic (ATC R03BA02, a SNOMED route code) -> not
   systemic;
3. a not-systemic term in the product name, the route text or display, or the dosage text;
4. a systemic term (oral, tablet, capsule, ...) -> systemic;
5. otherwise "unknown", which rules treat as systemic (the safer reading) and say so.
Codes and terms are configuration (``routes`` in ``cards/terminology.yaml``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cds_service.common.terms import first_match, term_pattern

SYSTEMIC = "systemic"
NON_SYSTEMIC = "non-systemic"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Route:
    kind: str  # SYSTEMIC, NON_SYSTEMIC or UNKNOWN
    evidence: str

    @property
    def systemic(self) -> bool:
        return self.kind != NON_SYSTEMIC


ROUTE_NOT_RECORDED = Route(UNKNOWN, "no route or dose form recorded")


@dataclass(frozen=True)
class RoutePolicy:
    """Which classes depend on the route, and the codes and terms that decide it."""

    classes: frozenset[str] = frozenset()
    systemic_codes: frozenset[str] = frozenset()
    non_systemic_codes: frozenset[str] = frozenset()
    systemic_terms: tuple[str, ...] = ()
    non_systemic_terms: tuple[str, ...] = ()
    _patterns: tuple[tuple[str, re.Pattern[str] | None], ...] = field(
        default=(), compare=False, repr=False
    )

    def __post_init__(self) -> None:
        # terms match at a word start: "inhal" matches inhaler, inhalation, inhaled
        patterns = (
            (NON_SYSTEMIC, term_pattern(self.non_systemic_terms, whole_word=False)),
            (SYSTEMIC, term_pattern(self.systemic_terms, whole_word=False)),
        )
        object.__setattr__(self, "_patterns", patterns)

    def classify(self, codes: Iterable[str], texts: Iterable[str]) -> Route:
        """``codes``: product and route codes; ``texts``: product name, route and dosage text."""
        codes = [c.strip() for c in codes]
        for code in codes:
            if code in self.systemic_codes:
                return Route(SYSTEMIC, f"coded {code}")
        for code in codes:
            if code in self.non_systemic_codes:
                return Route(NON_SYSTEMIC, f"coded {code}")
        texts = [t for t in texts if t]
        for kind, pattern in self._patterns:
            term = first_match(pattern, texts)
            if term is not None:
                return Route(kind, f"{term!r} in the product name, route or dosage text")
        return ROUTE_NOT_RECORDED

    def counted_classes(self, classes: frozenset[str], route: Route) -> frozenset[str]:
        """The classes a course counts for: without the route-dependent ones when it is not
        systemic."""
        return classes if route.systemic else classes - self.classes
