"""The demo EHR page (``/demo``): synthetic patients, a lab chart, draft orders signed through
the real hook endpoints, cards rendered as EHRs do, and real feedback.

Served only when enabled (``CDS_DEMO=on``, or ``auto`` with ``CDS_AUTH=off``). The page is
static files plus a small JSON API that builds hook requests from the demo charts server-side;
the browser itself calls ``/cds-services/...`` and its feedback endpoint.
"""

from __future__ import annotations

import mimetypes
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Flask, Response, current_app, redirect
from werkzeug.wrappers import Response as WerkzeugResponse

from cds_service.common.errors import BadRequest, NotFound
from cds_service.demo.orders import BY_KEY, CATALOGUE, draft_order
from cds_service.demo.patients import DemoPatient, load_demo_patients, patient_view_model
from cds_service.informatics.charts import Chart, stable_hook_instance
from cds_service.web.api import json_response, read_json_body, runtime

STATIC = Path(__file__).resolve().parent / "static"
DEMO_USER = "Practitioner/demo-prescriber"
MAX_ORDERS = 10
# Everything the page needs comes from this origin; nothing inline, nothing framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

demo_bp = Blueprint("demo", __name__)
NOT_FOUND_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Patient not found - AIH CDS demo EHR</title>
  <link rel="stylesheet" href="/demo/static/demo.css">
</head>
<body>
  <header class="topbar"><h1>AIH CDS demo EHR</h1></header>
  <main id="main" class="single">
    <section class="panel" id="not-found">
      <h2>No demo patient "{patient}"</h2>
      <p>This lab-trend link names a patient the demo does not have. Demo patients come from the
      test scenarios, and their links change when the scenarios do.</p>
      <p><a href="/demo">Choose a patient on the demo page</a></p>
    </section>
  </main>
</body>
</html>
"""


def lab_trend_path(patient_id: str) -> str:
    """The stable URL of a patient's lab-trend view (cards link here)."""
    return f"/demo/patients/{quote(patient_id, safe='')}/labs"


def register_demo(app: Flask, scenarios_dir: Path) -> None:
    patients = load_demo_patients(scenarios_dir)
    app.extensions["aih_demo"] = patients
    app.extensions["aih_cds"].patient_pages = lambda patient_id: (
        {"lab-trend": lab_trend_path(patient_id)} if patient_id in patients else {}
    )
    app.register_blueprint(demo_bp)
    if not app.extensions["aih_cds"].settings.auth:  # development mode: the root opens the demo
        app.add_url_rule("/", "demo_root", _to_demo_page)


def _to_demo_page() -> WerkzeugResponse:
    return redirect("/demo", code=302)


def _patients() -> dict[str, DemoPatient]:
    patients: dict[str, DemoPatient] = current_app.extensions["aih_demo"]
    return patients


def _patient(patient_id: str) -> DemoPatient:
    patient = _patients().get(patient_id)
    if patient is None:
        raise NotFound(f"no demo patient {patient_id!r}", expression="patientId")
    return patient


@demo_bp.after_request
def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@demo_bp.get("/demo")
@demo_bp.get("/demo/")
def page() -> Response:
    return _static("index.html")


@demo_bp.get("/demo/patients/<patient_id>/labs")
def lab_trend_page(patient_id: str) -> Response:
    if patient_id not in _patients():  # a person followed a link: a page, not JSON
        return Response(
            NOT_FOUND_PAGE.replace("{patient}", escape(patient_id)),
            status=404,
            mimetype="text/html",
        )
    return _static("index.html")


@demo_bp.get("/demo/static/<name>")
def static_file(name: str) -> Response:
    return _static(name)


def _static(name: str) -> Response:
    """The page's few small files, read whole (no open file handles left to the server)."""
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise NotFound(f"no demo file {name!r}")
    mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(path.read_bytes(), mimetype=mimetype)


@demo_bp.get("/demo/api/patients")
def patients() -> Response:
    now = runtime().clock()
    listed = sorted(_patients().values(), key=lambda p: p.scenario.name)
    return json_response({"patients": [p.summary(now) for p in listed], "auth": _auth_on()})


@demo_bp.get("/demo/api/patients/<patient_id>")
def patient(patient_id: str) -> Response:
    model = patient_view_model(_patient(patient_id), runtime().engine.builder, runtime().clock())
    model["labTrendUrl"] = lab_trend_path(patient_id)
    return json_response(model)


@demo_bp.get("/demo/api/orderables")
def orderables() -> Response:
    return json_response({"orderables": [{"key": o.key, "text": o.text} for o in CATALOGUE]})


@demo_bp.post("/demo/api/patients/<patient_id>/hook-requests")
def hook_request(patient_id: str) -> Response:
    """The complete request an EHR would send (prefetch from the chart); the page posts it."""
    demo_patient = _patient(patient_id)
    body = read_json_body()
    hook, keys = _hook_and_orders(body)
    service = next((s for s in runtime().config.services.values() if s.hook == hook), None)
    if service is None:
        raise NotFound(f"no CDS service answers {hook}", expression="hook")
    now = runtime().clock()
    drafts = tuple(draft_order(patient_id, BY_KEY[k], i, now) for i, k in enumerate(keys, 1))
    chart = Chart(patient_id, demo_patient.chart_on(now).resources, drafts)
    instance = stable_hook_instance(f"demo:{patient_id}:{now.isoformat()}:{','.join(keys)}")
    return json_response(
        {
            "serviceId": service.id,
            "request": chart.hook_request(service, hook_instance=instance, user_id=DEMO_USER),
        }
    )


def _hook_and_orders(body: Any) -> tuple[str, list[str]]:
    if not isinstance(body, dict):
        raise BadRequest("must be a JSON object", expression="(body)")
    hook = body.get("hook")
    if hook not in {"order-sign", "order-select", "patient-view"}:
        raise BadRequest("hook must be order-sign, order-select or patient-view", expression="hook")
    keys = body.get("orders", [])
    if not isinstance(keys, list) or len(keys) > MAX_ORDERS:
        raise BadRequest(f"orders must be a list of at most {MAX_ORDERS}", expression="orders")
    unknown = [k for k in keys if not isinstance(k, str) or k not in BY_KEY]
    if unknown:
        shown = ", ".join(repr(k)[:40] for k in unknown[:3])
        raise BadRequest(
            f"unknown orderable(s) {shown}; known: {sorted(BY_KEY)}", expression="orders"
        )
    if hook != "patient-view" and not keys:
        raise BadRequest(f"{hook} needs at least one order", expression="orders")
    return str(hook), [str(k) for k in keys]


def _auth_on() -> bool:
    return runtime().authenticator is not None
