"""Hybrid search with the real embedding model, on pgvector and on Qdrant (local mode)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from rae_common.testing import serve_app
from rae_memory.main import QDRANT_IN_PROCESS, MemorySettings, create_app

FACTS = [
    ("Alice prefers green tea in the morning", ["preference"], {"person": "alice"}),
    ("The deployment pipeline runs on Kubernetes with Helm charts", ["infra"], {"team": "platform"}),
    ("Bob is allergic to peanuts", ["health"], {"person": "bob"}),
    ("Quarterly revenue grew twelve percent", ["finance"], {"team": "finance"}),
    ("The cat sleeps on the warm windowsill", ["home"], {}),
    ("Alice's favourite programming language is Rust", ["preference"], {"person": "alice"}),
]


@pytest.fixture(params=["pgvector", "qdrant"])
async def search_client(request, memory_settings: MemorySettings) -> AsyncIterator[httpx.AsyncClient]:
    settings = memory_settings.model_copy(
        update={"vector_backend": request.param, "qdrant_url": QDRANT_IN_PROCESS}
    )
    async with serve_app(create_app(settings)) as c:
        yield c


@pytest.fixture(params=["pgvector", "qdrant"])
async def small_parts_client(request, memory_settings: MemorySettings) -> AsyncIterator[httpx.AsyncClient]:
    """Batches embedded two items at a time: FACTS go in three parts."""
    settings = memory_settings.model_copy(
        update={"vector_backend": request.param, "qdrant_url": QDRANT_IN_PROCESS, "ingest_embed_chunk": 2}
    )
    async with serve_app(create_app(settings)) as c:
        yield c


async def seed(client: httpx.AsyncClient) -> dict[str, str]:
    tenant = {"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"}
    items = [{"content": c, "tags": t, "metadata": m} for c, t, m in FACTS]
    response = await client.post("/v1/memories/batch", json={"items": items}, headers=tenant)
    assert response.status_code == 201
    return tenant


async def search(client, tenant, **body) -> list[dict]:
    response = await client.post("/v1/search/hybrid", json=body, headers=tenant)
    assert response.status_code == 200, response.text
    return response.json()["results"]


async def test_semantic_match_ranks_first_with_explained_scores(search_client) -> None:
    tenant = await seed(search_client)
    results = await search(search_client, tenant, query="what drink does Alice like?", k=3)
    assert results[0]["content"] == "Alice prefers green tea in the morning"
    top = results[0]
    assert set(top["scores"]) == {"vector", "lexical", "recency", "importance"}
    assert 0 < top["score"] <= 1
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)


async def test_every_part_of_a_batch_gets_its_vector(small_parts_client) -> None:
    tenant = await seed(small_parts_client)
    results = await search(small_parts_client, tenant, query="Alice", k=len(FACTS))
    assert {r["content"] for r in results} == {f[0] for f in FACTS}
    # each memory was among the vector candidates: its vector is stored and indexed
    assert all(r["scores"]["vector"] > 0 for r in results), results
    for content, _, _ in FACTS:
        found = await search(small_parts_client, tenant, query=content, k=1)
        assert found[0]["content"] == content


async def test_keyword_only_match_is_found(search_client) -> None:
    tenant = await seed(search_client)
    results = await search(search_client, tenant, query="peanuts", k=2)
    assert results[0]["content"] == "Bob is allergic to peanuts"
    assert results[0]["scores"]["lexical"] == 1.0


async def test_filters_narrow_results(search_client) -> None:
    tenant = await seed(search_client)
    tagged = await search(search_client, tenant, query="Alice", tags=["preference"], k=10)
    assert {r["content"] for r in tagged} == {FACTS[0][0], FACTS[5][0]}
    meta = await search(search_client, tenant, query="team", metadata={"team": "finance"}, k=10)
    assert [r["content"] for r in meta] == [FACTS[3][0]]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert await search(search_client, tenant, query="Alice", since=future) == []
    assert await search(search_client, tenant, query="Alice", layers=["semantic"]) == []


async def test_other_tenants_never_appear(search_client) -> None:
    mine = await seed(search_client)
    theirs = {"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"}
    await search_client.post(
        "/v1/memories", json={"content": "Alice prefers green tea at night"}, headers=theirs
    )
    results = await search(search_client, mine, query="Alice green tea", k=20)
    assert "Alice prefers green tea at night" not in {r["content"] for r in results}
    assert all(r["content"] in {f[0] for f in FACTS} for r in results)


async def test_deleted_memory_leaves_the_index(search_client) -> None:
    tenant = await seed(search_client)
    (hit,) = await search(search_client, tenant, query="cat windowsill", k=1)
    assert (await search_client.delete(f"/v1/memories/{hit['id']}", headers=tenant)).status_code == 204
    assert hit["id"] not in {r["id"] for r in await search(search_client, tenant, query="cat windowsill")}


async def test_an_expired_memory_is_not_found_before_the_sweep(search_client) -> None:
    tenant = await seed(search_client)
    (hit,) = await search(search_client, tenant, query="peanuts allergy", k=1)
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    path = f"/v1/memories/{hit['id']}"
    patched = await search_client.patch(path, json={"expires_at": past}, headers=tenant)
    assert patched.status_code == 200, patched.text
    # Still stored (the sweep runs every minute), found by its words and its meaning: not shown.
    for query in ("peanuts", "Bob is allergic to peanuts"):
        assert hit["id"] not in {r["id"] for r in await search(search_client, tenant, query=query, k=10)}
    assert len(await search(search_client, tenant, query="Alice", k=10)) == len(FACTS) - 1


@pytest.mark.parametrize(
    "body",
    [
        {"query": ""},
        {"query": "x", "k": 0},
        {"query": "x", "k": 101},
        {"query": "x", "layers": ["nope"]},
        {"k": 3},
    ],
)
async def test_bad_search_requests_are_422(search_client, body) -> None:
    response = await search_client.post("/v1/search/hybrid", json=body, headers={"X-Tenant-ID": "acme"})
    assert response.status_code == 422
