"""Response headers added to every answer: security headers and the CORS allowlist. (gunicorn's
own error answers get the same security headers from ops/gunicorn_worker.py.)"""

from __future__ import annotations

from flask import Flask, Response, request

from cds_service.common.security_headers import HSTS, SECURITY_HEADERS, wants_hsts
from cds_service.common.settings import Settings

__all__ = ["HSTS", "SECURITY_HEADERS", "register_response_headers"]


def register_response_headers(app: Flask, settings: Settings) -> None:
    allowed = frozenset(settings.allowed_origins)
    hsts = wants_hsts(settings.public_base_url)

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
