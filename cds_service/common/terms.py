"""Configured word lists as one case-insensitive regex (phenotype words, route words)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache


def term_pattern(terms: Iterable[str], *, whole_word: bool = True) -> re.Pattern[str] | None:
    """Any of ``terms``, starting at a word start; with ``whole_word`` also ending at a word end
    (otherwise "inhal" matches inhaler and inhalation). None when there are no terms."""
    # Rules ask for their configured lists once per course per call: built once per list.
    return _compiled(tuple(terms), whole_word)


@lru_cache(maxsize=256)
def _compiled(terms: tuple[str, ...], whole_word: bool) -> re.Pattern[str] | None:
    cleaned = sorted({t.strip() for t in terms if t.strip()}, key=len, reverse=True)
    if not cleaned:
        return None
    alternatives = "|".join(re.escape(t) for t in cleaned)
    end = r"(?![A-Za-z0-9])" if whole_word else ""
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives}){end}", re.I)


def first_match(pattern: re.Pattern[str] | None, texts: Iterable[str]) -> str | None:
    """The first matching term found in ``texts``, as written there."""
    if pattern is None:
        return None
    for text in texts:
        match = pattern.search(text) if text else None
        if match:
            return match.group(0)
    return None
