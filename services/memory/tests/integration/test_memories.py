"""Memory CRUD in-process against real Postgres, Kafka and the real ml service."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import asyncpg
import httpx
import numpy as np
import pytest

from rae_common.testing import eventually, read_topic, serve_app
from rae_memory.adapters.sql import register_vector_codec
from rae_memory.main import MemorySettings, create_app


def other_tenant() -> dict[str, str]:
    return {"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"}


async def create(client: httpx.AsyncClient, tenant: dict[str, str], **body) -> dict:
    response = await client.post("/v1/memories", json=body, headers=tenant)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def test_store_and_read_back(client: httpx.AsyncClient, tenant: dict[str, str]) -> None:
    created = await client.post(
        "/v1/memories",
        json={
            "content": "Alice prefers green tea",
            "tags": ["pref", "pref"],
            "importance": 0.9,
            "subject": "alice",
        },
        headers=tenant,
    )
    assert created.status_code == 201
    body = created.json()
    assert body["layer"] == "episodic"
    assert body["tags"] == ["pref"]
    assert body["embedding_model"] == "all-MiniLM-L6-v2"
    assert body["expires_at"] is None
    fetched = await client.get(f"/v1/memories/{body['id']}", headers=tenant)
    assert fetched.json() == body


async def test_same_content_same_layer_is_not_stored_twice(client: httpx.AsyncClient, tenant) -> None:
    first = await client.post("/v1/memories", json={"content": "Bob  lives in Oslo"}, headers=tenant)
    again = await client.post("/v1/memories", json={"content": "Bob lives in   Oslo "}, headers=tenant)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    other_layer = await client.post(
        "/v1/memories", json={"content": "Bob lives in Oslo", "layer": "semantic"}, headers=tenant
    )
    assert other_layer.status_code == 201


async def test_idempotency_key_replays_the_first_answer(client: httpx.AsyncClient, tenant) -> None:
    headers = {**tenant, "Idempotency-Key": "req-1"}
    first = await client.post("/v1/memories", json={"content": "retry me"}, headers=headers)
    retry = await client.post("/v1/memories", json={"content": "retry me"}, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    reused = await client.post("/v1/memories", json={"content": "something else"}, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("/idempotency-key-reused")
    # The key belongs to its tenant only.
    elsewhere = await client.post(
        "/v1/memories", json={"content": "other"}, headers={**other_tenant(), "Idempotency-Key": "req-1"}
    )
    assert elsewhere.status_code == 201


async def test_concurrent_retries_with_one_key_store_once(client: httpx.AsyncClient, tenant) -> None:
    headers = {**tenant, "Idempotency-Key": "race"}
    answers = await asyncio.gather(
        *(client.post("/v1/memories", json={"content": "raced"}, headers=headers) for _ in range(5))
    )
    assert {a.json()["id"] for a in answers} == {answers[0].json()["id"]}
    listed = (await client.get("/v1/memories", headers=tenant)).json()["items"]
    assert len(listed) == 1


async def test_another_tenant_gets_404_for_read_update_delete(client: httpx.AsyncClient, tenant) -> None:
    memory = await create(client, tenant, content="secret plan")
    intruder = other_tenant()
    url = f"/v1/memories/{memory['id']}"
    for response in (
        await client.get(url, headers=intruder),
        await client.patch(url, json={"importance": 0.1}, headers=intruder),
        await client.delete(url, headers=intruder),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert "secret" not in response.text
    assert (await client.get(url, headers=tenant)).json()["importance"] == 0.5
    assert (await client.get("/v1/memories", headers=intruder)).json()["items"] == []


async def test_row_level_security_hides_other_tenants_even_without_a_filter(
    client: httpx.AsyncClient, tenant, memory_settings: MemorySettings
) -> None:
    await create(client, tenant, content="visible only to its tenant")
    conn = await asyncpg.connect(memory_settings.database_url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", "nobody")
            assert await conn.fetchval("SELECT count(*) FROM memory.memories") == 0
        async with conn.transaction():
            await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", tenant["X-Tenant-ID"])
            assert await conn.fetchval("SELECT count(*) FROM memory.memories") == 1
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with conn.transaction():
                await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", "nobody")
                await conn.execute(
                    "INSERT INTO memory.memories (id, tenant_id, content, layer, content_hash) "
                    "VALUES ($1, $2, 'x', 'episodic', 'h')",
                    uuid.uuid4(),
                    tenant["X-Tenant-ID"],
                )
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "payload",
    [
        {"content": ""},
        {"content": "   "},
        {"content": "x", "layer": "dreams"},
        {"content": "x", "importance": 1.5},
        {"content": "x", "unknown": 1},
        {"content": "x", "tags": [""]},
        {"content": "x", "ttl_seconds": 0},
        {"text": "x"},
    ],
)
async def test_bad_input_is_a_problem_and_stores_nothing(client: httpx.AsyncClient, tenant, payload) -> None:
    response = await client.post("/v1/memories", json=payload, headers=tenant)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/memories", headers=tenant)).json()["items"] == []


async def test_tenant_header_is_required_and_validated(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/memories", json={"content": "x"})).status_code == 400
    bad = await client.post("/v1/memories", json={"content": "x"}, headers={"X-Tenant-ID": "no spaces"})
    assert bad.json()["type"].endswith("/tenant-invalid")


async def test_list_filters_and_cursor_pagination(client: httpx.AsyncClient, tenant) -> None:
    for i in range(7):
        await create(
            client,
            tenant,
            content=f"note number {i}",
            layer="semantic" if i % 2 else "episodic",
            tags=["even"] if i % 2 == 0 else ["odd"],
            metadata={"n": i, "kind": "note"},
        )
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/memories", params=params, headers=tenant)).json()
        seen += [m["content"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"note number {i}" for i in reversed(range(7))]
    semantic = (await client.get("/v1/memories", params={"layer": "semantic"}, headers=tenant)).json()[
        "items"
    ]
    assert {m["content"] for m in semantic} == {"note number 1", "note number 3", "note number 5"}
    even = (await client.get("/v1/memories", params={"tags": "even"}, headers=tenant)).json()["items"]
    assert len(even) == 4
    by_meta = (await client.get("/v1/memories", params={"metadata": "n=4"}, headers=tenant)).json()["items"]
    assert [m["content"] for m in by_meta] == ["note number 4"]
    bad = await client.get("/v1/memories", params={"cursor": "garbage!"}, headers=tenant)
    assert bad.status_code == 422


async def test_patch_changes_content_and_keeps_dedup(client: httpx.AsyncClient, tenant) -> None:
    first = await create(client, tenant, content="the sky is green")
    other = await create(client, tenant, content="grass is blue")
    fixed = await client.patch(
        f"/v1/memories/{first['id']}", json={"content": "the sky is blue", "tags": ["fixed"]}, headers=tenant
    )
    assert fixed.status_code == 200
    assert fixed.json()["content"] == "the sky is blue"
    assert fixed.json()["content_hash"] != first["content_hash"]
    assert fixed.json()["updated_at"] > first["updated_at"]
    clash = await client.patch(
        f"/v1/memories/{other['id']}", json={"content": "the sky is blue"}, headers=tenant
    )
    assert clash.status_code == 409
    found = await client.post(
        "/v1/search/hybrid", json={"query": "what colour is the sky", "k": 1}, headers=tenant
    )
    assert found.json()["results"][0]["id"] == first["id"]


async def test_delete_then_gone(client: httpx.AsyncClient, tenant) -> None:
    memory = await create(client, tenant, content="forget me")
    assert (await client.delete(f"/v1/memories/{memory['id']}", headers=tenant)).status_code == 204
    assert (await client.get(f"/v1/memories/{memory['id']}", headers=tenant)).status_code == 404
    assert (await client.delete(f"/v1/memories/{memory['id']}", headers=tenant)).status_code == 404


async def test_erase_subject_reaches_rows_search_and_events(
    client: httpx.AsyncClient, tenant, memory_settings: MemorySettings
) -> None:
    for text in ("Carol's phone is 555-0100", "Carol likes sailing", "Carol moved to Bergen"):
        await create(client, tenant, content=text, subject="carol")
    keep = await create(client, tenant, content="Dave likes sailing", subject="dave")
    # Reflection and graph do not answer: the erasure says so, and they finish from the events.
    away = {"reflection_url": "http://127.0.0.1:9", "graph_url": "http://127.0.0.1:9"}
    async with serve_app(create_app(memory_settings.model_copy(update=away))) as without_them:
        erased = await without_them.delete("/v1/memories", params={"subject": "carol"}, headers=tenant)
    answer = erased.json()
    assert answer["pending"] == ["reflection", "graph"]
    assert (answer["deleted"], answer["memories"], answer["cache_entries"]) == (3, 3, 3)
    remaining = (await client.get("/v1/memories", headers=tenant)).json()["items"]
    assert [m["id"] for m in remaining] == [keep["id"]]
    results = (await client.post("/v1/search/hybrid", json={"query": "Carol sailing"}, headers=tenant)).json()
    assert [r["id"] for r in results["results"]] == [keep["id"]]
    deadline = time.monotonic() + 20
    reasons: list[str] = []
    while len(reasons) < 3 and time.monotonic() < deadline:
        records = await read_topic(
            memory_settings.kafka_bootstrap_servers, "rae.memory.v1", 10**9, timeout_s=1
        )
        reasons = [
            doc["data"]["reason"]
            for doc in (json.loads(r.value) for r in records)
            if doc["tenant_id"] == tenant["X-Tenant-ID"] and doc["type"] == "memory.deleted"
        ]
    assert reasons == ["erased"] * 3


async def test_an_erasure_while_ml_is_away_evicts_the_cached_embeddings_later(
    client: httpx.AsyncClient, tenant, memory_settings: MemorySettings, ml_url: str
) -> None:
    texts = [f"Frank's locker code is {n}{uuid.uuid4().hex[:6]}" for n in range(3)]
    for text in texts:
        await create(client, tenant, content=text, subject="frank")
    async with httpx.AsyncClient(base_url=ml_url) as ml:

        async def cached() -> int:
            response = await ml.post("/v1/ml/embed", json={"texts": texts}, headers=tenant)
            assert response.status_code == 200, response.text
            return int(response.json()["cached"])

        assert await cached() == 3
        away = create_app(memory_settings.model_copy(update={"ml_url": "http://127.0.0.1:9"}))
        async with serve_app(away) as without_ml:
            erased = await without_ml.delete("/v1/memories", params={"subject": "frank"}, headers=tenant)
        answer = erased.json()
        assert erased.status_code == 200, answer
        assert (answer["memories"], answer["cache_entries"], answer["pending"][-1]) == (3, 0, "ml")

        async def audit() -> tuple[int, list[str], int]:
            conn = await asyncpg.connect(memory_settings.database_url)
            try:
                async with conn.transaction():
                    await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", tenant["X-Tenant-ID"])
                    row = await conn.fetchrow("SELECT cache_entries, pending FROM memory.erasures")
                    left = await conn.fetchval("SELECT count(*) FROM memory.pending_evictions")
            finally:
                await conn.close()
            assert row is not None
            return row["cache_entries"], list(row["pending"]), left

        assert await audit() == (0, answer["pending"], 3)
        # Once ml answers again, the memory service's retry evicts them: its expiry sweep runs it
        # at start-up and then every EXPIRY_SWEEP_INTERVAL_S (calling it here as well raced with
        # that sweep, which could take the evictions first).
        settled = (3, [p for p in answer["pending"] if p != "ml"], 0)

        async def evicted() -> bool | None:
            return True if await audit() == settled else None

        async with serve_app(create_app(memory_settings)):
            await eventually(evicted, 30, "the pending evictions retried")
        assert await audit() == settled
        assert await cached() == 0


async def test_batch_stores_all_in_one_go_and_reports_duplicates(client: httpx.AsyncClient, tenant) -> None:
    await create(client, tenant, content="already here")
    items = [{"content": f"batch fact {i}"} for i in range(40)] + [
        {"content": "already here"},
        {"content": "batch fact 0"},
    ]
    response = await client.post("/v1/memories/batch", json={"items": items}, headers=tenant)
    assert response.status_code == 201
    body = response.json()
    assert (body["created"], body["duplicates"]) == (40, 2)
    assert body["items"][0]["id"] == body["items"][-1]["id"]
    assert (
        len((await client.get("/v1/memories", params={"limit": 200}, headers=tenant)).json()["items"]) == 41
    )


async def test_batch_limits_and_atomicity(client: httpx.AsyncClient, tenant) -> None:
    too_many = await client.post(
        "/v1/memories/batch", json={"items": [{"content": f"x{i}"} for i in range(1001)]}, headers=tenant
    )
    assert too_many.status_code == 422
    one_bad = await client.post(
        "/v1/memories/batch", json={"items": [{"content": "fine"}, {"content": ""}]}, headers=tenant
    )
    assert one_bad.status_code == 422
    assert (await client.get("/v1/memories", headers=tenant)).json()["items"] == []


async def test_working_memory_expires(client: httpx.AsyncClient, tenant) -> None:
    memory = await create(client, tenant, content="the kettle is on", layer="working", ttl_seconds=1)
    assert memory["expires_at"] is not None
    deadline = time.monotonic() + 10
    while (await client.get(f"/v1/memories/{memory['id']}", headers=tenant)).status_code == 200:
        assert time.monotonic() < deadline, "an expired memory is still readable"
        await asyncio.sleep(0.1)
    day = await create(client, tenant, content="scratch note", layer="working")
    assert day["expires_at"] > day["created_at"]


async def test_readiness_reports_postgres_and_kafka(client: httpx.AsyncClient) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"kafka-topics": "ok", "postgres": "ok", "kafka": "ok"}


async def test_the_stored_vector_is_the_models_vector_bit_for_bit(
    client: httpx.AsyncClient, tenant: dict[str, str], memory_settings: MemorySettings
) -> None:
    """Vectors travel in pgvector's binary format: float32 in, the same float32 stored, on
    insert (batch) and on a content change (update)."""
    batch = await client.post(
        "/v1/memories/batch",
        json={"items": [{"content": "Vectors go over the wire as bytes"}, {"content": "Second row"}]},
        headers=tenant,
    )
    assert batch.status_code == 201, batch.text
    first = batch.json()["items"][0]["id"]
    patched = await client.patch(
        f"/v1/memories/{first}", json={"content": "Now about sailing"}, headers=tenant
    )
    assert patched.status_code == 200, patched.text
    texts = ["Now about sailing", "Second row"]
    async with httpx.AsyncClient(base_url=memory_settings.ml_url) as ml:
        embedded = await ml.post("/v1/ml/embed", json={"texts": texts}, headers=tenant)
    assert embedded.status_code == 200, embedded.text
    expected = {
        t: np.array(v, dtype=np.float32) for t, v in zip(texts, embedded.json()["vectors"], strict=True)
    }
    conn = await asyncpg.connect(memory_settings.database_url)
    try:
        await register_vector_codec(conn)
        async with conn.transaction():
            await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", tenant["X-Tenant-ID"])
            rows = await conn.fetch("SELECT content, embedding FROM memory.memories")
    finally:
        await conn.close()
    stored = {r["content"]: r["embedding"].to_numpy() for r in rows}
    assert set(stored) == set(texts)
    for text in texts:
        assert np.array_equal(stored[text], expected[text]), text
