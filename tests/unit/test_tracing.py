"""Optional OpenTelemetry tracing: a server span per request continuing the caller's trace, a
FHIR fetch span, attributes without PHI; nothing when off."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cds_service.ops import tracing
from tests import factories as f
from tests.integration.ports import free_port

PATIENT = "patient-9b2f-not-in-spans"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    tracing.disable()


def traced(app_factory: Callable[..., Flask], exporter: InMemorySpanExporter) -> Flask:
    return app_factory(otel=True, span_exporter=exporter)


def test_request_span_continues_the_callers_trace(
    app_factory: Callable[..., Flask], spans: InMemorySpanExporter
) -> None:
    app = traced(app_factory, spans)
    body = f.hook_request(drafts=(f.mmf_draft(),), prefetch=f.full_prefetch(), pid=PATIENT)
    body["prefetch"]["patient"]["id"] = PATIENT
    response = app.test_client().post(
        "/cds-services/aih-order-sign",
        json=body,
        headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
    )
    assert response.status_code == 200
    (server,) = [s for s in spans.get_finished_spans() if s.name.startswith("POST")]
    assert server.name == "POST /cds-services/<service_id>"
    assert format(server.context.trace_id, "032x") == TRACE_ID
    attributes = dict(server.attributes or {})
    assert attributes["cds.service"] == "aih-order-sign"
    assert attributes["cds.hook_instance"] == body["hookInstance"]
    assert attributes["http.response.status_code"] == 200
    assert attributes["cds.cards"] == len(response.get_json()["cards"])
    assert PATIENT not in repr([dict(s.attributes or {}) for s in spans.get_finished_spans()])


def test_fhir_fetch_is_a_child_span_without_urls(
    app_factory: Callable[..., Flask], spans: InMemorySpanExporter
) -> None:
    app = traced(app_factory, spans)
    body = f.hook_request(drafts=(f.mmf_draft(),), pid=PATIENT)  # no prefetch: fetch needed
    body["fhirServer"] = f"http://127.0.0.1:{free_port()}/fhir"  # nothing listens: refused
    app.test_client().post("/cds-services/aih-order-sign", json=body)
    finished = {s.name: s for s in spans.get_finished_spans()}
    fetch = finished["fhir.fetch"]
    server = finished["POST /cds-services/<service_id>"]
    assert fetch.parent is not None
    assert fetch.parent.span_id == server.context.span_id
    attributes = dict(fetch.attributes or {})
    assert attributes["cds.fhir.failures"] == attributes["cds.fhir.queries"] > 0
    assert PATIENT not in repr(attributes)


def test_no_spans_when_off(app_factory: Callable[..., Flask], spans: InMemorySpanExporter) -> None:
    traced(app_factory, spans)
    app = app_factory()  # CDS_OTEL off: the process stops tracing
    app.test_client().get("/cds-services")
    assert spans.get_finished_spans() == ()


def test_missing_packages_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.resources", None)
    with pytest.raises(tracing.TracingUnavailable, match=r"aih-cds\[otel\]"):
        tracing.configure("aih-cds")
