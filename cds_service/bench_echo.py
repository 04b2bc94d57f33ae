"""``POST /bench/echo``: the load benchmark's ceiling, registered only when CDS_BENCH_ECHO=on.

It reads the body exactly as a hook call does (media type, size limit, ``json.loads``) and answers
a fixed empty response, so bench/ can put the service's cost next to the framework's own cost of
receiving and parsing the same body, under the same gunicorn configuration.
"""

from __future__ import annotations

from flask import Blueprint, Response

from cds_service.api import json_response, read_json_body

echo_bp = Blueprint("bench_echo", __name__)


@echo_bp.post("/bench/echo")
def echo() -> Response:
    read_json_body()
    return json_response({"cards": []})
