from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from rae_common.events import TOPIC_MEMORY, TOPIC_REFLECTION, Envelope, MemoryDeleted, ReflectionRequested
from rae_common.messaging import ConsumedRecord
from rae_common.testing import eventually
from rae_reflection.consumers import request_handler
from rae_reflection.main import ReflectionSettings
from rae_reflection.service import ReflectionService

T = TypeVar("T")

COFFEE = [
    "I drink a double espresso every morning before work.",
    "I drink coffee every afternoon to stay awake at work.",
    "My favourite morning coffee is a strong espresso.",
]
HIKING = [
    "We hiked up the mountain trail on Saturday.",
    "The mountain hike on Sunday took six hours.",
    "Next summer we plan to hike mountain trails in the Alps.",
]


async def remember(memories: httpx.AsyncClient, tenant: dict[str, str], *texts: str) -> list[str]:
    ids = []
    for text in texts:
        response = await memories.post("/v1/memories", json={"content": text}, headers=tenant)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def request(tenant: dict[str, str], since: datetime | None = None) -> Envelope:
    """A `reflection.requested` as the event engine emits it, made now."""
    key = f"rule:{uuid.uuid4()}"
    return Envelope(
        type="reflection.requested",
        tenant_id=tenant["X-Tenant-ID"],
        producer="events",
        idempotency_key=key,
        data=ReflectionRequested(
            rule_id=uuid.uuid4(), reason="every 6 memories", since=since, memory_count=6, trigger_key=key
        ),
    )


