"""Response headers added to every answer: security headers and the CORS allowlist."""

from __future__ import annotations

from flask import Flask, Response, request

from cds_service.common.settings import Settings

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


def register_response_headers(app: Flask, settings: Settings) -> None:
    allowed = frozenset(settings.allowed_origins)
    # Behind TLS (the public base is https) browsers must never fall back to plain HTTP.
    hsts = settings.public_base_url.lower().startswith("https://")

    @app.after_request
    def add_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if hsts:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        _add_cors(response, allowed)
        return response


def _add_cors(response: Response, allowed: frozenset[str]) -> None:
    origin = request.headers.get("Origin")
    response.headers.add("Vary", "Origin")
    if not origin or not ("*" in allowed or origin in allowed):
        return
    response.headers["Access-Control-Allow-Origin"] = "*" if "*" in allowed else origin
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
    response.headers["Access-Control-Max-Age"] = "600"
