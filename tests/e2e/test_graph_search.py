"""End to end: memories stored through the gateway become a queryable knowledge graph, and
`POST /v1/search/graph` finds a memory that plain hybrid search ranks lower."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from rae_common.auth import issue_token
from rae_localstack import Stack

pytestmark = pytest.mark.e2e


def bearer(secret: str, tenant: str, *scopes: str) -> dict[str, str]:
    token = issue_token(secret, subject="e2e-agent", tenant_id=tenant, scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


async def test_graph_search_finds_the_memory_two_hops_away(
    suite: Stack, gateway: httpx.AsyncClient, jwt_secret: str
) -> None:
    tenant = f"e2e-{uuid.uuid4().hex[:8]}"
    headers = bearer(jwt_secret, tenant, "memories:write", "memories:read", "graph:read")
    contents = [
        "Alice Smith works at Acme Labs.",
        "Acme Labs is based in Berlin.",
        "Alice Wong studied at Oxford University and smiles a lot.",
        "Jada Smith lives in Los Angeles.",
        "Alice and Smith are common names; Alice Smith is a name a colleague once misspelt.",
    ]
    ids = []
    for content in contents:  # one at a time, as an agent would remember them
        stored = await gateway.post("/v1/memories", json={"content": content}, headers=headers)
        assert stored.status_code == 201, stored.text
        ids.append(stored.json()["id"])
    based = ids[1]

    async def edges() -> list[dict[str, Any]]:
        response = await gateway.get("/v1/graph/edges", params={"memory_id": based}, headers=headers)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    deadline = time.monotonic() + 60
    while not await edges():
        assert time.monotonic() < deadline, "the memory never reached the graph"
        await asyncio.sleep(0.5)
    stats = await gateway.get("/v1/graph/stats", headers=headers)
    assert stats.status_code == 200 and stats.json()

    query = {"query": "Alice Smith", "k": 5}
    hybrid = await gateway.post("/v1/search/hybrid", json=query, headers=headers)
    found = await gateway.post("/v1/search/graph", json=query, headers=headers)
    assert hybrid.status_code == 200 and found.status_code == 200, (hybrid.text, found.text)
    hybrid_ids = [r["id"] for r in hybrid.json()["results"]]
    graph_results = found.json()["results"]
    graph_ids = [r["id"] for r in graph_results]
    assert based in graph_ids
    assert based not in hybrid_ids or graph_ids.index(based) < hybrid_ids.index(based)
    path = next(r["path"] for r in graph_results if r["id"] == based)
    assert [(s["source"], s["relation"], s["target"]) for s in path] == [
        ("Alice Smith", "WORKS_AT", "Acme Labs"),
        ("Acme Labs", "BASED_IN", "Berlin"),
    ]

    # Another tenant reaches none of it; an unknown entity is a 404; depth is capped.
    other = bearer(jwt_secret, f"e2e-{uuid.uuid4().hex[:8]}", "graph:read", "memories:read")
    assert (await gateway.get("/v1/graph/edges", headers=other)).json()["items"] == []
    unknown = await gateway.get("/v1/graph/subgraph", params={"entity": "Nobody Atall"}, headers=headers)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    deep = {"entity": "Acme Labs", "depth": 9}
    too_deep = await gateway.get("/v1/graph/subgraph", params=deep, headers=headers)
    assert too_deep.status_code == 422
    no_memories_scope = bearer(jwt_secret, tenant, "graph:read")
    assert (await gateway.post("/v1/search/graph", json=query, headers=no_memories_scope)).status_code == 403
