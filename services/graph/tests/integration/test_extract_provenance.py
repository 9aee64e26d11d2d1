"""`POST /v1/graph/extract` with `store: true` takes a memory as provenance of what it stores:
only a memory of the same tenant that exists (issue #16, finding 6)."""

from __future__ import annotations

import uuid

import httpx


async def test_stored_extraction_needs_an_existing_memory_of_the_tenant(
    graph: httpx.AsyncClient, memories: httpx.AsyncClient, tenant: dict[str, str]
) -> None:
    text = "Greta Lind works at Northwind."
    # The memory's own text names no entity, so the graph consumer has nothing to merge beside
    # this test's extraction.
    created = await memories.post("/v1/memories", json={"content": "notes from a call"}, headers=tenant)
    assert created.status_code == 201, created.text
    own_id = created.json()["id"]
    other = {"X-Tenant-ID": f"t-{uuid.uuid4().hex[:8]}"}

    for memory_id, headers in ((str(uuid.uuid4()), tenant), (own_id, other)):
        refused = await graph.post(
            "/v1/graph/extract", json={"text": text, "store": True, "memory_id": memory_id}, headers=headers
        )
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "https://rae.dev/problems/unknown-memory"
        assert refused.json()["errors"][0]["loc"] == ["body", "memory_id"]
        # Nothing was written for the refused call.
        edges = await graph.get("/v1/graph/edges", params={"memory_id": memory_id}, headers=headers)
        assert edges.json()["items"] == []

    stored = await graph.post(
        "/v1/graph/extract", json={"text": text, "store": True, "memory_id": own_id}, headers=tenant
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["stored"] is not None
    # Without `store`, or without provenance, no memory is needed.
    for body in ({"text": text, "memory_id": str(uuid.uuid4())}, {"text": text, "store": True}):
        assert (await graph.post("/v1/graph/extract", json=body, headers=tenant)).status_code == 200
