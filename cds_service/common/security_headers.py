"""The security headers every answer of the service carries, whoever writes it: the Flask
application (web/http_headers.py) or gunicorn itself (ops/gunicorn_worker.py)."""

from __future__ import annotations

# The API answers JSON only: nothing may be rendered, framed, sniffed, cached or referred.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "cross-origin",
}
HSTS = "max-age=31536000; includeSubDomains"


def wants_hsts(public_base_url: str) -> bool:
    """Behind TLS (the public base is https) browsers must never fall back to plain HTTP."""
    return public_base_url.lower().startswith("https://")
