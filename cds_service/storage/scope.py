"""Who a card was issued to: the client (the JWT ``iss``) and its tenant.

Cards, feedback and the analytics of feedback are kept per scope: a client only ever sees or
affects feedback on cards issued to the same client and tenant.

``NO_CLIENT`` (both empty) is what is stored when no client was verified: development mode
(``CDS_AUTH=off``), and cards and feedback recorded before the scope was stored (migration
0005). A trusted client's ``iss`` is never empty, so those rows never match a verified client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_SCOPE_CHARS = 256  # the width of the client and tenant columns


class ScopeRefused(ValueError):
    """A verified token whose iss or tenant cannot be stored (not printable text, or too long)."""


@dataclass(frozen=True)
class ClientScope:
    client: str
    tenant: str

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> ClientScope:
        """The scope of verified JWT ``claims``; an absent tenant claim is the empty tenant."""
        iss, tenant = claims.get("iss"), claims.get("tenant", "")
        for name, value in (("iss", iss), ("tenant", tenant)):
            # Printable only: NUL, control characters and lone surrogates cannot be stored.
            if (
                not isinstance(value, str)
                or len(value) > MAX_SCOPE_CHARS
                or not value.isprintable()
            ):
                raise ScopeRefused(
                    f"claim {name} must be printable text of at most {MAX_SCOPE_CHARS} characters"
                )
        return cls(str(iss), str(tenant))

    def describe(self) -> str:
        if self == NO_CLIENT:
            return "no verified client (development mode, or recorded before scoping)"
        return f"client {self.client!r}, tenant {self.tenant or '(none)'!r}"


NO_CLIENT = ClientScope("", "")
