"""End to end, through the gateway, against every service running as a process."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from rae_common.auth import issue_token
from rae_common.testing import OTLPReceiver, ReceivedSpan
from rae_localstack import SERVICES, Stack

pytestmark = pytest.mark.e2e


def bearer(secret: str, tenant: str, *scopes: str) -> dict[str, str]:
    token = issue_token(secret, subject="e2e-agent", tenant_id=tenant, scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


async def eventually(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_every_service_is_ready(suite: Stack, gateway: httpx.AsyncClient, jwt_secret: str) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        for name in SERVICES:
            response = await client.get(suite.service_url(name) + "/readyz")
            assert response.status_code == 200, f"{name}: {response.text}"
            assert response.json()["service"] == name
    status = await gateway.get("/v1/status", headers=bearer(jwt_secret, "acme"))
    assert status.json()["ready"] is True, status.text


async def test_unauthenticated_request_is_401_problem(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post("/v1/memories", json={"content": "hello"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_one_trace_from_gateway_through_memory_and_kafka_to_events(
    gateway: httpx.AsyncClient, otlp: OTLPReceiver, jwt_secret: str
) -> None:
    tenant = f"e2e-{uuid.uuid4().hex[:8]}"
    trace_id = os.urandom(16).hex()
    headers = {
        **bearer(jwt_secret, tenant, "memories:write", "memories:read", "events:read"),
        "traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01",
    }
    created = await gateway.post("/v1/memories", json={"content": f"trace me {trace_id}"}, headers=headers)
    assert created.status_code == 201, created.text
    memory_id = created.json()["id"]

    def spans() -> list[ReceivedSpan]:
        return otlp.in_trace(trace_id)

    def has(service: str, predicate: Callable[[ReceivedSpan], bool]) -> bool:
        return any(s.service == service and predicate(s) for s in spans())

    await eventually(lambda: has("gateway", lambda s: s.kind == 2), "the gateway's server span")
    await eventually(lambda: has("memory", lambda s: s.kind == 2), "the memory service's server span")
    await eventually(
        lambda: has("events", lambda s: s.name == "rae.memory.v1 process"), "the events consumer span"
    )
    # The memory span is a descendant of the gateway's outgoing call, not a new root.
    by_id = {s.span_id: s for s in spans()}
    memory_server = next(s for s in spans() if s.service == "memory" and s.kind == 2)
    assert by_id[memory_server.parent_span_id].service == "gateway"

    log = await gateway.get("/v1/events/log", params={"type": "memory.created"}, headers=headers)
    assert log.status_code == 200
    (entry,) = log.json()["items"]
    assert entry["trace_id"] == trace_id
    fetched = await gateway.get(f"/v1/memories/{memory_id}", headers=headers)
    assert fetched.json()["tenant_id"] == tenant


async def test_another_tenant_never_sees_the_memory(gateway: httpx.AsyncClient, jwt_secret: str) -> None:
    owner = bearer(jwt_secret, f"e2e-{uuid.uuid4().hex[:8]}", "memories:write", "memories:read")
    created = await gateway.post("/v1/memories", json={"content": "only mine"}, headers=owner)
    memory_id = created.json()["id"]
    intruder_tenant = f"e2e-{uuid.uuid4().hex[:8]}"
    intruder = bearer(jwt_secret, intruder_tenant, "memories:read")
    response = await gateway.get(f"/v1/memories/{memory_id}", headers=intruder)
    assert response.status_code == 404
    # A tenant header sent by the client is ignored: the tenant comes from the credential.
    spoofed = await gateway.get(
        f"/v1/memories/{memory_id}", headers={**intruder, "X-Tenant-ID": created.json()["tenant_id"]}
    )
    assert spoofed.status_code == 404


async def test_bad_input_through_the_gateway_is_a_problem(
    gateway: httpx.AsyncClient, jwt_secret: str
) -> None:
    headers = bearer(jwt_secret, "acme", "memories:write")
    response = await gateway.post("/v1/memories", json={"content": "x", "layer": "nope"}, headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    too_big = await gateway.post(
        "/v1/memories",
        content=b"x" * (11 * 1024 * 1024),
        headers={**headers, "content-type": "application/json"},
    )
    assert too_big.status_code == 413


async def test_gateway_metrics_count_the_routes(gateway: httpx.AsyncClient, jwt_secret: str) -> None:
    await gateway.get("/v1/status", headers=bearer(jwt_secret, "acme"))
    text = (await gateway.get("/metrics")).text
    assert 'route="/v1/status"' in text
