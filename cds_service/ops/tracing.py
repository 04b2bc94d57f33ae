"""Optional OpenTelemetry tracing (CDS_OTEL=on, extra ``aih-cds[otel]``).

One server span per HTTP request (continuing the caller's W3C ``traceparent``) and a child span
per fallback FHIR fetch. Span attributes carry the route, status, service id, hookInstance and
counts: never a URL with query parameters, a patient id or a token. The exporter is OTLP/HTTP,
configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables. Off, nothing is imported and
``span`` costs one attribute check.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

_state: dict[str, Tracer | None] = {"tracer": None}


class TracingUnavailable(RuntimeError):
    """CDS_OTEL is on but the OpenTelemetry packages are not installed."""


def configure(service_name: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """Start tracing for this process; ``exporter`` replaces OTLP (tests use an in-memory one)."""
    try:
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 - optional extra
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
            BatchSpanProcessor,
            SimpleSpanProcessor,
        )
    except ImportError as exc:
        raise TracingUnavailable(
            "CDS_OTEL is on but OpenTelemetry is not installed: pip install 'aih-cds[otel]'"
        ) from exc
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _state["tracer"] = provider.get_tracer("cds_service")
    return provider


def disable() -> None:
    _state["tracer"] = None


@dataclass
class ServerSpan:
    span: Span
    token: object  # the context token to detach when the request ends


def start_server_span(name: str, headers: Mapping[str, str]) -> ServerSpan | None:
    """Open the request's span, continuing the caller's trace; None when tracing is off."""
    tracer = _state["tracer"]
    if tracer is None:
        return None
    from opentelemetry import context, propagate, trace  # noqa: PLC0415 - tracing is on

    # The W3C propagator looks up lower-case names; HTTP header names are case-insensitive.
    parent = propagate.extract({name.lower(): value for name, value in headers.items()})
    current = tracer.start_span(name, context=parent, kind=trace.SpanKind.SERVER)
    return ServerSpan(current, context.attach(trace.set_span_in_context(current, parent)))


def end_server_span(handle: ServerSpan | None, attributes: Mapping[str, Any]) -> None:
    if handle is None:
        return
    from opentelemetry import context  # noqa: PLC0415 - tracing is on

    set_attributes(handle.span, attributes)
    handle.span.end()
    context.detach(handle.token)  # type: ignore[arg-type]


@contextmanager
def span(name: str) -> Iterator[Span | None]:
    """A child of the current span; None (and no cost) when tracing is off."""
    tracer = _state["tracer"]
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(name) as current:
        yield current


def annotate(attributes: Mapping[str, Any]) -> None:
    """Add attributes to the current span (the request's, inside a view)."""
    if _state["tracer"] is None:
        return
    from opentelemetry import trace  # noqa: PLC0415 - tracing is on

    set_attributes(trace.get_current_span(), attributes)


def set_attributes(current: Span | None, attributes: Mapping[str, Any]) -> None:
    if current is not None:
        current.set_attributes({k: v for k, v in attributes.items() if v is not None})