async def reflective(memories: httpx.AsyncClient, tenant: dict[str, str]) -> list[dict[str, Any]]:
    response = await memories.get("/v1/memories", params={"layer": "reflective"}, headers=tenant)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def created_events(
    bootstrap: str, tenant: str, expected: int, timeout_s: float = 20
) -> list[dict[str, Any]]:
    """The tenant's `reflection.created` events, once `expected` arrived (or the deadline passed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        tps = [
            TopicPartition(TOPIC_REFLECTION, p) for p in consumer.partitions_for_topic(TOPIC_REFLECTION) or ()
        ]
        assert tps, f"{TOPIC_REFLECTION} is unknown to the broker"
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                docs = [json.loads(r.value) for r in records if r.key == tenant.encode() and r.value]
                found += [d for d in docs if d["type"] == "reflection.created"]
        return found
    finally:
        await consumer.stop()


async def test_groups_become_reflections_with_provenance_once_per_request(
    service: ReflectionService,
    client: httpx.AsyncClient,
    memories: httpx.AsyncClient,
    tenant: dict[str, str],
    reflection_settings: ReflectionSettings,
) -> None:
    coffee = await remember(memories, tenant, *COFFEE)
    hiking = await remember(memories, tenant, *HIKING)
    envelope = request(tenant)
    assert isinstance(envelope.data, ReflectionRequested)

    first = await service.handle(envelope, envelope.data)
    assert sorted(sorted(r["source_ids"]) for r in first) == sorted([sorted(coffee), sorted(hiking)])
    # The same request delivered again stores, records and announces nothing more.
    assert await service.handle(envelope, envelope.data) == []

    stored = await reflective(memories, tenant)
    assert sorted(m["id"] for m in stored) == sorted(r["id"] for r in first)
    for reflection in first:
        memory = next(m for m in stored if m["id"] == reflection["id"])
        assert memory["content"] == reflection["content"]
        assert memory["tags"] == ["reflection"]
        provenance = memory["metadata"]["reflection"]
        assert provenance["source_ids"] == reflection["source_ids"]
        assert provenance["request_event_id"] == str(envelope.id)
        assert provenance["model"] == reflection["model"] == "local-extractive"
        assert provenance["prompt_version"] == reflection["prompt_version"]
        # The offline model selects sentences of the prompt: here, of the group's memories.
        sources = COFFEE if set(reflection["source_ids"]) == set(coffee) else HIKING
        assert any(sentence in reflection["content"] for sentence in sources)

    listed = page(await client.get("/v1/reflections", headers=tenant))
    assert sorted(r["id"] for r in listed["items"]) == sorted(r["id"] for r in first)
    detail = await client.get(f"/v1/reflections/{first[0]['id']}", headers=tenant)
    assert detail.status_code == 200
    assert [m["id"] for m in detail.json()["sources"]] == first[0]["source_ids"]

    events = await created_events(reflection_settings.kafka_bootstrap_servers, tenant["X-Tenant-ID"], 3, 5)
    assert sorted(e["data"]["reflection_id"] for e in events) == sorted(r["id"] for r in first)
    assert {e["data"]["request_event_id"] for e in events} == {str(envelope.id)}


async def test_a_later_request_reflects_only_on_newer_memories(
    service: ReflectionService, memories: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    await remember(memories, tenant, *COFFEE)
    first = request(tenant)
    assert isinstance(first.data, ReflectionRequested)
    assert len(await service.handle(first, first.data)) == 1

    nothing_new = request(tenant)
    assert isinstance(nothing_new.data, ReflectionRequested)
    assert await service.handle(nothing_new, nothing_new.data) == []

    hiking = await remember(memories, tenant, *HIKING)
    later = request(tenant)
    assert isinstance(later.data, ReflectionRequested)
    [reflection] = await service.handle(later, later.data)
    assert sorted(reflection["source_ids"]) == sorted(hiking)


async def test_too_few_or_unrelated_memories_make_no_reflection(
    service: ReflectionService, memories: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    await remember(memories, tenant, COFFEE[0], HIKING[0])
    envelope = request(tenant, since=datetime.now(UTC) - timedelta(hours=1))
    assert isinstance(envelope.data, ReflectionRequested)
    assert await service.handle(envelope, envelope.data) == []
    assert await reflective(memories, tenant) == []


async def test_manual_trigger_goes_through_the_bus(
    client: httpx.AsyncClient, memories: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    coffee = await remember(memories, tenant, *COFFEE)
    response = await client.post("/v1/reflections/trigger", headers=tenant)
    assert response.status_code == 202
    assert uuid.UUID(response.json()["request_id"])

    async def listed() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = page(await client.get("/v1/reflections", headers=tenant))["items"]
        return items or None

    [reflection] = await eventually(listed)
    assert sorted(reflection["source_ids"]) == sorted(coffee)
    assert reflection["request_event_id"] == response.json()["request_id"]


async def test_lists_page_by_cursor(
    service: ReflectionService, client: httpx.AsyncClient, memories: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    await remember(memories, tenant, *COFFEE, *HIKING)
    envelope = request(tenant)
    assert isinstance(envelope.data, ReflectionRequested)
    made = await service.handle(envelope, envelope.data)
    first = page(await client.get("/v1/reflections", params={"limit": 1}, headers=tenant))
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = page(
        await client.get(
            "/v1/reflections", params={"limit": 1, "cursor": first["next_cursor"]}, headers=tenant
        )
    )
    assert second["next_cursor"] is None
    assert sorted(r["id"] for r in first["items"] + second["items"]) == sorted(r["id"] for r in made)


async def test_reflections_belong_to_their_tenant(
    service: ReflectionService,
    client: httpx.AsyncClient,
    memories: httpx.AsyncClient,
    tenant: dict[str, str],
    reflection_settings: ReflectionSettings,
) -> None:
    await remember(memories, tenant, *COFFEE)
    envelope = request(tenant)
    assert isinstance(envelope.data, ReflectionRequested)
    [reflection] = await service.handle(envelope, envelope.data)
    other = {"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"}
    assert page(await client.get("/v1/reflections", headers=other))["items"] == []
    response = await client.get(f"/v1/reflections/{reflection['id']}", headers=other)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    conn = await asyncpg.connect(reflection_settings.database_url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", other["X-Tenant-ID"])
            assert await conn.fetchval("SELECT count(*) FROM reflection.reflections") == 0
    finally:
        await conn.close()


async def test_bad_requests_are_problems(client: httpx.AsyncClient, tenant: dict[str, str]) -> None:
    assert (await client.get("/v1/reflections")).status_code == 400
    bad_cursor = await client.get("/v1/reflections", params={"cursor": "nope"}, headers=tenant)
    assert bad_cursor.status_code == 422
    assert bad_cursor.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/reflections/not-a-uuid", headers=tenant)).status_code == 422
    assert (
        await client.post("/v1/reflections/trigger", json={"bogus": 1}, headers=tenant)
    ).status_code == 422


# --- erasure (issue #16, finding 7): reflections go with the memories they were written from


def deleted(tenant: dict[str, str], memory_id: str, reason: str) -> Envelope:
    return Envelope(
        type="memory.deleted",
        tenant_id=tenant["X-Tenant-ID"],
        producer="memory",
        idempotency_key=f"memory.deleted:{memory_id}",
        data=MemoryDeleted(memory_id=uuid.UUID(memory_id), layer="episodic", reason=reason),
    )


RECORD = ConsumedRecord(topic=TOPIC_MEMORY, partition=0, offset=0, key=None, headers={})


async def test_an_erased_source_takes_its_reflection_along_from_the_events(
    service: ReflectionService, client: httpx.AsyncClient, memories: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    coffee = await remember(memories, tenant, *COFFEE)
    hiking = await remember(memories, tenant, *HIKING)
    envelope = request(tenant)
    assert isinstance(envelope.data, ReflectionRequested)
    made = await service.handle(envelope, envelope.data)
    about_coffee = next(r["id"] for r in made if set(r["source_ids"]) == set(coffee))
    about_hiking = next(r["id"] for r in made if set(r["source_ids"]) == set(hiking))
    handle = request_handler(service)

    # A source expiring (or deleted on its own) leaves the reflection: it consolidated the source.
    await handle(deleted(tenant, hiking[0], "expired"), RECORD)
    # The erasure ran while this service was away: its memory.deleted events arrive later (twice:
    # delivery is at least once).
    erased = deleted(tenant, coffee[0], "erased")
    await handle(erased, RECORD)
    await handle(erased, RECORD)

    listed = page(await client.get("/v1/reflections", headers=tenant))["items"]
    assert [r["id"] for r in listed] == [about_hiking]
    assert [m["id"] for m in await reflective(memories, tenant)] == [about_hiking]
    assert (await memories.get(f"/v1/memories/{about_coffee}", headers=tenant)).status_code == 404
    assert (await client.get(f"/v1/reflections/{about_coffee}", headers=tenant)).status_code == 404


async def test_forget_removes_the_reflections_citing_the_memories_of_its_tenant_only(
    service: ReflectionService, client: httpx.AsyncClient, memories: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    coffee = await remember(memories, tenant, *COFFEE)
    hiking = await remember(memories, tenant, *HIKING)
    envelope = request(tenant)
    assert isinstance(envelope.data, ReflectionRequested)
    made = await service.handle(envelope, envelope.data)
    about_hiking = next(r["id"] for r in made if set(r["source_ids"]) == set(hiking))

    other = {"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"}
    elsewhere = await client.post("/v1/reflections/forget", json={"memory_ids": hiking}, headers=other)
    assert elsewhere.status_code == 200 and elsewhere.json() == {"reflection_ids": []}

    forgotten = await client.post("/v1/reflections/forget", json={"memory_ids": [hiking[1]]}, headers=tenant)
    assert forgotten.status_code == 200, forgotten.text
    assert forgotten.json() == {"reflection_ids": [about_hiking]}
    listed = page(await client.get("/v1/reflections", headers=tenant))["items"]
    assert [set(r["source_ids"]) for r in listed] == [set(coffee)]
    again = await client.post("/v1/reflections/forget", json={"memory_ids": [hiking[1]]}, headers=tenant)
    assert again.json() == {"reflection_ids": []}

    empty = await client.post("/v1/reflections/forget", json={"memory_ids": []}, headers=tenant)
    assert empty.status_code == 422
    assert empty.headers["content-type"] == "application/problem+json"


def page(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
