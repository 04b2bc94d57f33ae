"""``GET /analytics/feedback`` (JSON) and ``.../override-rate.svg``: the feedback report over HTTP,
behind the same client authentication as the CDS services, on the caller's own cards only (those
issued to its client and tenant)."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, request

from cds_service.common.errors import BadRequest
from cds_service.informatics.analytics import ReportScope, feedback_report
from cds_service.web.api import json_response, runtime

analytics_bp = Blueprint("analytics", __name__)


@analytics_bp.get("/analytics/feedback")
def feedback_json() -> Response:
    scope = ReportScope.of(runtime().authenticate(request))
    return json_response(feedback_report(runtime().store, _since(), scope=scope))


@analytics_bp.get("/analytics/feedback/override-rate.svg")
def override_rate_plot() -> Response:
    # matplotlib (with numpy, ~55 MB per worker) is loaded by the first plot, not at start-up:
    # most workers never draw one.
    from cds_service.informatics.override_plot import override_rate_svg  # noqa: PLC0415

    scope = ReportScope.of(runtime().authenticate(request))
    svg = override_rate_svg(feedback_report(runtime().store, _since(), scope=scope))
    return Response(svg, mimetype="image/svg+xml")


def _since() -> date | None:
    raw = request.args.get("since")
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise BadRequest(
            f"since must be a date (YYYY-MM-DD), got {raw!r}", expression="since"
        ) from exc
