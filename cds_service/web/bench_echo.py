"""``POST /bench/echo``: the load benchmark's ceiling, registered only when CDS_BENCH_ECHO=on.

It reads the body as a hook call does (media type, size limit) and parses it with the standard
``json.loads`` (issue 7's definition of the ceiling), or with the service's own faster parser
(``?parser=service``, cds_service/common/jsonparse.py), and answers a fixed empty response.
bench/ puts the service's cost next to this cost of receiving and parsing the same body, under
the same gunicorn configuration.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, request

from cds_service.web.api import json_response, read_json_body

echo_bp = Blueprint("bench_echo", __name__)


@echo_bp.post("/bench/echo")
def echo() -> Response:
    if request.args.get("parser") == "service":
        read_json_body(limits=False)
    else:
        read_json_body(json.loads, limits=False)
    return json_response({"cards": []})
