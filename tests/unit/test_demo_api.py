"""The demo page's server side: enabled only in development mode or by CDS_DEMO, charts read
through the service's record builder, hook requests built from the demo charts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service.common.settings import SettingsError
from cds_service.demo import lab_trend_path
from cds_service.informatics.charts import DEFAULT_SCENARIOS_DIR, scenario_dirs


@pytest.fixture
def demo(app_factory: Callable[..., Flask]) -> FlaskClient:
    return app_factory(demo="auto").test_client()  # auth off: demo on (auto)


@pytest.mark.parametrize(
    ("settings", "enabled"),
    [
        ({"auth": False, "demo": "auto"}, True),
        ({"auth": True, "demo": "auto"}, False),
        ({"auth": True, "demo": "on"}, True),
        ({"auth": False, "demo": "off"}, False),
    ],
)
def test_demo_is_served_only_when_enabled(
    app_factory: Callable[..., Flask], settings: dict[str, Any], enabled: bool
) -> None:
    client = app_factory(**settings).test_client()
    assert (client.get("/demo").status_code == 200) is enabled
    assert (client.get("/demo/api/patients").status_code == 200) is enabled


@pytest.mark.parametrize(
    ("settings", "redirects"),
    [
        ({"auth": False, "demo": "auto"}, True),  # development mode: `make run`
        ({"auth": True, "demo": "on"}, False),  # demo beside client JWTs: the root stays unused
        ({"auth": False, "demo": "off"}, False),  # no demo page to open
    ],
)
def test_root_opens_the_demo_page_in_development_mode(
    app_factory: Callable[..., Flask], settings: dict[str, Any], redirects: bool
) -> None:
    response = app_factory(**settings).test_client().get("/")
    if redirects:
        assert response.status_code == 302
        assert response.headers["Location"] == "/demo"
    else:
        assert response.status_code == 404


def test_bad_demo_setting_stops_startup(app_factory: Callable[..., Flask]) -> None:
    with pytest.raises(SettingsError, match="CDS_DEMO"):
        app_factory(demo="maybe")


def test_pages_carry_a_strict_content_security_policy(demo: FlaskClient) -> None:
    for path in ("/demo", "/demo/static/demo.js", lab_trend_path("mmf-male")):
        response = demo.get(path)
        assert response.status_code == 200, path
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = demo.get("/demo").get_data(as_text=True)
    assert "<script>" not in page  # no inline script: the CSP would refuse it
    assert "style=" not in page


def test_every_golden_scenario_is_a_demo_patient(demo: FlaskClient) -> None:
    body = demo.get("/demo/api/patients").get_json()
    assert body["auth"] is False
    scenarios = {d.name for d in scenario_dirs(DEFAULT_SCENARIOS_DIR)}
    assert {p["scenario"] for p in body["patients"]} == scenarios
    pregnant = next(p for p in body["patients"] if p["id"] == "mmf-pregnant-status")
    assert (pregnant["name"], pregnant["gender"], pregnant["age"]) == ("Ana Golden", "female", 30)


def test_patient_chart_has_labs_in_canonical_units_with_uln(demo: FlaskClient) -> None:
    chart = demo.get("/demo/api/patients/mmf-new-start-no-test").get_json()
    [alt] = chart["labs"]["alt"]["points"]
    assert (alt["value"], alt["uln"], alt["uln_source"]) == (88.0, 40.0, "configured default")
    assert chart["labs"]["igg"] == {"unit": "g/L", "default_uln": 16.0, "points": []}
    assert chart["labTrendUrl"] == "/demo/patients/mmf-new-start-no-test/labs"
    assert chart["conditions"][0]["label"].startswith("Autoimmune hepatitis")

    courses = demo.get("/demo/api/patients/mmf-continuing-therapy").get_json()["courses"]
    assert courses
    assert "mycophenolate" in courses[0]["classes"]


def test_unknown_patient_is_404(demo: FlaskClient) -> None:
    for path in ("/demo/api/patients/nobody", "/demo/static/none.js"):
        response = demo.get(path)
        assert response.status_code == 404
        assert response.get_json()["resourceType"] == "OperationOutcome"


def test_unknown_patient_lab_page_is_a_friendly_escaped_html_page(demo: FlaskClient) -> None:
    response = demo.get(lab_trend_path("<b>nobody"))
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert 'No demo patient "&lt;b&gt;nobody"' in page
    assert '<a href="/demo">' in page
    assert "<script" not in page
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_demo_orders_carry_structured_doses(demo: FlaskClient) -> None:
    built = demo.post(
        "/demo/api/patients/tpmt-normal-activity/hook-requests",
        json={"hook": "order-sign", "orders": ["azathioprine", "allopurinol"]},
    ).get_json()
    drafts = [e["resource"] for e in built["request"]["context"]["draftOrders"]["entry"]]
    [dosage] = drafts[0]["dosageInstruction"]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 50
    assert dosage["doseAndRate"][0]["doseQuantity"]["code"] == "mg"
    assert dosage["timing"]["repeat"] == {"frequency": 1, "period": 1, "periodUnit": "d"}
    answer = demo.post(f"/cds-services/{built['serviceId']}", json=built["request"]).get_json()
    allopurinol = next(c for c in answer["cards"] if "Allopurinol" in c["summary"])
    assert "50 mg/day" in allopurinol["summary"]
    assert "not computable" not in allopurinol["detail"]


def test_featured_stories_one_per_rule_family_with_unique_names(demo: FlaskClient) -> None:
    patients = demo.get("/demo/api/patients").get_json()["patients"]
    featured = [p for p in patients if p["story"]]
    assert 6 <= len(featured) <= 10
    assert len({p["name"] for p in featured}) == len(featured)
    assert len({p["story"]["title"] for p in featured}) == len(featured)
    families = {p["scenario"].split("-")[0] for p in featured}
    assert families >= {"mmf", "aih", "tnf", "thio", "allo", "tpmt", "bud"}


def test_hook_request_built_from_the_chart_gives_the_cards(demo: FlaskClient) -> None:
    built = demo.post(
        "/demo/api/patients/mmf-pregnant-status/hook-requests",
        json={"hook": "order-sign", "orders": ["mmf", "allopurinol"]},
    ).get_json()
    request = built["request"]
    drafts = [e["resource"] for e in request["context"]["draftOrders"]["entry"]]
    assert [d["status"] for d in drafts] == ["draft", "draft"]
    assert {d["subject"]["reference"] for d in drafts} == {"Patient/mmf-pregnant-status"}
    assert request["prefetch"]["patient"]["id"] == "mmf-pregnant-status"

    answer = demo.post(f"/cds-services/{built['serviceId']}", json=request).get_json()
    [card] = answer["cards"]
    assert card["indicator"] == "critical"
    [delete] = card["suggestions"][0]["actions"]
    assert delete["resourceId"] == f"MedicationRequest/{drafts[0]['id']}"

    view = demo.post(
        "/demo/api/patients/mmf-pregnant-status/hook-requests", json={"hook": "patient-view"}
    ).get_json()
    assert "draftOrders" not in view["request"]["context"]


@pytest.mark.parametrize(
    ("body", "expression"),
    [
        ({"hook": "encounter-start"}, "hook"),
        ({"hook": "order-sign", "orders": []}, "orders"),
        ({"hook": "order-sign", "orders": ["thalidomide"]}, "orders"),
        ({"hook": "order-sign", "orders": "mmf"}, "orders"),
        ([], "(body)"),
    ],
)
def test_bad_hook_request_asks_are_400(demo: FlaskClient, body: Any, expression: str) -> None:
    response = demo.post("/demo/api/patients/mmf-male/hook-requests", json=body)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == [expression]


def test_orderables(demo: FlaskClient) -> None:
    keys = [o["key"] for o in demo.get("/demo/api/orderables").get_json()["orderables"]]
    assert {"mmf", "azathioprine", "infliximab", "budesonide", "allopurinol"} <= set(keys)
