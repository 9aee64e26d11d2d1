"""The app factory: health, readiness naming what is down, metrics, request ids, traces, logs."""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from rae_common.app import ServiceState, create_service_app
from rae_common.settings import ServiceSettings
from rae_common.testing import serve_app

router = APIRouter()


@router.get("/things/{thing_id}")
async def get_thing(thing_id: int) -> dict[str, int]:
    logging.getLogger("test.things").info("served thing %d", thing_id)
    return {"id": thing_id}


class Switch:
    def __init__(self) -> None:
        self.up = True

    async def probe(self) -> None:
        if not self.up:
            raise ConnectionError("connection refused")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
async def client(exporter: InMemorySpanExporter, switch: Switch) -> AsyncIterator[httpx.AsyncClient]:
    @contextlib.asynccontextmanager
    async def setup(state: ServiceState) -> AsyncIterator[None]:
        state.add_check("database", switch.probe)
        yield

    app = create_service_app(
        ServiceSettings(service_name="apptest"),
        title="t",
        description="d",
        routers=[router],
        setup=setup,
        span_processors=(SimpleSpanProcessor(exporter),),
    )
    async with serve_app(app) as c:
        yield c


async def test_healthz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok", "service": "apptest"}


async def test_readyz_names_the_dependency_that_is_down(client: httpx.AsyncClient, switch: Switch) -> None:
    ok = await client.get("/readyz")
    assert ok.status_code == 200
    assert ok.json()["checks"] == {"database": "ok"}
    switch.up = False
    down = await client.get("/readyz")
    assert down.status_code == 503
    assert down.headers["content-type"] == "application/problem+json"
    body = down.json()
    assert body["down"] == ["database"]
    assert "database" in body["detail"]
    assert "connection refused" in body["checks"]["database"]


async def test_metrics_count_requests_by_route_template_and_status(client: httpx.AsyncClient) -> None:
    for thing in (1, 2, 3):
        await client.get(f"/things/{thing}")
    await client.get("/missing")
    text = (await client.get("/metrics")).text
    samples = {
        (s.name, s.labels.get("route"), s.labels.get("status")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("service") == "apptest"
    }
    assert samples[("rae_http_requests_total", "/things/{thing_id}", "200")] == 3
    assert samples[("rae_http_requests_total", "unmatched", "404")] == 1
    assert samples[("rae_http_request_duration_seconds_count", "/things/{thing_id}", "200")] == 3


async def test_request_id_is_echoed_or_minted(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    minted = (await client.get("/healthz", headers={"X-Request-ID": "bad id"})).headers["x-request-id"]
    assert minted != "bad id" and len(minted) == 32


async def test_incoming_traceparent_is_continued(
    client: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    await client.get("/things/7", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    spans = [s for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]
    assert spans, "no server span recorded"
    assert format(spans[-1].context.trace_id, "032x") == trace_id
    assert spans[-1].resource.attributes["service.name"] == "apptest"
    assert spans[-1].attributes is not None
    assert spans[-1].attributes.get("http.route") == "/things/{thing_id}"


async def test_health_endpoints_make_no_spans(
    client: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    await client.get("/healthz")
    await client.get("/readyz")
    assert exporter.get_finished_spans() == ()


async def test_logs_are_json_with_trace_and_request_ids(client: httpx.AsyncClient) -> None:
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "rae-json")
    stream = io.StringIO()
    assert isinstance(handler, logging.StreamHandler)
    old = handler.setStream(stream)
    try:
        trace_id = "0af7651916cd43dd8448eb211c80319c"
        await client.get(
            "/things/5",
            headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01", "X-Request-ID": "req-5"},
        )
    finally:
        handler.setStream(old)
    records = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    served = next(r for r in records if r["message"] == "served thing 5")
    assert served["trace_id"] == trace_id
    assert len(served["span_id"]) == 16
    assert served["request_id"] == "req-5"
    assert served["service"] == "apptest"
    assert served["level"] == "INFO"


async def test_what_start_up_built_is_frozen_out_of_the_collector() -> None:
    built: list[object] = []

    @contextlib.asynccontextmanager
    async def setup(state: ServiceState) -> AsyncIterator[None]:
        built.append({"a start-up object": [1, 2, 3]})
        yield

    app = create_service_app(ServiceSettings(service_name="gctest"), title="t", description="d", setup=setup)
    async with serve_app(app):
        tracked = {id(o) for o in gc.get_objects()}
        assert gc.get_freeze_count() > 0
        assert id(built[0]) not in tracked  # full collections no longer walk it
    assert gc.get_freeze_count() == 0  # a stopped app's objects are garbage like any other
