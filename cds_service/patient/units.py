"""Unit spellings as EHRs send them, matched against the spellings configured per analyte.

Two spellings are the same unit when they agree after normalisation: Unicode compatibility form
(the micro sign U+00B5 and the Greek mu U+03BC both become ``u``), no white space anywhere, and
case folded. Case carries no meaning for the units configured here (``mg/dl`` is ``mg/dL``,
``U/l`` is ``U/L``); a site that adds a unit whose meaning depends on case (``Mm`` vs ``mm``)
must not list both spellings for one analyte, and configuration refuses two spellings that
normalise alike with different factors. A UCUM-coded quantity's ``code`` is tried before its
``unit`` text, and the text is tried when the code is not a known spelling.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

COMPARATORS = frozenset({"<", "<=", ">=", ">"})


def normalise_unit(unit: str) -> str:
    """Without spaces, case-folded, micro signs (U+00B5, U+03BC) as ``u`` and the
    multiplication sign as ``x``."""
    # A few dozen spellings recur in every chart: short ones are remembered (bounded).
    return _remembered(unit) if len(unit) <= _REMEMBERED_LENGTH else _normalised(unit)


_REMEMBERED_LENGTH = 40


@lru_cache(maxsize=1024)
def _remembered(unit: str) -> str:
    return _normalised(unit)


def _normalised(unit: str) -> str:
    text = unicodedata.normalize("NFKC", unit).replace("\u03bc", "u").replace("\u00d7", "x")
    return "".join(text.split()).casefold()


def same_unit(unit: str, other: str) -> bool:
    """Unit spellings compared after normalisation; never converted."""
    return normalise_unit(unit) == normalise_unit(other)


def normalised_factors(factors: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Configured spellings by normalised spelling; ValueError when two spellings normalise
    alike but carry different factors."""
    table: dict[str, Decimal] = {}
    for spelling, factor in factors.items():
        key = normalise_unit(spelling)
        if key in table and table[key] != factor:
            raise ValueError(f"{spelling!r} normalises like another spelling with another factor")
        table[key] = factor
    return table


def unit_candidates(quantity: Mapping[str, Any]) -> list[str]:
    """The spellings a Quantity gives for its unit, ``code`` first, stripped, non-empty."""
    found = []
    for key in ("code", "unit"):
        value = quantity.get(key)
        if isinstance(value, str) and value.strip() and value.strip() not in found:
            found.append(value.strip())
    return found


def comparator_of(quantity: Mapping[str, Any]) -> str:
    """The Quantity's comparator (``<``, ``<=``, ``>=``, ``>``), or "" for an exact value."""
    value = quantity.get("comparator")
    return value.strip() if isinstance(value, str) and value.strip() in COMPARATORS else ""
