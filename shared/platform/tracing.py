"""OpenTelemetry traces: context carried in Kafka headers, exported only when configured.

FastStream's telemetry middleware writes W3C `traceparent` headers on every record a
service publishes and reads them on every batch it consumes: a consumed batch is a span
linked to the spans that produced its records (OpenTelemetry's messaging conventions for
batches), and everything published while handling it carries that span's context, so a
payment on the ledger journal leads back through the verifier's and ingest's spans to
the records an institution published.

Spans are always recorded, so that the context travels and log lines carry the trace id;
they leave the process only when an OTLP endpoint is configured with the standard
variables (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; protocol
http/protobuf).
"""

from __future__ import annotations

import os
from typing import Any

import structlog
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def exporting() -> bool:
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES)


def tracer_provider(service: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": f"stafet-{service}"}))
    if exporting():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def telemetry_middleware(provider: TracerProvider) -> KafkaTelemetryMiddleware:
    # Metrics come from prometheus-client (shared/platform/metrics.py), not OpenTelemetry's meters.
    return KafkaTelemetryMiddleware(tracer_provider=provider, include_messages_counters=False)


def add_trace_id(_: Any, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    """A structlog processor: the current span's trace and span ids on every log line."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event
