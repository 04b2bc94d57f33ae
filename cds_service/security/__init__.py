"""Client JWT verification, JWKS and the in-process replay cache.
May import: hooks and the layers below."""
