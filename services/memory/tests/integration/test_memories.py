"""Memory service in-process against real Postgres and Kafka."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest

from rae_common.testing import read_topic, serve_app, settings_from_env
from rae_memory.main import MemorySettings, create_app


@pytest.fixture
async def client(infra_env: dict[str, str]):
    settings = settings_from_env(infra_env, MemorySettings)
    async with serve_app(create_app(settings)) as c:
        yield c


def tenant() -> dict[str, str]:
    return {"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"}


async def test_store_and_read_back(client: httpx.AsyncClient) -> None:
    headers = tenant()
    created = await client.post(
        "/v1/memories",
        json={"content": "Alice prefers green tea", "tags": ["pref", "pref"], "importance": 0.9},
        headers=headers,
    )
    assert created.status_code == 201
    body = created.json()
    assert body["layer"] == "episodic"
    assert body["tags"] == ["pref"]
    fetched = await client.get(f"/v1/memories/{body['id']}", headers=headers)
    assert fetched.status_code == 200
    assert fetched.json()["content"] == "Alice prefers green tea"


async def test_same_content_same_layer_is_not_stored_twice(client: httpx.AsyncClient) -> None:
    headers = tenant()
    first = await client.post("/v1/memories", json={"content": "Bob  lives in Oslo"}, headers=headers)
    again = await client.post("/v1/memories", json={"content": "Bob lives in   Oslo "}, headers=headers)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other_layer = await client.post(
        "/v1/memories", json={"content": "Bob lives in Oslo", "layer": "semantic"}, headers=headers
    )
    assert other_layer.status_code == 201


async def test_another_tenants_memory_is_not_found(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/memories", json={"content": "secret plan"}, headers=tenant())
    response = await client.get(f"/v1/memories/{created.json()['id']}", headers=tenant())
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret" not in response.text


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"content": ""}, 422),
        ({"content": "   "}, 422),
        ({"content": "x", "layer": "dreams"}, 422),
        ({"content": "x", "importance": 1.5}, 422),
        ({"content": "x", "unknown": 1}, 422),
        ({"text": "x"}, 422),
    ],
)
async def test_bad_input_is_a_problem_and_stores_nothing(client: httpx.AsyncClient, payload, status) -> None:
    headers = tenant()
    response = await client.post("/v1/memories", json=payload, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


async def test_tenant_header_is_required_and_validated(client: httpx.AsyncClient) -> None:
    missing = await client.post("/v1/memories", json={"content": "x"})
    assert missing.status_code == 400
    bad = await client.post(
        "/v1/memories", json={"content": "x"}, headers={"X-Tenant-ID": "no spaces allowed"}
    )
    assert bad.status_code == 400
    assert bad.json()["type"].endswith("/tenant-invalid")


async def test_unknown_id_and_malformed_id(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"/v1/memories/{uuid.uuid4()}", headers=tenant())).status_code == 404
    assert (await client.get("/v1/memories/not-a-uuid", headers=tenant())).status_code == 422


async def test_created_memory_is_announced_on_kafka(
    client: httpx.AsyncClient, infra_env: dict[str, str]
) -> None:
    headers = tenant()
    created = (
        await client.post("/v1/memories", json={"content": f"event {uuid.uuid4()}"}, headers=headers)
    ).json()
    bootstrap = infra_env["KAFKA_BOOTSTRAP_SERVERS"]
    deadline = time.monotonic() + 20
    found = None
    while found is None and time.monotonic() < deadline:
        for record in await read_topic(bootstrap, "rae.memory.v1", expected=10**9, timeout_s=1):
            doc = json.loads(record.value)
            if doc["data"]["memory_id"] == created["id"]:
                found = (record, doc)
        if found is None:
            await asyncio.sleep(0.1)
    assert found is not None, "memory.created never reached the broker"
    record, doc = found
    assert doc["type"] == "memory.created"
    assert doc["tenant_id"] == headers["X-Tenant-ID"]
    assert record.key.decode() == headers["X-Tenant-ID"]


async def test_readiness_reports_postgres_and_kafka(client: httpx.AsyncClient) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "kafka": "ok"}
