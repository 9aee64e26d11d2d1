"""The events service consumes every topic and logs each event once, per tenant."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from rae_common.events import MemoryCreated, new_envelope
from rae_common.messaging import KafkaPublisher
from rae_common.testing import serve_app, settings_from_env
from rae_events.main import EventsSettings, create_app


@pytest.fixture
async def client(infra_env: dict[str, str]):
    settings = settings_from_env(infra_env, EventsSettings)
    async with serve_app(create_app(settings)) as c:
        yield c


async def logged(client: httpx.AsyncClient, tenant: str, count: int, timeout_s: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    items: list[dict] = []
    while time.monotonic() < deadline:
        items = (await client.get("/v1/events/log", headers={"X-Tenant-ID": tenant})).json()["items"]
        if len(items) >= count:
            return items
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {count} logged events for {tenant}, got {len(items)}")


async def test_redelivered_event_is_logged_once_and_tenants_are_apart(
    client: httpx.AsyncClient, infra_env: dict[str, str]
) -> None:
    tenant, other = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    publisher = KafkaPublisher(infra_env["KAFKA_BOOTSTRAP_SERVERS"], client_id="events-test")
    try:
        event = new_envelope(
            "memory.created",
            MemoryCreated(memory_id=uuid.uuid4(), layer="episodic", content_hash="h"),
            tenant_id=tenant,
            producer="test",
        )
        await publisher.publish(event)
        await publisher.publish(event)  # the same event delivered again
        marker = new_envelope(
            "memory.created",
            MemoryCreated(memory_id=uuid.uuid4(), layer="semantic", content_hash="m"),
            tenant_id=tenant,
            producer="test",
        )
        await publisher.publish(marker)
        await publisher.publish(
            new_envelope(
                "memory.created",
                MemoryCreated(memory_id=uuid.uuid4(), layer="episodic", content_hash="o"),
                tenant_id=other,
                producer="test",
            )
        )
    finally:
        await publisher.stop()

    items = await logged(client, tenant, 2)
    # The marker was published after the duplicate on the same partition (same key): once it is
    # logged, the duplicate has been handled too.
    assert sorted(i["event_id"] for i in items) == sorted([str(event.id), str(marker.id)])
    assert all(i["tenant_id"] == tenant for i in items)
    assert all(i["topic"] == "rae.memory.v1" for i in items)
    assert [i["event_id"] for i in await logged(client, other, 1)] != [str(event.id)]


async def test_log_paging_and_validation(client: httpx.AsyncClient) -> None:
    bad = await client.get("/v1/events/log?limit=0", headers={"X-Tenant-ID": "acme"})
    assert bad.status_code == 422
    empty = await client.get("/v1/events/log", headers={"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"})
    assert empty.json() == {"items": [], "next_cursor": None}


async def test_ready_only_once_the_consumer_has_its_partitions(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 30
    ready = await client.get("/readyz")
    while ready.status_code != 200 and time.monotonic() < deadline:
        assert "kafka-consumer" in ready.json()["down"]
        await asyncio.sleep(0.1)
        ready = await client.get("/readyz")
    assert ready.json()["checks"] == {
        "kafka-topics": "ok",
        "postgres": "ok",
        "kafka": "ok",
        "kafka-consumer": "ok",
    }
