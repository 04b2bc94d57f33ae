"""Numbers from FHIR JSON."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


def decimal_or_none(value: Any) -> Decimal | None:
    """A JSON number (or numeric string) as Decimal; None for anything else, booleans included."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        # str() first: floats from json.loads must not carry binary noise into Decimal.
        return Decimal(str(value))
    except InvalidOperation:
        return None
