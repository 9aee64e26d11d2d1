"""Tracing (OpenTelemetry, W3C traceparent) and Prometheus request metrics."""

from __future__ import annotations

import time
from collections.abc import Mapping, MutableMapping
from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "RequestMetrics",
    "build_tracer_provider",
    "extract_context",
    "inject_context",
    "instrument_app",
    "instrument_httpx",
]

_EXCLUDED_URLS = "healthz,readyz,metrics"


def build_tracer_provider(
    service_name: str,
    otlp_endpoint: str | None = None,
    extra_processors: tuple[SpanProcessor, ...] = (),
) -> TracerProvider:
    """A provider per app (not the global one), so several apps can live in one test process."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if otlp_endpoint:
        endpoint = otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=500)
        )
    for processor in extra_processors:
        provider.add_span_processor(processor)
    return provider


def instrument_app(app: FastAPI, provider: TracerProvider) -> None:
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls=_EXCLUDED_URLS, exclude_spans=["receive", "send"]
    )


def instrument_httpx(client: httpx.AsyncClient, provider: TracerProvider) -> None:
    """Client spans plus `traceparent` on every outgoing request."""
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)


def inject_context(carrier: MutableMapping[str, str], context: Context | None = None) -> None:
    propagate.inject(carrier, context=context)


def extract_context(carrier: Mapping[str, str]) -> Context:
    return propagate.extract(carrier)


class RequestMetrics:
    """Request count and latency by route template and status, in the app's own registry."""

    def __init__(self, service_name: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "rae_http_requests",
            "HTTP requests handled",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rae_http_request_duration_seconds",
            "HTTP request latency",
            ["service", "method", "route", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.service_name = service_name

    def middleware(self, app: ASGIApp) -> ASGIApp:
        metrics = self

        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500

            async def capture(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, capture)
            finally:
                route = _route_template(scope)
                labels = (metrics.service_name, str(scope.get("method", "")), route, str(status))
                metrics.requests.labels(*labels).inc()
                metrics.latency.labels(*labels).observe(time.perf_counter() - started)

        return measured


def _route_template(scope: Scope) -> str:
    # The router records the matched route in the scope; its template ("/v1/memories/{id}")
    # keeps label cardinality bounded, and every unknown path collapses into one label.
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
